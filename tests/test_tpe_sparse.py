"""``mac: opt3``, ``opt4c``, ``laconic``: digit-serial ``matrix2d`` engines whose cycles follow the data.

The shared TPE scenarios (``tests/test_tpe_rtl.py``: edge cases, random jobs,
full rate and backpressure, fault-site deposits) run on the four digit-serial
configs through ``RTL_CONFIGS``, and the testbench checks every job's cycles
against ``sim/golden/tpe_cycles.py`` there too. Here: the encodings (Python
reference and hardware encoders, exhaustively), the cycle model on hand-worked
cases, config errors, the manifest, and Verilator runs on Gaussian data (the
paper's workload), sums that wrap past ``k_max``, heavy backpressure and reset
mid-job.
"""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator
from conftest import RTL_CONFIGS, per_config
from test_tpe_rtl import _job
from test_tpe_rtl import test_reset_mid_job_discards_everything_in_flight as _reset_mid_job

from gen.config import load_config, parse_config_data
from gen.elaborate import elaborate
from gen.errors import ConfigError
from hw.arith.digits import (
    EntEncoder,
    TermEncoder,
    effectual_terms,
    ent_digit_count,
    ent_digits,
    term_position_count,
)
from hw.arith.widths import operand_range
from npuforge.registry import sim_testbench
from sim.golden import tpe_cycles
from sim.runner import run
from sim.tb.tpe import GemmTestbench

SPARSE = tuple(name for name in RTL_CONFIGS if re.search(r"_(opt3|opt4c|laconic)(_q\d+)?$", name))
DECOUPLED = tuple(name for name in SPARSE if re.search(r"_q\d+$", name))
M2D = {"kind": "tpe", "name": "m", "arch": "matrix2d", "rows": 2, "cols": 3,
       "operand": {"width": 8, "signed": True}, "k_max": 8}


# --------------------------------------------------------------------------- encodings

@pytest.mark.parametrize("width", [2, 3, 4, 5, 6, 8, 10])
@pytest.mark.parametrize("signed", [True, False])
def test_python_encodings_rebuild_every_value(width, signed):
    lo, hi = operand_range(width, signed)
    digits = [ent_digits(v, width, signed) for v in range(lo, hi + 1)]
    terms = [effectual_terms(v, width, signed) for v in range(lo, hi + 1)]
    for value, d, t in zip(range(lo, hi + 1), digits, terms, strict=True):
        assert sum(x * 4 ** i for i, x in enumerate(d)) == value
        allowed = {0, 1, 2, -1} if value >= 0 else {0, -1, -2, 1}  # sign-magnitude: the sign flips all
        assert set(d) <= allowed
        assert sum(x * 2 ** i for i, x in enumerate(t)) == value
        assert not any(t[i] and t[i + 1] for i in range(len(t) - 1)), (value, t)  # non-adjacent
        assert sum(map(bool, t)) <= bin(abs(value)).count("1")  # never more terms than plain binary
    # The counts are tight: some value needs the top digit and the top term position.
    assert len(digits[0]) == ent_digit_count(width, signed) and any(d[-1] for d in digits)
    assert len(terms[0]) == term_position_count(width, signed) and any(t[-1] for t in terms)


def test_encodings_match_the_papers_examples():
    assert ent_digits(91, 8, True)[::-1] == [1, 2, -1, -1]
    assert ent_digits(124, 8, True)[::-1] == [2, 0, -1, 0]
    assert ent_digits(-91, 8, True)[::-1] == [-1, -2, 1, 1]
    assert (ent_digit_count(8, True), ent_digit_count(8, False), ent_digit_count(4, True)) == (4, 5, 2)
    assert effectual_terms(14, 5, True) == [0, -1, 0, 0, 1]  # 16 - 2
    assert effectual_terms(15, 4, False) == [-1, 0, 0, 0, 1]  # 16 - 1: the unsigned extra position


def _simulate(component, values, read):
    got = {}

    async def bench(ctx):
        for value in values:
            ctx.set(component.value, value)
            got[value] = read(ctx)
    sim = Simulator(component)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("width", [4, 5, 6])
