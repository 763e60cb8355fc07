"""``mac: opt2`` (same-bit-weight compressor array, ``hw/tpe/bitweight.py``) beyond the shared TPE tests.

The shared cocotb runs (``tests/test_tpe_rtl.py``: edge cases, random jobs, back to
back at full rate and with back-pressure, latency and job interval, every fault
site) cover the ``*_opt2`` configs through ``RTL_CONFIGS``. Here: the digit
encoder and the bit-weight MAC in Amaranth's simulator against Python integers
(every operand, every digit pattern at the range ends, sums cut to the bits that
reach a narrow accumulator), that the reduction adders are narrow, the config
errors and the manifest, and in Verilator: operands whose digits are all of
magnitude 2, sums that wrap past ``k_max``, reset mid-job, and a bit flipped in a
per-weight sum register.
"""

import itertools
import math
import random
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Shape
from amaranth.sim import Simulator
from conftest import RTL_CONFIGS, per_config
from test_tpe_rtl import _job
from test_tpe_rtl import test_reset_mid_job_discards_everything_in_flight as _reset_mid_job

from gen.config import load_config, parse_config_data
from gen.elaborate import elaborate
from gen.errors import ConfigError
from hw.arith.booth import booth_digits
from hw.arith.widths import operand_range
from hw.tpe.bitweight import BitWeightMac, DigitEncoder, digit_count, sum_widths
from npuforge.registry import sim_testbench
from sim.runner import run

OPT2 = tuple(name for name in RTL_CONFIGS if name.endswith("_opt2"))


def _run(module, bench):
    sim = Simulator(module)
    sim.add_clock(1e-6, if_exists=True)
    sim.add_testbench(bench)
    sim.run()


def _digit_value(ctx, digit) -> int:
    negative, one, two = ctx.get(digit.negative), ctx.get(digit.one), ctx.get(digit.two)
    assert not (one and two) and not (negative and not (one or two))  # one-hot magnitude, no negative zero
    return (-1 if negative else 1) * (one + 2 * two)


def _digit_bits(value: int) -> int:
    """A digit's (negative, one, two) bits as one integer, ``negative`` lowest (the layout's order)."""
    return int(value < 0) | int(abs(value) == 1) << 1 | int(abs(value) == 2) << 2


def _wrap(value: int, width: int, signed: bool) -> int:
    value &= (1 << width) - 1
    return value - (1 << width) if signed and value >> (width - 1) else value


# -- the encoder and the MAC in Amaranth's simulator ------------------------------------------------


@pytest.mark.parametrize("width", [4, 5, 6, 8])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_encoder_digits_rebuild_every_operand(width, signed):
    """Every operand's digits are its radix-4 Booth digits, in sign-magnitude form."""
    shape = Shape(width, signed)
    dut = DigitEncoder(shape)
    assert len(dut.digits) == digit_count(shape) == (width + (1 if signed else 2)) // 2
    lo, hi = operand_range(width, signed)

    async def bench(ctx):
        for a in range(lo, hi + 1):
            ctx.set(dut.a, a)
            digits = [_digit_value(ctx, digit) for digit in dut.digits]
            assert digits == booth_digits(a, width, signed), a
            assert sum(d * 4 ** w for w, d in enumerate(digits)) == a

    _run(dut, bench)


def _mac_harness(depth, shape, acc_width, registered):
    """Encoders in front of a :class:`BitWeightMac`, as the grid wires them."""
    m = Module()
    m.submodules.mac = mac = BitWeightMac(depth, shape, acc_width, registered=registered)
    encoders = []
    for s in range(depth):
        m.submodules[f"encode_{s}"] = encoder = DigitEncoder(shape)
        m.d.comb += mac.digits[s].eq(encoder.digits)
        encoders.append(encoder)
    return m, mac, encoders


@pytest.mark.parametrize("width", [4, 5, 6])
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("acc_width", ["exact", "narrow"])
def test_every_operand_pair_through_encoder_and_mac(width, signed, acc_width):
    """Every (a, b) pair plus an addend, with an exact accumulator and with one narrower than a
    product, so the per-weight sums are cut to the bits that reach it."""
    shape = Shape(width, signed)
    bits = 2 * width + 1 if acc_width == "exact" else width + 1
    m, mac, (encoder,) = _mac_harness(1, shape, bits, registered=False)
    if acc_width == "narrow":
        assert min(sum_widths(1, shape, bits)) < max(sum_widths(1, shape, bits))  # some sums really are cut
    lo, hi = operand_range(width, signed)
    rng = random.Random(width)

    async def bench(ctx):
        for a, b in itertools.product(range(lo, hi + 1), repeat=2):
            addend = _wrap(rng.getrandbits(bits), bits, signed)
            ctx.set(encoder.a, a)
            ctx.set(mac.b[0], b)
            ctx.set(mac.addend, addend)
            assert ctx.get(mac.total) == _wrap(addend + a * b, bits, signed), (a, b, addend)

    _run(m, bench)


