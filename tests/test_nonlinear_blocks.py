"""exp, reciprocal and rsqrt: blocks in Amaranth's simulator, kinds in Verilator, goldens against float.

* Blocks (``hw/nonlinear/{exp,reciprocal,rsqrt}.py``) against their goldens over
  every input code of small formats, and with ``en`` toggling at random.
* The element-wise stream unit (``hw/nonlinear/elementwise.py``) under random
  valid/ready, with a pipelined block and a combinational one.
* The kinds through the generic testbench ``sim/tb/nonlinear.py`` in Verilator
  (one build per config), including the 10-bit exp over every input code.
* The goldens against the real functions, within error bounds derived below.
* Config errors: one line naming the field.
"""

import gc
import math
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from conftest import per_config

from gen.config import parse_config_text
from gen.errors import ConfigError
from hw.arith.fixed import FixedFormat, Overflow, Rounding
from hw.nonlinear.elementwise import Elementwise
from hw.nonlinear.exp import Exp, ExpSpec
from hw.nonlinear.reciprocal import Reciprocal, ReciprocalSpec
from hw.nonlinear.rsqrt import Rsqrt, RsqrtSpec
from npuforge.registry import sim_testbench
from sim.golden.exp import exp, exp_float
from sim.golden.reciprocal import reciprocal, reciprocal_float
from sim.golden.rsqrt import rsqrt, rsqrt_float
from sim.runner import run
from sim.tb.nonlinear import describe_mismatch, first_mismatch, make_vectors, summary_lines

F = FixedFormat
BLOCKS = {ExpSpec: (Exp, exp), ReciprocalSpec: (Reciprocal, reciprocal), RsqrtSpec: (Rsqrt, rsqrt)}

#: Specs tested over every input code in Amaranth's simulator: both exp methods, output formats
#: with and without an integer bit, negative and large input fraction counts, 0..3 Newton steps,
#: every rounding and both overflow rules.
BLOCK_SPECS = {
    "exp_linear_s10": ExpSpec(F(10, 6, True), F(12, 11, False), table_bits=4),
    "exp_table_s8_trunc": ExpSpec(F(8, 3, True), F(8, 8, False), table_bits=3, interpolate=False,
                                  rounding=Rounding.TRUNCATE),
    "exp_linear_s9_away_wrap": ExpSpec(F(9, 8, True), F(10, 9, False), table_bits=2,
                                       rounding=Rounding.HALF_AWAY, overflow=Overflow.WRAP),
    "exp_table_s7_neg_frac": ExpSpec(F(7, -1, True), F(6, 4, True), table_bits=5, interpolate=False),
    "recip_seed_only": ReciprocalSpec(F(9, 3, False), F(10, 6, False), table_bits=5, newton_steps=0),
    "recip_one_step_signed_out": ReciprocalSpec(F(10, 6, False), F(12, 6, True), table_bits=3, newton_steps=1,
                                                rounding=Rounding.HALF_AWAY),
    "recip_two_steps_neg_frac": ReciprocalSpec(F(8, -2, False), F(14, 16, False), table_bits=2, newton_steps=2),
    "recip_three_steps_trunc_wrap": ReciprocalSpec(F(7, 7, False), F(9, 2, False), table_bits=1, newton_steps=3,
                                                   rounding=Rounding.TRUNCATE, overflow=Overflow.WRAP),
    "rsqrt_seed_only_odd_frac": RsqrtSpec(F(10, 3, False), F(10, 6, False), table_bits=4, newton_steps=0),
    "rsqrt_one_step_even_frac": RsqrtSpec(F(10, 4, False), F(12, 9, False), table_bits=3, newton_steps=1),
    "rsqrt_two_steps_trunc": RsqrtSpec(F(9, 9, False), F(12, 8, True), table_bits=2, newton_steps=2,
                                       rounding=Rounding.TRUNCATE),
    "rsqrt_neg_frac_wrap": RsqrtSpec(F(8, -3, False), F(8, 12, False), table_bits=5, newton_steps=1,
                                     overflow=Overflow.WRAP),
}