@pytest.mark.parametrize("signed", [True, False])
def test_hardware_encoders_match_the_references_for_every_operand(width, signed):
    lo, hi = operand_range(width, signed)
    values = list(range(lo, hi + 1))
    ent = EntEncoder(Shape(width, signed))

    def read_ent(ctx):
        sign = -1 if ctx.get(ent.negative) else 1
        nonzero, two, minus = ctx.get(ent.nonzero), ctx.get(ent.two), ctx.get(ent.minus)
        return [sign * ((nonzero >> i & 1) * (2 if two >> i & 1 else -1 if minus >> i & 1 else 1))
                for i in range(ent.count)]
    assert _simulate(ent, values, read_ent) == {v: ent_digits(v, width, signed) for v in values}

    naf = TermEncoder(Shape(width, signed))

    def read_naf(ctx):
        sign = -1 if ctx.get(naf.negative) else 1
        plus, minus = ctx.get(naf.plus), ctx.get(naf.minus)
        return [sign * ((plus >> i & 1) - (minus >> i & 1)) for i in range(naf.count)]
    assert _simulate(naf, values, read_naf) == {v: effectual_terms(v, width, signed) for v in values}


def _low_width(cfg) -> int:
    """The carry-save bits of a digit-serial PE's accumulator, from the design's rule: a term and its sign."""
    width, signed = cfg.operand.width, cfg.operand.signed
    if cfg.mac == "laconic":
        largest = 2 ** min(cfg.acc_width - 1, 2 * term_position_count(width, signed) - 2)
    else:  # B or 2B at the top EN-T digit's weight
        largest = 2 * (2 ** (width - 1) if signed else 2 ** width - 1) * 4 ** (ent_digit_count(width, signed) - 1)
    return min(cfg.acc_width, largest.bit_length() + 1)


def _run_digit_mac(acc_width: int, adds: list[tuple[int, int, int]], *, width: int = 8):
    """Drive a signed ``DigitMac``: each add is ``(B, digit, position)``, one per cycle, and the last
    cycle captures. Returns the captured value, ``(result_sum + result_carry) mod 2**acc_width``,
    and the pair."""
    from hw.tpe.digit_serial import DigitMac

    mac = DigitMac(Shape(width, True), acc_width)
    out = {}

    async def bench(ctx):
        ctx.set(mac.step, 1)
        for index, (b, digit, position) in enumerate(adds):
            ctx.set(mac.b_in, b)
            ctx.set(mac.issue, digit != 0)
            ctx.set(mac.position, (1 << position) if digit else 0)
            ctx.set(mac.two, abs(digit) == 2)
            ctx.set(mac.negative, digit < 0)
            ctx.set(mac.capture, index == len(adds) - 1)
            await ctx.tick()
        pair = ctx.get(mac.result_sum), ctx.get(mac.result_carry)
        out["value"] = ((pair[0] + pair[1]) % 2 ** acc_width, pair)

    sim = Simulator(mac)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out["value"]


@pytest.mark.parametrize("acc_width", [24, 18, 16, 12])
def test_split_serial_accumulator_adds_every_term_exactly(acc_width):
    """INT8 ``DigitMac``: carry-save below bit 16 and ``acc_high`` above it (24, 18 bits), or carry-save
    only (16: the term's own width; 12: narrower, results wrap). Edge terms: the largest of each sign,
    ``B = 0`` with a negative digit (the negation's +1 must cancel), long runs of one sign (the low
    part wraps into ``acc_high`` many times) and sign changes every add."""
    from hw.tpe.digit_serial import DigitMac

    assert DigitMac(Shape(8, True), 24).low_width == 16 and DigitMac(Shape(8, True), 12).low_width == 12
    rng = np.random.default_rng(acc_width)
    streams = [
        [(-128, -2, 3)] * 40 + [(-128, 2, 3)] * 45,          # +2**15 forty times, then -2**15
        [(0, -1, 0), (0, -2, 3), (127, -1, 0), (0, 1, 2)],    # zero terms, negated
        [(b, d, 3) for b, d in zip([127, -128] * 30, [2, -2] * 30)],
        [(int(b), int(d), int(p)) for b, d, p in zip(rng.integers(-128, 128, 300), rng.choice([-2, -1, 0, 1, 2], 300),
                                                      rng.integers(0, 4, 300))],
    ]
    for adds in streams:
        expected = sum(b * d * 4 ** p for b, d, p in adds) % 2 ** acc_width
        assert _run_digit_mac(acc_width, adds)[0] == expected, adds[:3]


