"""Softmax and the top-k gate: golden model against float and an independent recurrence; RTL bit-exact."""

import numpy as np
import pytest
from conftest import per_config

from gen.config import parse_config_data
from gen.errors import ConfigError
from npuforge.registry import sim_testbench
from sim.golden import softmax as golden
from sim.runner import check_fault_sites, run

SOFTMAX_CONFIGS = ("softmax_l1_n8", "softmax_l3_n13", "gate_e6_k2_l2")
FLOWS = {"full_rate": (1.0, 1.0), "gaps_and_backpressure": (0.6, 0.5)}


def _cfg(**fields):
    data = {"kind": "softmax", "name": "sm", "input": {"width": 10, "frac": 5, "signed": True},
            "output": {"width": 12, "frac": 11, "signed": False}, "lanes": 1, "n_max": 16}
    data.update(fields)
    return parse_config_data(data, "test")


# --------------------------------------------------------------------------- golden model

def _edge_moe_statistics(spec, x):
    """Edge-MoE's one-lane recurrence, written from the paper: d = b - a; new max -> s*exp(d) + 1."""
    from sim.golden.exp import exp

    one = spec.one
    b, s = int(x[0]), one
    for a in x[1:]:
        d = b - int(a)
        if d < 0:
            r = one if d == 0 else int(exp(spec.exp, np.array([d]))[0])
            s = (s * r >> spec.exp_format.frac) + one  # the config truncates: a floor shift
            b = int(a)
        else:
            r = one if d == 0 else int(exp(spec.exp, np.array([-d]))[0])
            s = s + r
    return b, s


def test_one_lane_statistics_are_edge_moes_recurrence():
    cfg = _cfg(rounding="truncate", n_max=40)
    spec = golden.spec_for(cfg)
    rng = np.random.default_rng(1)
    for _ in range(60):
        x = rng.integers(-512, 512, size=int(rng.integers(1, 41)))
        assert tuple(int(v) for v in golden.statistics(spec, x)) == _edge_moe_statistics(spec, x)


def test_statistics_do_not_depend_on_where_lanes_split_much():
    """Lanes change the order of roundings only: the sums agree within a few sum LSBs."""
    rng = np.random.default_rng(2)
    specs = [golden.spec_for(_cfg(lanes=lanes, n_max=64)) for lanes in (1, 3, 4)]
    for _ in range(100):
        x = rng.integers(-512, 512, size=int(rng.integers(1, 65)))
        stats = [tuple(int(v) for v in golden.statistics(spec, x)) for spec in specs]
        assert len({m for m, _ in stats}) == 1 and stats[0][0] == x.max()
        sums = [s for _, s in stats]
        assert max(sums) - min(sums) <= 2 * len(x)


def _max_error(cfg, rows):
    got = golden.golden_rows(cfg, rows)
    want = golden.float_rows(cfg, rows)
    fmt = cfg.output.format
    return max(float(np.max(np.abs(fmt.to_float(g if cfg.top_k is None else g[:, 1]) - w)))
               for g, w in zip(got, want))


@pytest.mark.parametrize("lanes", [1, 4])
def test_golden_error_against_float_is_a_few_output_lsbs(lanes):
    cfg = _cfg(lanes=lanes, n_max=129, input={"width": 16, "frac": 10, "signed": True},
               output={"width": 16, "frac": 15, "signed": False})
    rng = np.random.default_rng(3)
    rows = [rng.normal(0, 3, size=int(rng.integers(1, 130))) for _ in range(60)]
    codes = [cfg.input.format.from_float(row) for row in rows]
    error = _max_error(cfg, codes)
    # exp (about 2**-17 relative), 1/s and the output rounding: a few LSBs of 2**-15.
    assert error <= 4 * 2.0 ** -15, error


def test_probabilities_sum_to_one_within_the_rounding():
    cfg = _cfg(n_max=64)
    rng = np.random.default_rng(4)
    for _ in range(50):
        x = rng.integers(-512, 512, size=int(rng.integers(1, 65)))
        p = cfg.output.format.to_float(golden.golden_rows(cfg, [x])[0])
        assert abs(p.sum() - 1.0) <= len(x) * 2.0 ** -11 + 2 ** -9


def test_gate_picks_top_k_with_ties_to_the_lower_index():
    assert golden.top_k_pairs([5, 9, 9, 1, 9], 2).tolist() == [[1, 9], [2, 9]]
    assert golden.top_k_pairs([3], 4).tolist() == [[0, 3]]
    cfg = _cfg(experts=8, top_k=3, n_max=None, lanes=2)
    rows = [np.array([7, 100, 3, 100, 100, -40, 0, 100])]
    pairs = golden.golden_rows(cfg, rows)[0]
    assert pairs[:, 0].tolist() == [1, 3, 4]
    assert len(set(pairs[:, 1].tolist())) == 1  # equal logits, equal scores: no renormalisation
    softmax = golden.softmax(golden.spec_for(cfg), rows[0])
    assert pairs[:, 1].tolist() == softmax[[1, 3, 4]].tolist()


def test_gate_selection_agrees_with_float_on_random_logits():
    cfg = _cfg(experts=16, top_k=2, n_max=None, lanes=4, input={"width": 16, "frac": 10, "signed": True},
               output={"width": 16, "frac": 15, "signed": False})
    rng = np.random.default_rng(5)
    rows = [cfg.input.format.from_float(rng.normal(0, 2, size=16)) for _ in range(200)]
    assert golden.selection_agreement(cfg, rows) >= 0.99