def run_block(block, codes, en_prob: float = 1.0, seed: int = 0) -> np.ndarray:
    """Outputs of ``block`` for ``codes`` (one per enabled edge), with ``en`` high with probability ``en_prob``.

    While ``en`` is low the input changes to junk and the pipeline must hold:
    ``y`` shows the result of the input taken ``latency`` enabled edges earlier.
    """
    rng = random.Random(seed)
    codes = [int(c) for c in codes]
    fmt_shape = block.x.shape()
    lo, hi = (-(1 << (fmt_shape.width - 1)), (1 << (fmt_shape.width - 1)) - 1) if fmt_shape.signed \
        else (0, (1 << fmt_shape.width) - 1)
    latency = block.latency
    outputs = []

    async def bench(ctx):
        taken = 0
        pending = codes + [lo] * latency
        while taken < len(pending):
            en = rng.random() < en_prob
            ctx.set(block.en, en)
            ctx.set(block.x, pending[taken] if en else rng.randint(lo, hi))
            await ctx.tick()
            if en:
                taken += 1
                if latency <= taken < latency + len(codes):  # y now shows the input of `latency` edges ago
                    outputs.append(ctx.get(block.y))

    sim = Simulator(block)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(outputs, dtype=np.int64)


@pytest.mark.parametrize("name", list(BLOCK_SPECS))
def test_block_matches_golden_on_every_input_code(name):
    spec = BLOCK_SPECS[name]
    component, golden = BLOCKS[type(spec)]
    codes = spec.input.codes()
    got = run_block(component(spec), codes)
    expected = golden(spec, codes)
    wrong = np.nonzero(got != expected)[0]
    assert wrong.size == 0, f"x={codes[wrong[0]]}: got {got[wrong[0]]}, golden {expected[wrong[0]]}"


@pytest.mark.parametrize("name", ["exp_linear_s10", "recip_two_steps_neg_frac", "rsqrt_one_step_even_frac"])
def test_block_holds_while_en_is_low(name):
    spec = BLOCK_SPECS[name]
    component, golden = BLOCKS[type(spec)]
    codes = np.random.default_rng(1).permutation(spec.input.codes())[:300]
    got = run_block(component(spec), codes, en_prob=0.5, seed=2)
    assert got.tolist() == golden(spec, codes).tolist()


def test_latencies_are_documented_stage_counts():
    """The stage counts of the docs; the exhaustive tests above check that the pipelines have them."""
    assert ExpSpec(F(8, 4, True), F(8, 7, False)).latency == 6
    assert ExpSpec(F(8, 4, True), F(8, 7, False), interpolate=False).latency == 4
    for steps in range(4):
        assert ReciprocalSpec(F(8, 4, False), F(8, 4, False), newton_steps=steps).latency == 4 + 4 * steps
        assert RsqrtSpec(F(8, 4, False), F(8, 4, False), newton_steps=steps).latency == 4 + 6 * steps


def test_documented_special_inputs():
    """x >= 0 gives exp = 1 (saturated when 1 is not representable); x = 0 gives the largest code."""
    spec = ExpSpec(F(8, 4, True), F(9, 8, False))
    assert exp(spec, [0, 1, 127]).tolist() == [256, 256, 256]
    narrow = ExpSpec(F(8, 4, True), F(8, 8, False))
    assert exp(narrow, [0, 5]).tolist() == [255, 255]
    assert exp(spec, [-128]).tolist() == [0]  # exp(-8) * 2**8 = 0.086 rounds to 0
    for spec, golden in ((ReciprocalSpec(F(8, 4, False), F(8, 4, True), overflow=Overflow.WRAP), reciprocal),
                         (RsqrtSpec(F(8, 4, False), F(8, 4, False), overflow=Overflow.WRAP), rsqrt)):
        assert golden(spec, [0]).tolist() == [spec.output.max_code]
    # Exact powers of two come out exact.
    recip = ReciprocalSpec(F(12, 4, False), F(12, 6, False), newton_steps=1)
    assert reciprocal(recip, [16, 32, 4, 1024]).tolist() == [64, 32, 256, 1]
    root = RsqrtSpec(F(12, 4, False), F(12, 8, False), newton_steps=1)
    assert rsqrt(root, [16, 64, 4, 1024]).tolist() == [256, 128, 512, 32]