def test_split_accumulator_worked_example_of_the_docs():
    """docs/tpe.md: signed 4-bit, acc_width 9 (L = 8): A = -5, B = 6, then A = 6, B = -7."""
    adds = [(6, -1, 0), (6, -1, 1), (-7, 2, 0), (-7, 1, 1)]
    value, pair = _run_digit_mac(9, adds, width=4)
    assert value == -72 % 2 ** 9
    assert pair == (0b1_01101100, 0b0_01001100)


# --------------------------------------------------------------------------- cycle model

def test_cycle_model_on_hand_worked_jobs():
    """Signed 4-bit, 2 rows: the numbers of the worked example in docs/tpe.md."""
    a = np.array([[5, 0, -8], [-3, 0, 6]])
    b = np.array([[7, -6], [1, 2], [0, 3]])
    # EN-T: 5 -> 1+1*4 (2 digits), -3 -> -(-1+1*4) (2), 0 -> none, -8 -> -(2*4) (1), 6 -> 2+1*4 (2)
    assert tpe_cycles.nonzero_digits(a, operand_width=4, signed=True).tolist() == [[2, 0, 1], [2, 0, 2]]
    beats = tpe_cycles.beat_cycles(a, b, mac="opt3", operand_width=4, signed=True)
    assert beats.tolist() == [2, 1, 2]  # the busier row sets the pace; an all-zero beat still takes one
    # NAF terms: 5 = 4+1, 3 = 4-1, 8 = 8, 6 = 8-2; 7 = 8-1, 6 = 8-2, 1, 2, 0, 3 = 4-1
    beats = tpe_cycles.beat_cycles(a, b, mac="laconic", operand_width=4, signed=True)
    assert beats.tolist() == [2 * 2, 1, 2 * 2]  # k=1: no A term -> one cycle
    common = {"arch": "matrix2d", "operand_width": 4, "signed": True}
    assert tpe_cycles.job_cycles(a, b, mac="opt4c", back_to_back=False, **common) == 5
    assert tpe_cycles.job_cycles(a, b, mac="opt4c", rows=2, **common) == 5  # max(5, 2 - 1 + 2)
    assert tpe_cycles.job_cycles(a[:, :1], b[:1], mac="opt3", rows=2, **common) == 3  # max(2, 1 + 2)
    assert tpe_cycles.job_cycles(a[:, :1], b[:1], mac="opt3", rows=5, **common) == 6  # waits for 5 result rows
    # A stream: 5 busy cycles, then 3 and 5 back to back, then 2 result rows and the cycle they leave in.
    jobs = [(a, b), (a[:, :1], b[:1]), (a, b)]
    assert tpe_cycles.stream_cycles(jobs, mac="opt3", rows=2, **common) == 5 + 3 + 5 + 2 + 1


def test_decoupled_cycle_model_on_a_hand_worked_stream():
    """Two rows whose slow beats come at opposite ends: the queue lets them overlap, if it is deep enough.

    Signed 8-bit: 21 = 1 + 4 + 16 has three nonzero EN-T digits, 1 has one. Row 0 takes 3, 1, 1, 1
    cycles, row 1 takes 1, 1, 1, 3; lockstep, each beat takes its slower row's: 3 + 1 + 1 + 3 = 8.
    """
    a = np.array([[21, 1, 1, 1], [1, 1, 1, 21]])
    b = np.ones((4, 2), dtype=np.int64)
    common = {"arch": "matrix2d", "mac": "opt4c", "operand_width": 8, "signed": True, "rows": 2}
    assert tpe_cycles.row_beat_cycles(a, b, mac="opt4c", operand_width=8, signed=True).tolist() == \
        [[3, 1, 1, 1], [1, 1, 1, 3]]
    assert [t.capture for t in tpe_cycles.capture_cycles([(a, b)], **common)] == [8]
    # Queue of 2: beats move in cycles 0 and 1; a row starts a beat 2 cycles after it moved.
    # Row 0 starts k0..k2 in cycles 2, 5, 6; row 1 in 2, 3, 4. Beat 3 needs beat 1's slot, free once row 0
    # loaded beat 1 (at the end of cycle 4): it moves in cycle 5, row 1 starts it in 7 and ends it in 9.
    (timing,) = tpe_cycles.capture_cycles([(a, b)], row_queue=2, **common)
    assert (timing.capture, timing.last_accept, timing.busy, timing.last_beat) == (9, 5, 1 + 6, 3)
    # Queue of 3: beat 3 moves in cycle 3, row 1 starts it in 5 and ends it in 7: one cycle under lockstep.
    assert tpe_cycles.capture_cycles([(a, b)], row_queue=3, **common)[0].capture == 7
    # Back to back, the second job waits for the first one's 2 result rows only if it is shorter than that.
    one = (a[:, :1], b[:1])
    captures = [t.capture for t in tpe_cycles.capture_cycles([(a, b), one, one], row_queue=3, **common)]
    assert captures == [7, 10, 13]  # k4 moves in 5 (k1's slot), row 0 starts it after the capture: 8 to 10
    assert tpe_cycles.stream_cycles([(a, b), one, one], row_queue=3, **common) == 13 + 2 + 1