@pytest.mark.parametrize("width,signed,depth", [(8, True, 16), (8, False, 5), (6, False, 3), (4, True, 1)])
def test_digit_extremes_fill_the_per_weight_sums(width, signed, depth):
    """Digits set directly (every pattern of -2 and +2, then random digits) against operands at the
    range ends: each per-weight sum reaches both ends of its range, and the total stays exact."""
    shape = Shape(width, signed)
    count = digit_count(shape)
    acc_width = 2 * width + math.ceil(math.log2(depth)) + 3
    dut = BitWeightMac(depth, shape, acc_width, registered=False)
    lo, hi = operand_range(width, signed)
    rng = random.Random(depth)
    cases = [([[d] * count] * depth, [b] * depth) for d in (-2, 2, 0) for b in (lo, hi, 0)]
    cases += [([[rng.choice((-2, 2)) for _ in range(count)] for _ in range(depth)],
               [rng.choice((lo, hi)) for _ in range(depth)]) for _ in range(50)]
    cases += [([[rng.randint(-2, 2) for _ in range(count)] for _ in range(depth)],
               [rng.randint(lo, hi) for _ in range(depth)]) for _ in range(200)]

    async def bench(ctx):
        for digits, b in cases:
            addend = _wrap(rng.getrandbits(acc_width), acc_width, signed)
            ctx.set(dut.addend, addend)
            # Whole arrays at once (one settle each): digit (s, w) is bits 3*(s*count + w) up,
            # (negative, one, two) in that order; b[s] is bits width*s up.
            ctx.set(dut.digits.as_value(), sum(_digit_bits(digits[s][w]) << 3 * (s * count + w)
                                               for s in range(depth) for w in range(count)))
            ctx.set(dut.b.as_value(), sum((b[s] & ((1 << width) - 1)) << width * s for s in range(depth)))
            exact = sum(digits[s][w] * 4 ** w * b[s] for s in range(depth) for w in range(count))
            assert ctx.get(dut.total) == _wrap(addend + exact, acc_width, signed), (digits, b)

    _run(dut, bench)


def test_registered_sums_load_only_when_advancing():
    """With ``registered``, ``total`` uses the sums of the last cycle ``advance`` was high."""
    shape = Shape(6, True)
    m, mac, encoders = _mac_harness(3, shape, 16, registered=True)

    async def bench(ctx):
        def apply(a, b):
            for s in range(3):
                ctx.set(encoders[s].a, a[s])
                ctx.set(mac.b[s], b[s])

        ctx.set(mac.addend, 5)
        apply([-32, 31, 7], [-32, -32, 3])
        ctx.set(mac.advance, 1)
        await ctx.tick()
        held = 5 + 1024 - 992 + 21
        assert ctx.get(mac.total) == held
        ctx.set(mac.advance, 0)
        apply([1, 2, 3], [4, 5, 6])
        await ctx.tick()
        assert ctx.get(mac.total) == held
        ctx.set(mac.addend, -7)
        assert ctx.get(mac.total) == held - 12
        ctx.set(mac.advance, 1)
        await ctx.tick()
        assert ctx.get(mac.total) == -7 + 4 + 10 + 18

    _run(m, bench)


# -- narrow adders ---------------------------------------------------------------------------------


def _declared_widths(text: str) -> dict[str, int]:
    widths = {}
    for match in re.finditer(r"^\s*(?:wire|reg) (?:signed )?(?:\[(\d+):0\] )?(\\?\S+)\s*(?:=[^;]*)?;", text, re.M):
        widths[match.group(2)] = int(match.group(1) or 0) + 1
    return widths