# --------------------------------------------------------------------------- the stream unit

class Negate(wiring.Component):
    """A combinational block (latency 0) for the stream unit's pass-through path."""

    latency = 0

    def __init__(self):
        super().__init__({"x": In(8), "y": Out(8), "en": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(~self.x)
        return m


def _stream(unit, rows, lanes, valid_prob, ready_prob, seed, max_cycles=20000):
    """Rows in through ``inp`` and out through ``out`` in Amaranth's simulator; returns beats and cycles."""
    rng = random.Random(seed)
    beats = []
    for row in rows:
        for start in range(0, len(row), lanes):
            part = row[start:start + lanes]
            beats.append((part + [rng.randint(0, 255)] * (lanes - len(part)), len(part),
                          int(start + lanes >= len(row))))
    got, moved_in = [], []

    async def bench(ctx):
        index = cycle = 0
        while len(got) < len(beats) and cycle < max_cycles:
            offer = index < len(beats) and rng.random() < valid_prob
            ctx.set(unit.inp.valid, offer)
            if offer:
                data, count, last = beats[index]
                ctx.set(unit.inp.payload, {"data": data, "last": last, **({"count": count} if lanes > 1 else {})})
            ctx.set(unit.out.ready, rng.random() < ready_prob)
            _, _, in_ready, out_valid, out_ready, payload = await ctx.tick().sample(
                unit.inp.ready, unit.out.valid, unit.out.ready, unit.out.payload)
            if offer and in_ready:
                moved_in.append(cycle)
                index += 1
            if out_valid and out_ready:
                got.append((list(payload.data), int(payload.count) if lanes > 1 else 1, int(payload.last)))
            cycle += 1

    top = Module()
    top.submodules.unit = unit
    top.domains.sync = ClockDomain()  # a latency-0 unit has no registers, hence no domain of its own
    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return beats, got


@pytest.mark.parametrize("lanes", [1, 3])
@pytest.mark.parametrize("flow", [(1.0, 1.0), (0.6, 0.4)])
def test_stream_unit_with_a_pipelined_block(lanes, flow):
    spec = ExpSpec(F(8, 4, True), F(8, 7, False), table_bits=3)
    unit = Elementwise(lambda: Exp(spec), spec.input, spec.output, lanes)
    rng = random.Random(lanes)
    rows = [[rng.randint(-128, 127) for _ in range(rng.randint(1, 3 * lanes + 1))] for _ in range(40)]
    beats, got = _stream(unit, rows, lanes, *flow, seed=7)
    assert len(got) == len(beats)
    for (data_in, count_in, last_in), (data_out, count_out, last_out) in zip(beats, got):
        assert (count_out, last_out) == (count_in, last_in)
        assert data_out[:count_in] == exp(spec, data_in[:count_in]).tolist()


@pytest.mark.parametrize("flow", [(1.0, 1.0), (0.5, 0.5)])
def test_stream_unit_with_a_combinational_block(flow):
    unit = Elementwise(Negate, F(8, 0, False), F(8, 0, False), 2)
    assert unit.latency == 0
    rows = [[n, n + 1, n + 2][: 1 + n % 3] for n in range(0, 200, 3)]
    beats, got = _stream(unit, rows, 2, *flow, seed=3)
    assert [(d[:c], c, last) for d, c, last in got] == [([255 - v for v in d[:c]], c, last) for d, c, last in beats]


class FakeBlock:
    def __init__(self, latency):
        self.latency = latency


def test_stream_unit_rejects_blocks_of_different_latency():
    blocks = iter([FakeBlock(1), FakeBlock(2)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the half-built unit is never elaborated
        with pytest.raises(ValueError, match="different latencies") as caught:
            Elementwise(lambda: next(blocks), F(8, 4, True), F(8, 7, False), 2)
        del caught
        gc.collect()


# --------------------------------------------------------------------------- goldens against float

def _errors_lsb(spec, golden, reference):
    """|golden - real| in output LSBs over every input code, the real value clipped to the output range."""
    codes = spec.input.codes()
    real = np.clip(reference(spec, codes), float(spec.output.min_value), float(spec.output.max_value))
    return codes, np.abs(spec.output.to_float(golden(spec, codes)) - real) * 2.0 ** spec.output.frac


def exp_bound_lsb(spec: ExpSpec) -> float:
    """Worst-case |exp error| in output LSBs, from the algorithm's steps.

    Output rounding (1/2 LSB; 1 for truncate); t rounded to frac_bits
    (``ln2 * 2**-(frac_bits+1)`` relative); the table entry's rounding
    (``2**-(entry_frac+1)``); then either the chord error of linear interpolation
    (``(ln2 * h)**2 / 8``, ``h = 2**-table_bits``) plus the interpolation's own
    rounding, or the nearest-entry error ``ln2 * h / 2``.
    """
    lsb = 2.0 ** -spec.output.frac
    h = 2.0 ** -spec.table_bits
    out = 1.0 if spec.rounding is Rounding.TRUNCATE else 0.5
    internal = math.log(2) * 2.0 ** -(spec.frac_bits + 1) + 2.0 ** -(spec.entry_frac + 1)
    if spec.interpolate:
        internal += (math.log(2) * h) ** 2 / 8 + 2.0 ** -(spec.entry_frac + 1)
    else:
        internal += math.log(2) * h / 2
    return out + internal / lsb


def newton_relative_bound(spec) -> float:
    """Relative error after the Newton steps: seed bound, then per step the quadratic rule plus roundings."""
    rounding = 2.0 ** -spec.frac_bits
    h = 2.0 ** -spec.table_bits
    if isinstance(spec, ReciprocalSpec):
        eps = h / 2 + rounding  # s = 2 / (a + b) is off by at most (b - a) / (a + b)
        for _ in range(spec.newton_steps):
            eps = eps ** 2 + 4 * rounding  # m * s' = 1 - eps**2
    else:
        eps = h / 4 + rounding  # (sqrt(b) - sqrt(a)) / (sqrt(a) + sqrt(b)) <= (b - a) / (4a)
        for _ in range(spec.newton_steps):
            eps = 1.5 * eps ** 2 + 0.5 * eps ** 3 + 6 * rounding  # s' sqrt(M) = 1 - 1.5 eps**2 - eps**3 / 2
    return eps


@pytest.mark.parametrize("spec", [
    ExpSpec(F(10, 6, True), F(16, 15, False)),
    ExpSpec(F(10, 6, True), F(12, 11, False), table_bits=4),
    ExpSpec(F(12, 8, True), F(16, 16, False), table_bits=7),
    ExpSpec(F(10, 6, True), F(12, 11, False), table_bits=8, interpolate=False),
    ExpSpec(F(16, 11, True), F(16, 15, False), table_bits=6, rounding=Rounding.TRUNCATE),
], ids=lambda s: f"{s.input.describe()}-{s.output.describe()}-t{s.table_bits}{'lin' if s.interpolate else 'tab'}")
def test_exp_golden_within_derived_bound(spec):
    _, errors = _errors_lsb(spec, exp, exp_float)
    bound = exp_bound_lsb(spec)
    assert errors.max() <= bound
    assert errors.max() > 0.3  # the measure is not blind: rounding alone costs up to half an LSB


@pytest.mark.parametrize("spec", [
    ReciprocalSpec(F(16, 8, False), F(16, 8, False), table_bits=6, newton_steps=1),
    ReciprocalSpec(F(12, 12, False), F(16, 4, False), table_bits=4, newton_steps=2),
    ReciprocalSpec(F(10, 4, False), F(12, 10, False), table_bits=8, newton_steps=0),
    RsqrtSpec(F(16, 8, False), F(16, 12, False), table_bits=6, newton_steps=1),
    RsqrtSpec(F(13, 5, False), F(16, 14, False), table_bits=4, newton_steps=2),
    RsqrtSpec(F(12, 0, False), F(12, 11, False), table_bits=8, newton_steps=0, rounding=Rounding.TRUNCATE),
], ids=lambda s: f"{type(s).__name__[:5]}-{s.input.describe()}-{s.output.describe()}-n{s.newton_steps}")
def test_newton_goldens_within_derived_bound(spec):
    """|error| <= output rounding + relative bound * |f(x)| (in LSBs), over every nonzero input code."""
    golden, reference = (reciprocal, reciprocal_float) if isinstance(spec, ReciprocalSpec) else (rsqrt, rsqrt_float)
    codes, errors = _errors_lsb(spec, golden, reference)
    real = np.clip(reference(spec, codes), 0, float(spec.output.max_value))
    out = 1.0 if spec.rounding is Rounding.TRUNCATE else 0.5
    bound = out + newton_relative_bound(spec) * real * 2.0 ** spec.output.frac
    nonzero = codes > 0
    excess = errors[nonzero] - bound[nonzero]
    assert excess.max() <= 1e-9, f"x={codes[nonzero][excess.argmax()]}: {errors[nonzero][excess.argmax()]} LSB"
    assert errors[nonzero].max() > 0.3


# --------------------------------------------------------------------------- configs

EXP_HEAD = "kind: exp\nname: e\ninput: {width: 8, frac: 4, signed: true}\noutput: {width: 8, frac: 8, signed: false}\n"
UNSIGNED_IO = "input: {width: 8, frac: 4, signed: false}\noutput: {width: 8, frac: 4, signed: false}\n"


@pytest.mark.parametrize("text, parts", [
    (EXP_HEAD.replace("4, signed: true", "4, signed: false"), ["input", "a signed format"]),
    (EXP_HEAD + "method: cubic\n", ["method", "'cubic'", "'table', 'linear'"]),
    (EXP_HEAD + "table_bits: 8\nfrac_bits: 8\n", ["frac_bits", "above table_bits"]),
    (EXP_HEAD + "table_bits: 13\n", ["table_bits", "13", "from 1 to 12"]),
    (EXP_HEAD + "rounding: nearest\n", ["rounding", "'round_half_even'"]),
    ("kind: exp\nname: e\ninput: {width: 32, frac: 4, signed: true}\noutput: {width: 32, frac: 30, signed: false}\n",
     ["frac_bits", "intermediate values would need"]),
    ("kind: reciprocal\nname: r\n" + UNSIGNED_IO.replace("4, signed: false}\no", "4, signed: true}\no"),
     ["input", "an unsigned format"]),
    ("kind: rsqrt\nname: r\n" + UNSIGNED_IO + "newton_steps: 4\n", ["newton_steps", "from 0 to 3"]),
    ("kind: rsqrt\nname: r\n" + UNSIGNED_IO + "table_bits: 8\nfrac_bits: 6\n", ["frac_bits", "from table_bits"]),
    ("kind: reciprocal\nname: r\n" + UNSIGNED_IO + "lanes: 0\n", ["lanes", "from 1 to 64"]),
])
def test_bad_configs_give_one_line(text, parts):
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "cfg.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cfg.yaml: ")
    for part in parts:
        assert part in message, message


def test_defaults_are_derived_into_the_normalised_config():
    cfg = parse_config_text("kind: exp\nname: e\ninput: {width: 8, frac: 4, signed: true}\n"
                            "output: {width: 8, frac: 7, signed: false}\n", "cfg.yaml")
    assert (cfg.lanes, cfg.method, cfg.table_bits, cfg.frac_bits, cfg.entry_frac) == (1, "linear", 6, 9, 9)
    cfg = parse_config_text("kind: rsqrt\nname: r\ninput: {width: 8, frac: 4, signed: false}\n"
                            "output: {width: 12, frac: 7, signed: false}\n", "cfg.yaml")
    assert (cfg.newton_steps, cfg.frac_bits, cfg.rounding, cfg.overflow) == (1, 14, "round_half_even", "saturate")


# --------------------------------------------------------------------------- testbench, host side

def test_vectors_are_reproducible_and_golden():
    cfg = parse_config_text("kind: reciprocal\nname: r\nlanes: 3\n" + UNSIGNED_IO, "c.yaml")
    vectors = make_vectors(cfg, seed=9, n_random=25, valid_prob=0.5)
    assert vectors == make_vectors(cfg, seed=9, n_random=25, valid_prob=0.5)
    assert vectors != make_vectors(cfg, seed=10, n_random=25, valid_prob=0.5)
    assert vectors["exhaustive"] and vectors["flow"] == {"valid_prob": 0.5, "ready_prob": 1.0}
    lengths = [len(row["x"]) for row in vectors["rows"]]
    assert min(lengths) == 1 and max(lengths) <= 4 * cfg.lanes + 1
    for row in vectors["rows"]:
        assert row["y"] == reciprocal(cfg.spec(), row["x"]).tolist()
    assert sum(row["label"].startswith("random") for row in vectors["rows"]) == 25
    narrow = make_vectors(cfg, seed=9, n_random=0, edge_cases=False, exhaustive=False)
    assert narrow["rows"] == []


def test_mismatch_reports_and_summary():
    vectors = {"rows": [{"label": "a", "x": [1, 2], "y": [5, 6]}, {"label": "b", "x": [3], "y": [7]}]}
    assert first_mismatch(vectors, {"rows": [[5, 6], [7]]}) is None
    m = first_mismatch(vectors, {"rows": [[5, 9], [7]]})
    assert describe_mismatch(m) == "row 0 (a): element [1] (input 2) expected 6, got 9"
    m = first_mismatch(vectors, {"rows": [[5, 6], [7, 8]]})
    assert describe_mismatch(m) == "row 1 (b): expected 1 elements, got 2 elements"
    manifest = {"parameters": {"latency": 4, "latency_rule": "beat", "lanes": 2}}
    lines = summary_lines(manifest, vectors, {"cycles": 10, "beat_latency": [4, 4], "beats_in": 2,
                                              "beats_out": 2}, 1.5)
    assert "2 rows, 3 elements" in lines[0] and "4 cycles measured" in lines[1] and "0.30 elements/cycle" in lines[2]


# --------------------------------------------------------------------------- RTL

RTL = ("exp_s10_l3", "exp_s8_table", "recip_u10_l2", "rsqrt_u12_n2", "rsqrt_u16_l4")
FLOWS = {"full_rate": (1.0, 1.0), "gaps_and_backpressure": (0.7, 0.45)}


@per_config(*RTL)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_kind_bit_exact_through_the_rtl(built, config_name, flow, tmp_path):
    """Edge rows, every input code (inputs of up to 12 bits) and random rows, against the golden model."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=len(flow) + cfg.lanes, n_random=30, valid_prob=FLOWS[flow][0],
                              ready_prob=FLOWS[flow][1])
    codes = {x for row in vectors["rows"] for x in row["x"]}
    fmt = cfg.input.format
    assert {fmt.min_code, fmt.max_code, 0} <= codes
    if fmt.width <= 12:
        assert vectors["exhaustive"] and codes == set(fmt.codes().tolist())
    assert {len(row["x"]) % cfg.lanes for row in vectors["rows"]} == set(range(cfg.lanes))

    result = run(model, tb, vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems, result.log)
    params = model.manifest["parameters"]
    beats = sum(-(-len(row["x"]) // cfg.lanes) for row in vectors["rows"])
    assert result.results["beats_out"] == beats
    if flow == "full_rate":
        assert set(result.results["beat_latency"]) == {params["latency"]}
        # One beat per cycle: the last beat leaves latency cycles after the last one entered.
        assert result.results["cycles"] == beats + params["latency"]
    else:
        assert max(result.results["beat_latency"]) > params["latency"]  # the stalls happened


@per_config("exp_s10_l3")
def test_wrong_golden_value_is_reported(built, config_name, tmp_path):
    model = built(config_name)
    tb = sim_testbench(model.config)
    vectors = tb.make_vectors(model.config, seed=4, n_random=2, exhaustive=False)
    vectors["rows"][1]["y"][0] += 1

    result = run(model, tb, vectors, tmp_path)

    assert not result.ok and result.cocotb_failed
    m = result.mismatch
    assert (m["row"], m["index"]) == (1, [0]) and m["expected"] == m["got"] + 1
    assert first_mismatch(vectors, {"rows": []})["got"].startswith("nothing")