def test_decoupled_rows_beat_lockstep_on_gaussian_data():
    """16 rows of Gaussian INT8 (sigma 30): lockstep waits for the busiest row in every beat."""
    rng = np.random.default_rng(5)
    jobs = [(np.clip(np.rint(rng.normal(0, 30, (16, 64))), -128, 127).astype(np.int64),
             np.ones((64, 4), dtype=np.int64)) for _ in range(4)]
    common = {"arch": "matrix2d", "mac": "opt3", "operand_width": 8, "signed": True, "rows": 16}
    lockstep = tpe_cycles.stream_cycles(jobs, **common)
    queued = [tpe_cycles.stream_cycles(jobs, row_queue=q, **common) for q in (1, 2, 4, 8)]
    assert queued == sorted(queued, reverse=True) and queued[-1] < 0.75 * lockstep, (lockstep, queued)
    # However deep the queue, the stream takes at least its busiest row's digits (rows cross job
    # boundaries, so per job the busiest row can be beaten).
    per_row = sum(tpe_cycles.row_beat_cycles(a, b, mac="opt3", operand_width=8, signed=True).sum(axis=1)
                  for a, b in jobs)
    assert queued[-1] >= int(per_row.max())


def test_cycle_model_rejects_what_it_does_not_model():
    a, b = np.ones((2, 2), dtype=int), np.ones((2, 2), dtype=int)
    with pytest.raises(ValueError, match="fixed timing"):
        tpe_cycles.job_cycles(a, b, arch="matrix2d", mac="opt1", operand_width=8, signed=True)
    with pytest.raises(ValueError, match="'matrix2d' only"):
        tpe_cycles.job_cycles(a, b, arch="cube", mac="opt3", operand_width=8, signed=True)
    with pytest.raises(ValueError, match="range"):
        tpe_cycles.beat_cycles(a * 200, b, mac="opt3", operand_width=8, signed=True)
    with pytest.raises(ValueError, match="laconic has no decoupled rows"):
        tpe_cycles.capture_cycles([(a, b)], arch="matrix2d", mac="laconic", operand_width=8, signed=True,
                                  row_queue=2)


def test_gaussian_int8_needs_about_two_digits_per_operand():
    """The paper's figure: 1.71 to 2.57 nonzero EN-T digits per INT8 operand for sigma 10 to 50."""
    rng = np.random.default_rng(0)
    means = []
    for sigma in (10, 30, 50):
        values = np.clip(np.rint(rng.normal(0, sigma, 200_000)), -128, 127).astype(np.int64)
        means.append(tpe_cycles.nonzero_digits(values, operand_width=8, signed=True).mean())
    assert means == sorted(means) and 1.5 < means[0] < 2.0 and 2.3 < means[-1] < 2.8, means


# --------------------------------------------------------------------------- config and manifest

@pytest.mark.parametrize("mac", ["opt3", "opt4c", "laconic"])
def test_sparse_options_apply_to_matrix2d_only(mac):
    cfg = parse_config_data({**M2D, "mac": mac}, "a")
    assert cfg.mac == mac and f"mac {mac}" in cfg.describe()
    for arch, changes in (("systolic_os", {}), ("cube", {"depth": 2}), ("systolic_ws", {"k_max": None})):
        data = {key: value for key, value in {**M2D, "arch": arch, **changes, "mac": mac}.items()
                if value is not None}
        with pytest.raises(ConfigError) as caught:
            parse_config_data(data, "cfg.yaml")
        message = str(caught.value)
        assert "\n" not in message and message.startswith("cfg.yaml: mac: ")
        assert f"'{mac}' applies to matrix2d only" in message, message