def _additions(text: str) -> list[int]:
    """Width of the target of every ``assign x = ... + ...;`` in ``text``."""
    widths = _declared_widths(text)
    return [widths[target] for target in re.findall(r"^\s*assign (\\?\S+)\s*= [^;]* \+ [^;]*;", text, re.M)]


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_paper_size_tree_adds_partial_products_in_narrow_adders(signed):
    """adder_tree at the paper's k_tile 16, INT8: every adder of the same-weight reduction has at most
    9 + log2(16) + 1 bits (unsigned partial products are one bit wider, but never both ends), against the
    accumulator's 22; only the shift-and-add (one add per bit weight) is accumulator-wide."""
    shape = Shape(8, signed)
    mac = BitWeightMac(16, shape, 22, registered=True)
    text = verilog.convert(mac, name="bitweight")
    assert " * " not in text
    # Signed: 16 terms d * b in [-256, 256] sum to [-4096, 4096]; unsigned: inverted partial products
    # in [-511, 510] and negation bits to [-8176, 8176]. Both 14 bits, where the accumulator has 22.
    narrow = 14
    assert sum_widths(16, shape, 22) == [narrow] * digit_count(shape)
    declared = _declared_widths(text)
    nodes = [width for name, width in declared.items() if re.fullmatch(r"bw\d+(_pp|_neg)?_\d+_\d+", name)]
    assert len(nodes) == digit_count(shape) * 31 and max(nodes) == narrow
    assert declared["pp_0_0"] == 9 + (0 if signed else 1)
    # Each add is one bit wider than its wider operand (the named node keeps the bits the range needs).
    adds = _additions(text)
    wide = [width for width in adds if width > narrow + 1]
    assert len(wide) == digit_count(shape) and min(wide) >= 22
    # Per bit weight: 15 adds of partial products, 15 of negation bits, one joining them.
    assert len(adds) - len(wide) == digit_count(shape) * 31


@pytest.mark.parametrize("name", OPT2)
def test_pe_has_no_multiplier_and_only_narrow_reduction(name):
    """In the generated PE: no ``*`` (the baseline's PE has one per step); every add but the
    shift-and-add is narrower than the accumulator."""
    cfg = load_config(RTL_CONFIGS[name])
    elab = elaborate(cfg)
    baseline = elaborate(cfg.model_copy(update={"mac": "baseline"}))
    assert " * " not in _pe_verilog(elab.verilog) and " * " in _pe_verilog(baseline.verilog)
    adds = _additions(_pe_verilog(elab.verilog, ".bitweight"))
    count = digit_count(Shape(cfg.operand.width, cfg.operand.signed))
    assert len([width for width in adds if width >= cfg.acc_width]) == count
    depth = cfg.depth or cfg.k_tile or 1
    narrow = cfg.operand.width + 3 + math.ceil(math.log2(depth))  # exact sum, + 1 for the add's carry
    assert max(width for width in adds if width < cfg.acc_width) <= narrow < cfg.acc_width


def _pe_verilog(text: str, suffix: str = "") -> str:
    """The first PE's modules (``suffix``: one of its submodules only), comments dropped."""
    bodies = [body for body in text.split("\nmodule ")[1:] if f".pe_0_0{suffix}" in body.split("(", 1)[0]]
    assert bodies
    return "\n".join(line for body in bodies for line in body.splitlines() if not line.lstrip().startswith("//"))


# -- config and manifest ---------------------------------------------------------------------------


BASE = {"kind": "tpe", "name": "t", "operand": {"width": 8, "signed": True}, "k_max": 8, "mac": "opt2"}
GEOMETRY = {
    "systolic_os": {"rows": 2, "cols": 3},
    "systolic_ws": {"rows": 2, "cols": 3, "k_max": None},
    "cube": {"rows": 2, "cols": 2, "depth": 2},
    "adder_tree": {"cols": 2, "k_tile": 4},
    "matrix2d": {"rows": 2, "cols": 3},
}


def _data(arch, **changes):
    data = {**BASE, "arch": arch, **GEOMETRY[arch], **changes}
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.parametrize("arch", ["cube", "adder_tree", "matrix2d"])
def test_opt2_is_accepted_where_it_applies(arch):
    cfg = parse_config_data(_data(arch), "a")
    assert cfg.mac == "opt2" and "mac opt2" in cfg.describe() and cfg.normalized()["mac"] == "opt2"
    assert cfg.config_hash() != parse_config_data(_data(arch, mac="baseline"), "b").config_hash()


@pytest.mark.parametrize("arch", ["systolic_os", "systolic_ws"])
def test_opt2_elsewhere_is_a_one_line_error(arch):
    with pytest.raises(ConfigError) as caught:
        parse_config_data(_data(arch), "cfg.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cfg.yaml: mac: got 'opt2'")
    assert f"one of 'baseline', 'opt1' for arch '{arch}'" in message
    assert "'opt2' applies to cube, adder_tree, matrix2d only" in message