@pytest.mark.parametrize("fields, message", [
    ({"experts": 8}, "give experts and top_k together"),
    ({"experts": 8, "top_k": 9, "n_max": None}, "top_k must be 1..experts"),
    ({"experts": 8, "top_k": 2, "n_max": 9}, "n_max must equal experts"),
    ({"n_max": None}, "n_max is required"),
    ({"input": {"width": 8, "frac": 4, "signed": False}}, "input must be signed"),
])
def test_config_errors_name_the_problem(fields, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**fields)


# --------------------------------------------------------------------------- RTL

def run_rows(built, config_name, flow, tmp_path, *, seed, needed):
    """One run of edge and random rows through the RTL under ``flow``; checks the labels in
    ``needed`` are among the rows, bit-exactness, framing and the documented row latency."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    valid_prob, ready_prob = FLOWS[flow]
    vectors = tb.make_vectors(cfg, seed=seed + len(flow), n_random=24, valid_prob=valid_prob, ready_prob=ready_prob)
    labels = " | ".join(row["label"] for row in vectors["rows"])
    for label in (*needed, "length 1", f"length {cfg.n_max}"):
        assert label in labels, label

    result = run(model, tb, vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems, result.log)
    latency = model.manifest["parameters"]["latency"]
    measured = result.results["row_latency"]
    assert len(measured) == len(vectors["rows"]) and min(measured) >= latency
    return cfg, vectors, measured, latency


@per_config(*SOFTMAX_CONFIGS)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_rows_bit_exact(built, config_name, flow, tmp_path):
    gate = built(config_name).config.top_k is not None
    needed = ("all equal", "one dominant", "all very negative") + (("ties",) if gate else ())
    cfg, vectors, measured, latency = run_rows(built, config_name, flow, tmp_path, seed=11, needed=needed)
    if flow == "full_rate":  # the gate's first pair waits for the row's last probability beat
        assert measured[0] == latency + (-(-len(vectors["rows"][0]["x"]) // cfg.lanes) - 1 if gate else 0)


@per_config("softmax_l3_n13")
def test_long_rows_back_to_back_throughput(built, config_name, tmp_path):
    """Rows of n_max at full rate: the statistics pass of a row overlaps the output pass of earlier ones."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=5, n_random=0, edge_cases=False)
    rng = np.random.default_rng(6)
    rows = [rng.integers(-512, 512, size=cfg.n_max) for _ in range(12)]
    expected = golden.golden_rows(cfg, rows)
    vectors["rows"] = [{"label": f"full #{k}", "x": r.tolist(), "y": e.tolist()}
                       for k, (r, e) in enumerate(zip(rows, expected))]

    result = run(model, tb, vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems)
    beats = -(-cfg.n_max // cfg.lanes)
    latency = model.manifest["parameters"]["latency"]
    # Input of row k+banks waits for row k's output pass: period max(beats, (2*beats + latency) / banks).
    period = max(beats, (2 * beats + latency) / cfg.row_buffers)
    assert result.results["cycles"] <= 12 * period + latency + 2 * beats + 4, result.results["cycles"]


# --------------------------------------------------------------------------- Amaranth simulator

def test_top_k_keeps_ties_in_index_order_under_backpressure():
    """TopK alone: scores from 4 values (ties everywhere), rows of 1..7, random valid and ready."""
    import random

    from amaranth.sim import Simulator

    from hw.arith.fixed import FixedFormat
    from hw.nonlinear.gate import TopK

    lanes, experts, k = 3, 7, 3
    dut = TopK(FixedFormat(2, 0, False), lanes, experts, k)
    rng = np.random.default_rng(9)
    rows = [rng.integers(0, 4, size=int(rng.integers(1, experts + 1))) for _ in range(60)]
    rows += [np.full(experts, 2), np.array([3]), np.arange(experts) % 4]
    got = []

    async def bench(ctx):
        flow = random.Random(4)
        beats = [([int(v) for v in row[s:s + lanes]], int(s + lanes >= len(row)))
                 for row in rows for s in range(0, len(row), lanes)]
        sent, pairs = 0, []
        for _ in range(3000):
            if len(got) == len(rows):
                break
            offer = sent < len(beats) and flow.random() < 0.7
            ctx.set(dut.inp.valid, offer)
            if offer:
                data, last = beats[sent]
                for lane in range(lanes):
                    ctx.set(dut.inp.payload.data[lane], data[lane] if lane < len(data) else flow.randrange(4))
                ctx.set(dut.inp.payload.count, len(data))
                ctx.set(dut.inp.payload.last, last)
            ready = flow.random() < 0.5
            ctx.set(dut.out.ready, ready)
            await ctx.delay(1e-9)
            if offer and ctx.get(dut.inp.ready):
                sent += 1
            if ready and ctx.get(dut.out.valid):
                pairs.append([ctx.get(dut.out.payload.index), ctx.get(dut.out.payload.score)])
                if ctx.get(dut.out.payload.last):
                    got.append(pairs)
                    pairs = []
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [golden.top_k_pairs(row, k).tolist() for row in rows]


@per_config("gate_e6_k2_l2", "softmax_l3_n13")
def test_every_fault_site_takes_a_deposit(built, config_name, tmp_path):
    """Registers and the row memory (``core.store.rows``) named in the manifest resolve in the model."""
    model = built(config_name)
    sites = {site["path"]: site["kind"] for site in model.manifest["fault_sites"]}
    assert sites.get("core.store.rows") == "memory" or sites.get("core.softmax.store.rows") == "memory"
    assert check_fault_sites(model, tmp_path) == []