@pytest.mark.parametrize(("mac", "row_queue", "arch", "message"), [
    ("laconic", 2, "matrix2d", "row_queue: 2 with mac 'laconic', whose column issuers walk B's terms once for all rows; "
                               "allowed: 0, or mac opt3 or opt4c"),
    ("opt2", 1, "matrix2d", "row_queue: 1 with mac 'opt2', whose rows have no digits to wait for; allowed: 0, or "
                            "mac opt3 or opt4c"),
    ("baseline", 3, "matrix2d", "row_queue: 3 with mac 'baseline', whose rows have no digits to wait for"),
    ("opt4c", -1, "matrix2d", "row_queue: "),
])
def test_row_queue_config_errors(mac, row_queue, arch, message):
    with pytest.raises(ConfigError) as caught:
        parse_config_data({**M2D, "arch": arch, "mac": mac, "row_queue": row_queue}, "cfg.yaml")
    text = str(caught.value)
    assert "\n" not in text and text.startswith(f"cfg.yaml: {message}"), text


def test_per_job_model_refuses_decoupled_rows():
    cfg = parse_config_data({**M2D, "mac": "opt4c", "row_queue": 2}, "a")
    with pytest.raises(ValueError, match="decoupled rows.*use capture_cycles"):
        tpe_cycles.for_config(cfg)


def test_row_queue_is_matrix2d_only_and_its_default_keeps_the_hash():
    with pytest.raises(ConfigError, match="row_queue"):
        parse_config_data({**M2D, "arch": "cube", "depth": 2, "mac": "opt1", "row_queue": 2}, "cfg.yaml")
    plain = parse_config_data({**M2D, "mac": "opt4c"}, "a")
    assert parse_config_data({**M2D, "mac": "opt4c", "row_queue": 0}, "a").config_hash() == plain.config_hash()
    queued = parse_config_data({**M2D, "mac": "opt4c", "row_queue": 4}, "a")
    assert queued.config_hash() != plain.config_hash() and "decoupled rows (queue of 4)" in queued.describe()


@pytest.mark.parametrize("name", SPARSE)
def test_manifest_says_timing_is_data_dependent_and_names_the_registers(name):
    cfg = load_config(RTL_CONFIGS[name])
    elab = elaborate(cfg)
    params = elab.parameters
    assert params["mac"] == cfg.mac and params["timing"] == "data-dependent"
    assert params["cycle_model"] == "sim.golden.tpe_cycles.capture_cycles"
    assert params["latency"] == (3 if cfg.row_queue else 2)
    assert "timing" not in elaborate(cfg.model_copy(update={"mac": "baseline"})).parameters
    sites = {site.path: site.width for site in elab.fault_sites}
    issuer = "issuer." if cfg.mac == "opt3" else ""
    for i in range(cfg.rows):
        for j in range(cfg.cols):
            pe = f"core.pe_{i}_{j}." + ("mac." if cfg.mac == "opt3" else "")
            for register in ("result_sum", "result_carry"):
                assert sites[pe + register] == cfg.acc_width
            # the split accumulator: carry-save below bit `low`, resolved above it
            low = _low_width(cfg)
            assert low < cfg.acc_width  # every test config has both parts
            assert sites[pe + "acc_sum"] == sites[pe + "acc_carry"] == low
            assert sites[pe + "acc_high"] == cfg.acc_width - low
            if cfg.mac == "opt3":  # every PE encodes and issues its own A digits
                assert f"core.pe_{i}_{j}.{issuer}pending" in sites
        if cfg.mac != "opt3":  # one shared issuer per row
            assert f"core.row_{i}.pending" in sites
        if cfg.row_queue:  # decoupled: each row's place in the queue, its state and its own B row
            assert {f"core.queue_read_{i}", f"core.queue_count_{i}", f"core.row_busy_{i}",
                    f"core.row_at_last_{i}", f"core.row_held_{i}"} <= set(sites)
            assert sites[f"core.b_row_{i}"] == cfg.cols * cfg.operand.width
    if cfg.row_queue:
        for slot in range(cfg.row_queue):
            # A waits encoded: three masks of its EN-T digits and, if signed, the sign
            digits = ent_digit_count(cfg.operand.width, cfg.operand.signed)
            assert sites[f"core.queue_a_{slot}"] == cfg.rows * (3 * digits + cfg.operand.signed)
            assert sites[f"core.queue_b_{slot}"] == cfg.cols * cfg.operand.width
        assert sites["core.queue_write"] == sites["core.queue_last"] == sites["core.queue_open"] == cfg.row_queue
    else:
        assert not any(".queue_" in site for site in sites)
    if cfg.mac == "laconic":
        for j in range(cfg.cols):
            assert {f"core.col_{j}.pending", f"core.col_{j}.terms"} <= set(sites)
    pe_text = "\n".join(body for body in elab.verilog.split("\nmodule ")[1:] if ".pe_" in body.split("(", 1)[0])
    assert pe_text and " * " not in pe_text  # no multiplier anywhere in a PE