@pytest.mark.parametrize("name", OPT2)
def test_manifest_records_mac_and_per_weight_sum_registers(name):
    cfg = load_config(RTL_CONFIGS[name])
    elab = elaborate(cfg)
    baseline = elaborate(cfg.model_copy(update={"mac": "baseline"}))
    assert elab.parameters["mac"] == "opt2" and baseline.parameters["mac"] == "baseline"
    keep = {"job", "job_interval", "flow_control", "mac_units", "acc_width", "k_max", "latency"}
    assert {k: elab.parameters[k] for k in keep} == {k: baseline.parameters[k] for k in keep}
    sites = {site.path: site.width for site in elab.fault_sites}
    old = {site.path: site.width for site in baseline.fault_sites}
    registered = cfg.arch != "matrix2d"
    depth = cfg.depth or cfg.k_tile or 1
    widths = sum_widths(depth, Shape(cfg.operand.width, cfg.operand.signed), cfg.acc_width)
    rows = cfg.rows or 1
    for i, j in itertools.product(range(rows), range(cfg.cols)):
        pe = f"core.pe_{i}_{j}"
        # The baseline's exact tree sum ``dot`` becomes one narrow register per bit weight.
        assert (f"{pe}.dot" in old) == registered and f"{pe}.dot" not in sites
        for w, width in enumerate(widths):
            assert sites.pop(f"{pe}.bitweight.bw_sum_{w}", None) == (width if registered else None)
        if registered:
            assert sum(widths) > old.pop(f"{pe}.dot")
    # Everything else is the baseline's: the edge encoders hold no state.
    assert sites == old


# -- in Verilator ----------------------------------------------------------------------------------


def _all_two_digits(width: int, signed: bool) -> list[int]:
    """Operands with the most digits of magnitude 2 (e.g. signed INT8 102 = (-2, 2, -2, 2))."""
    lo, hi = operand_range(width, signed)
    score = {a: sum(abs(d) == 2 for d in booth_digits(a, width, signed)) for a in range(lo, hi + 1)}
    best = max(score.values())
    return [a for a, n in score.items() if n == best]


@per_config(*OPT2)
def test_all_two_digit_operands_and_sums_past_k_max(built, config_name, tmp_path):
    """Every A digit of magnitude 2 against B at the range ends fills the per-weight sums to their
    extremes; at 10 * k_max steps the accumulator wraps; short jobs follow back to back."""
    model = built(config_name)
    cfg = model.config
    width, signed = cfg.operand.width, cfg.operand.signed
    lo, hi = operand_range(width, signed)
    twos = _all_two_digits(width, signed)
    assert len(twos) >= 1 and max(sum(abs(d) == 2 for d in booth_digits(a, width, signed)) for a in twos) >= 2
    rows, rng = cfg.c_rows, np.random.default_rng(12)
    jobs = []
    for k in (cfg.k_max, 10 * cfg.k_max, 1):
        a = rng.choice(twos, size=(rows, k))
        b = rng.choice([lo, hi], size=(k, cfg.cols))
        b[:, 0] = lo
        jobs.append(_job(f"two-digits K={k}", a, b, cfg))
    long_k = 10 * cfg.k_max
    assert long_k * max(abs(lo), hi) ** 2 >= 1 << (cfg.acc_width - (1 if signed else 0))  # it does wrap
    extreme = lo if signed else hi  # the largest product
    jobs.append(_job("extremes wrap", np.full((rows, long_k), extreme), np.full((long_k, cfg.cols), extreme), cfg))
    jobs.append(_job("after", np.full((rows, 2), hi), np.full((2, cfg.cols), lo), cfg))
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=3, n_random=0, edge_cases=False, ready_prob=0.6)
    vectors["jobs"] = jobs

    result = run(model, tb, vectors, tmp_path)
    assert result.ok, (result.mismatch, result.problems, result.log)


@per_config(*OPT2)
def test_opt2_reset_mid_job_discards_everything_in_flight(built, config_name, tmp_path):
    _reset_mid_job(built, config_name, tmp_path)


@per_config("tree_2x4_s8_opt2")
def test_bit_flipped_in_a_per_weight_sum_moves_one_element_by_its_shifted_weight(built, config_name, tmp_path):
    """Bit 3 of PE 1's weight-2 sum, flipped mid-job, moves C[0][1] by 2**(3 + 2*2), nothing else."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    rng = np.random.default_rng(9)
    k = 20 * cfg.k_tile  # beats 0..19 at full rate; bw_sum_* hold beat n in cycle n + 2
    a = rng.integers(-128, 128, size=(1, k))
    b = rng.integers(-128, 128, size=(k, cfg.cols))
    vectors = tb.make_vectors(cfg, seed=5, n_random=0, edge_cases=False)
    vectors["jobs"] = [_job("victim", a, b, cfg)]
    vectors["inject"] = [{"path": "core.pe_0_1.bitweight.bw_sum_2", "bit": 3, "cycle": 11}]

    result = run(model, tb, vectors, tmp_path)

    assert result.results["injected"][0]["applied_at"] == 11
    m = result.mismatch
    assert m is not None and (m["job"], m["index"]) == (0, [0, 1])
    assert (m["got"] - m["expected"]) % (1 << cfg.acc_width) in {1 << 7, (1 << cfg.acc_width) - (1 << 7)}
    got = np.array(result.results["jobs"][0])
    assert (got != np.array(vectors["jobs"][0]["c"])).sum() == 1