# --------------------------------------------------------------------------- the testbench's cycle check

def test_cycle_check_reports_a_job_that_takes_too_long():
    """The testbench's per-job comparison can fail, and names the job."""
    bench = GemmTestbench.__new__(GemmTestbench)
    bench.source = SimpleNamespace(transfers=[SimpleNamespace(cycle=0)])
    bench.timing = [{"busy": 4, "back_to_back": 4, "beats": [2, 2]}, {"busy": 1, "back_to_back": 3, "beats": [1]}]
    assert bench._job_cycles([5, 8], exact=True) == ([4, 3], [])
    measured, problems = bench._job_cycles([5, 9], exact=True)
    assert measured == [4, 4] and problems[0].startswith("job 1: took 4 cycles, the cycle model gives 3")
    assert bench._job_cycles([5, 7], exact=False)[1] == []  # under backpressure only the busy cycles bind
    assert bench._job_cycles([4, 5], exact=False)[1][0].startswith("job 0: took 3 cycles")


# --------------------------------------------------------------------------- Verilator runs

def _gaussian_jobs(cfg, rng, count):
    lo, hi = operand_range(cfg.operand.width, cfg.operand.signed)
    center = 0 if cfg.operand.signed else hi // 4
    jobs = []
    for n in range(count):
        k = int(rng.integers(1, cfg.k_max + 1))
        sigma = (hi - lo) * (0.04, 0.12, 0.2)[n % 3]
        a = np.clip(np.rint(rng.normal(center, sigma, (cfg.rows, k))), lo, hi).astype(np.int64)
        b = np.clip(np.rint(rng.normal(center, sigma, (k, cfg.cols))), lo, hi).astype(np.int64)
        jobs.append(_job(f"gaussian #{n} K={k}", a, b, cfg))
    return jobs


@per_config(*SPARSE)
def test_gaussian_and_wrapping_jobs_match_results_and_cycle_model(built, config_name, tmp_path):
    """Gaussian jobs of random K, then sums past k_max that wrap: bit-exact, every job's cycles as modelled."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    rng = np.random.default_rng(17)
    vectors = tb.make_vectors(cfg, seed=3, n_random=0, edge_cases=False)
    lo, hi = operand_range(cfg.operand.width, cfg.operand.signed)
    k = 6 * cfg.k_max  # K * lo**2 exceeds 2**acc_width: the carry-save sums wrap
    extreme = lo if cfg.operand.signed else hi
    wrap_a = np.full((cfg.rows, k), extreme)
    wrap_b = np.full((k, cfg.cols), extreme)
    wrap_b[:, 0] = rng.integers(lo, hi + 1, k)
    vectors["jobs"] = _gaussian_jobs(cfg, rng, 14) + [_job("wraps", wrap_a, wrap_b, cfg)] + _gaussian_jobs(cfg, rng, 2)

    result = run(model, tb, vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems, result.log)
    measured, modelled = result.results["job_cycles"], result.results["job_cycles_model"]
    assert len(measured) == len(vectors["jobs"]) and measured == modelled
    assert len(set(measured)) > 3  # the cycles really follow the data
    beats = [len(job["b"]) for job in vectors["jobs"]]
    assert sum(measured) > sum(beats)  # more than one cycle per beat on average
    latency = model.manifest["parameters"]["latency"]
    if cfg.row_queue:
        # Decoupled: the latency counts from the last beat plus the cycles the rows still need at full rate.
        assert result.results["latency"] == [latency] * len(vectors["jobs"])
        common = {"arch": "matrix2d", "mac": cfg.mac, "operand_width": cfg.operand.width,
                  "signed": cfg.operand.signed, "rows": cfg.rows}
        pairs = [(job["a"], job["b"]) for job in vectors["jobs"]]
        assert sum(measured) < tpe_cycles.capture_cycles(pairs, **common)[-1].capture  # faster than lockstep
    else:
        assert result.results["latency"] == [latency] * len(vectors["jobs"])


@per_config("m2d_3x2_u6_opt4c", "m2d_3x2_s5_laconic", "m2d_3x2_s6_opt4c_q2")
def test_heavy_backpressure_keeps_results_exact(built, config_name, tmp_path):
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=29, n_random=10, valid_prob=0.5, ready_prob=0.2)

    result = run(model, tb, vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems, result.log)
    measured = result.results["job_cycles"]
    busy = [timing.busy for timing in tpe_cycles.capture_cycles(
        [(job["a"], job["b"]) for job in vectors["jobs"]], arch="matrix2d", mac=cfg.mac,
        operand_width=cfg.operand.width, signed=cfg.operand.signed, rows=cfg.rows, row_queue=cfg.row_queue)]
    if not cfg.row_queue:
        assert busy == [tpe_cycles.for_config(cfg)(job["a"], job["b"], back_to_back=False) for job in vectors["jobs"]]
    assert all(m >= b for m, b in zip(measured, busy, strict=True))
    assert any(m > b for m, b in zip(measured, busy, strict=True))  # the stalls did cost cycles


@per_config("m2d_2x3_s8_opt3", "m2d_3x2_s5_laconic", "m2d_4x2_u5_opt3_q3")  # digit, term issuers; decoupled
def test_sparse_reset_mid_job_discards_everything_in_flight(built, config_name, tmp_path):
    _reset_mid_job(built, config_name, tmp_path)


@per_config("m2d_3x2_u6_opt4c")
def test_bit_flipped_in_a_row_issuer_changes_only_that_row(built, config_name, tmp_path):
    """A digit dropped from row 1's shared issuer corrupts row 1 of C, and no other."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    a = np.full((cfg.rows, 1), 0b101010)  # EN-T digits (2, 2, 2): three cycles, pending 0b111
    b = np.array([[3, 5]])
    vectors = tb.make_vectors(cfg, seed=5, n_random=0, edge_cases=False)
    vectors["jobs"] = [_job("victim", a, b, cfg)]
    # The beat moves in cycle 0 and is encoded at its end; in cycle 1 the lowest digit issues.
    vectors["inject"] = [{"path": "core.row_1.pending", "bit": 2, "cycle": 1}]

    result = run(model, tb, vectors, tmp_path)

    got = np.array(result.results["jobs"][0])
    expected = np.array(vectors["jobs"][0]["c"])
    assert (got[[0, 2]] == expected[[0, 2]]).all()
    assert (expected[1] - got[1]).tolist() == [2 * 16 * 3, 2 * 16 * 5]  # digit 2 at 4**2 never issued


def test_random_flow_seed_is_reproducible():
    """Two make_vectors calls with one seed give the same sparse edge jobs (the run is replayable)."""
    cfg = load_config(RTL_CONFIGS["m2d_3x2_s5_laconic"])
    tb = sim_testbench(cfg)
    first, second = (tb.make_vectors(cfg, seed=4, n_random=2) for _ in range(2))
    assert first == second
    labels = [job["label"] for job in first["jobs"]]
    assert any(label.startswith("all digits nonzero") for label in labels)
    assert any(label.startswith("all digits zero") for label in labels)


def test_the_example_config_has_decoupled_rows():
    """configs/matrix2d_8x8_opt4c_rq4.yaml, the example docs/tpe.md names, elaborates as documented."""
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / "matrix2d_8x8_opt4c_rq4.yaml")
    params = elaborate(cfg).parameters
    assert (cfg.mac, cfg.row_queue) == ("opt4c", 4)
    assert params["latency"] == 3 and params["cycle_model"] == "sim.golden.tpe_cycles.capture_cycles"
