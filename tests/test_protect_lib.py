"""The protection library (``hw/protect``) in Amaranth's simulator, and its Verilog under lint.

SECDED: for data widths 8, 16 and 32, the RTL encoder feeds the RTL decoder
through an error mask; for several data words (0, all ones, alternating bits,
random) every single-bit error (data, check and parity bits) must be corrected
and flagged ``single_error``, every double-bit error flagged ``double_error`` and
passed through uncorrected. Other widths (2 .. 64) are checked on every single
error and sampled double errors; the Python model over every 8-bit word.
TMR voter, DMR comparator, residue, parity, clip: every single-bit error, or
every input. ABFT: the RTL checker and the numpy golden agree on clean tiles
and on every single-element error (several error values), and both repair it.
The register hook: every mechanism stores and holds, and each stored bit
flipped shows the documented alarm and repair. Every component converts to
Verilog that passes the project's Verilator lint.
"""

import itertools
import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.data import StructLayout
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

import gen.toolchain  # noqa: F401 -- pins Amaranth's built-in Yosys before any conversion
from gen.lint import lint
from gen.verilog_scan import scan_modules
from hw.protect import (
    MECHANISMS,
    REGISTER_MECHANISMS,
    AbftChecker,
    AbftEncoder,
    AbftRowChecker,
    Clip,
    Comparator,
    MacResidueChecker,
    MacResidueShadow,
    Mod3Residue,
    ParityChecker,
    ParityEncoder,
    SecdedDecoder,
    SecdedEncoder,
    Voter,
    WordDecoder,
    WordEncoder,
    code_width,
    mechanisms_for,
    protected_register,
    register_names,
    stored_width,
)
from hw.protect import secded
from sim.golden import abft as abft_golden

# Constructors that reject their arguments leave a half-made Elaboratable behind.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _run(module, bench, clock=False):
    sim = Simulator(module)
    if clock:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _flipped(value: int, bit: int, shape) -> int:
    """``value`` with one bit flipped, read back as a value of ``shape`` (two's complement if signed)."""
    raw = (value & ((1 << shape.width) - 1)) ^ 1 << bit
    return raw - (1 << shape.width) if shape.signed and raw >> (shape.width - 1) else raw


def _words(width: int, count: int, seed: int) -> list[int]:
    """0, all ones, both alternating patterns, the top bit alone and ``count`` random words."""
    ones = (1 << width) - 1
    alternating = int("01" * width, 2) & ones
    rng = random.Random(seed)
    return [0, ones, alternating, ones ^ alternating, 1 << (width - 1)] + [rng.getrandbits(width) for _ in range(count)]


def _secded_chain(width: int):
    """Encoder -> XOR with an error mask -> decoder."""
    m = Module()
    m.submodules.enc = enc = SecdedEncoder(width)
    m.submodules.dec = dec = SecdedDecoder(width)
    error = wiring.Signature({"mask": Out(code_width(width))}).create().mask
    m.d.comb += dec.code.eq(enc.code ^ error)
    return m, enc, dec, error


# --- SECDED ---------------------------------------------------------------------------

def test_secded_code_widths():
    assert [code_width(k) for k in (2, 4, 8, 11, 16, 26, 32, 57, 64)] == [6, 8, 13, 16, 22, 32, 39, 64, 72]
    for bad in (0, 1, 2.0):
        with pytest.raises(ValueError, match="data_width"):
            SecdedEncoder(bad)


def test_secded_model_every_8_bit_word():
    """The Python model: every 8-bit word, every single and double error (23,296 decodes)."""
    k, n = 8, code_width(8)
    for data in range(1 << k):
        code = secded.encode(data, k)
        assert code & 0xFF == data  # systematic
        assert secded.decode(code, k) == (data, 0, False, False)
        for bit in range(n):
            assert secded.decode(code ^ 1 << bit, k)[0::2] == (data, True)
        for i, j in itertools.combinations(range(n), 2):
            received = code ^ 1 << i ^ 1 << j
            _, _, single, double = secded.decode(received, k)
            assert double and not single


@pytest.mark.parametrize("width, random_words", [(8, None), (16, 4), (32, 2)])
def test_secded_rtl_corrects_every_single_and_detects_every_double_error(width, random_words):
    """Exhaustive over error patterns: 8 bits on all 256 words, 16 and 32 bits on 9 and 7 words."""
    m, enc, dec, error = _secded_chain(width)
    n = code_width(width)
    words = list(range(1 << width)) if random_words is None else _words(width, random_words, seed=width)
    singles = [1 << bit for bit in range(n)]
    doubles = [1 << i | 1 << j for i, j in itertools.combinations(range(n), 2)]
    checked = []

    async def bench(ctx):
        for data in words:
            ctx.set(enc.data, data)
            ctx.set(error, 0)
            code = ctx.get(enc.code)
            assert code == secded.encode(data, width)
            assert (ctx.get(dec.data), ctx.get(dec.syndrome), ctx.get(dec.single_error),
                    ctx.get(dec.double_error)) == (data, 0, 0, 0)
            for mask in singles:
                ctx.set(error, mask)
                assert ctx.get(dec.data) == data, (data, mask)
                assert ctx.get(dec.single_error) == 1 and ctx.get(dec.double_error) == 0, (data, mask)
            for mask in doubles:
                ctx.set(error, mask)
                received = (code ^ mask) & ((1 << width) - 1)
                # Detected, and the data passes through as received: never miscorrected.
                assert ctx.get(dec.double_error) == 1 and ctx.get(dec.single_error) == 0, (data, mask)
                assert ctx.get(dec.data) == received, (data, mask)
            checked.append(data)

    _run(m, bench)
    assert len(checked) == len(words)
    assert len(doubles) == n * (n - 1) // 2  # 78, 231, 741


@pytest.mark.parametrize("width", [2, 3, 4, 5, 11, 26, 57, 64])
def test_secded_any_width(width):
    """Every single error on three words; 60 random double errors each; RTL equals the model."""
    m, enc, dec, error = _secded_chain(width)
    n = code_width(width)
    rng = random.Random(width)

    async def bench(ctx):
        for data in _words(width, 0, width)[:3]:
            ctx.set(enc.data, data)
            code = secded.encode(data, width)
            masks = [1 << bit for bit in range(n)]
            masks += [1 << i | 1 << j for i, j in (rng.sample(range(n), 2) for _ in range(60))]
            # three flips: whatever the decoder says, the model says the same
            masks += [sum(1 << b for b in rng.sample(range(n), 3)) for _ in range(20)]
            for mask in masks:
                ctx.set(error, mask)
                got = (ctx.get(dec.data), ctx.get(dec.syndrome), bool(ctx.get(dec.single_error)),
                       bool(ctx.get(dec.double_error)))
                assert got == secded.decode(code ^ mask, width), (data, mask)
                if bin(mask).count("1") == 1:
                    assert got[0] == data and got[2] and not got[3]
                elif bin(mask).count("1") == 2:
                    assert got[3] and not got[2]

    _run(m, bench)


# --- parity, TMR, DMR -------------------------------------------------------------------

@pytest.mark.parametrize("width", [1, 8, 13])
def test_parity_catches_every_single_bit_error(width):
    m = Module()
    m.submodules.enc = enc = ParityEncoder(width)
    m.submodules.chk = chk = ParityChecker(width)
    flip = wiring.Signature({"mask": Out(width + 1)}).create().mask
    m.d.comb += [chk.data.eq(enc.data ^ flip[:width]), chk.parity.eq(enc.parity ^ flip[width])]

    async def bench(ctx):
        for data in sorted(set(_words(width, 6, width))):
            ctx.set(enc.data, data)
            ctx.set(flip, 0)
            assert ctx.get(enc.parity) == bin(data).count("1") % 2
            assert ctx.get(chk.error) == 0
            for bit in range(width + 1):
                ctx.set(flip, 1 << bit)
                assert ctx.get(chk.error) == 1, (data, bit)
            if width > 1:
                ctx.set(flip, 0b11)  # an even number of flips is invisible to parity
                assert ctx.get(chk.error) == 0

    _run(m, bench)


@pytest.mark.parametrize("n", [3, 5])
def test_voter_masks_a_minority_of_bad_replicas_and_flags_them(n):
    width = 8
    m = Module()
    m.submodules.vote = vote = Voter(width, n)
    rng = random.Random(n)

    async def bench(ctx):
        for value in _words(width, 5, n):
            for i in range(n):
                ctx.set(vote.inputs[i], value)
            assert (ctx.get(vote.out), ctx.get(vote.disagree), ctx.get(vote.faulty)) == (value, 0, 0)
            for replica in range(n):
                masks = [1 << bit for bit in range(width)] + [rng.randrange(1, 1 << width) for _ in range(4)]
                for mask in masks:
                    ctx.set(vote.inputs[replica], value ^ mask)
                    assert ctx.get(vote.out) == value, (value, replica, mask)
                    assert ctx.get(vote.disagree) == 1 and ctx.get(vote.faulty) == 1 << replica
                ctx.set(vote.inputs[replica], value)
            if n == 5:  # two bad replicas of five are still outvoted
                ctx.set(vote.inputs[0], value ^ 0xFF)
                ctx.set(vote.inputs[3], value ^ 0x0F)
                assert ctx.get(vote.out) == value and ctx.get(vote.faulty) == 0b01001
                ctx.set(vote.inputs[0], value)
                ctx.set(vote.inputs[3], value)

    _run(m, bench)
    for bad in (1, 2, 4):
        with pytest.raises(ValueError, match="n:"):
            Voter(4, bad)


def test_comparator_flags_every_single_bit_difference():
    width = 32
    m = Module()
    m.submodules.cmp = cmp = Comparator(width)

    async def bench(ctx):
        for value in _words(width, 4, 3):
            ctx.set(cmp.a, value)
            ctx.set(cmp.b, value)
            assert ctx.get(cmp.mismatch) == 0
            for bit in range(width):
                ctx.set(cmp.b, value ^ 1 << bit)
                assert ctx.get(cmp.mismatch) == 1, (value, bit)
                ctx.set(cmp.b, value)
                ctx.set(cmp.a, value ^ 1 << bit)
                assert ctx.get(cmp.mismatch) == 1, (value, bit)
                ctx.set(cmp.a, value)

    _run(m, bench)


# --- residue ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [signed(8), unsigned(8), signed(7), unsigned(5), unsigned(1), signed(2)])
def test_residue_of_every_value(shape):
    m = Module()
    m.submodules.res = res = Mod3Residue(shape)
    lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else (0, 1 << shape.width)

    async def bench(ctx):
        for value in range(lo, hi):
            ctx.set(res.value, value)
            assert ctx.get(res.residue) == value % 3, value

    _run(m, bench)


@pytest.mark.parametrize("operand, acc", [(signed(8), signed(20)), (unsigned(6), unsigned(15))])
def test_mac_residue_checker_catches_every_single_bit_error_of_the_result(operand, acc):
    m = Module()
    m.submodules.chk = chk = MacResidueChecker(operand, acc)
    rng = random.Random(acc.width)
    o_lo, o_hi = (-(1 << (operand.width - 1)), (1 << (operand.width - 1)) - 1) if operand.signed \
        else (0, (1 << operand.width) - 1)
    a_lo, a_hi = (-(1 << (acc.width - 2)), (1 << (acc.width - 2)) - 1) if acc.signed else (0, 1 << (acc.width - 1))
    cases = [(o_lo, o_lo, a_lo), (o_hi, o_hi, a_hi), (o_lo, o_hi, 0), (0, 0, 0)]
    cases += [(rng.randint(o_lo, o_hi), rng.randint(o_lo, o_hi), rng.randint(a_lo, a_hi)) for _ in range(40)]

    async def bench(ctx):
        for a, b, addend in cases:
            result = addend + a * b
            ctx.set(chk.a, a)
            ctx.set(chk.b, b)
            ctx.set(chk.addend, addend)
            ctx.set(chk.result, result)
            assert ctx.get(chk.error) == 0, (a, b, addend)
            for bit in range(acc.width):
                ctx.set(chk.result, _flipped(result, bit, acc))
                assert ctx.get(chk.error) == 1, (a, b, addend, bit)
            ctx.set(chk.result, result + 3)  # a change by a multiple of 3 is the blind spot
            assert ctx.get(chk.error) == 0

    _run(m, bench)


def test_mac_residue_shadow_follows_an_accumulator_and_flags_every_upset():
    operand, acc_shape = signed(8), signed(20)
    m = Module()
    m.submodules.shadow = shadow = MacResidueShadow(operand, acc_shape)
    acc = Signal(acc_shape, name="acc")
    with m.If(shadow.valid):
        m.d.sync += acc.eq(Mux(shadow.first, 0, acc) + shadow.a * shadow.b)
    m.d.comb += shadow.acc.eq(acc)
    rng = random.Random(5)

    async def bench(ctx):
        total = 0
        for step in range(60):
            a, b = rng.randint(-128, 127), rng.randint(-128, 127)
            first = step % 20 == 0
            valid = rng.random() < 0.8 or first
            ctx.set(shadow.a, a)
            ctx.set(shadow.b, b)
            ctx.set(shadow.first, first)
            ctx.set(shadow.valid, valid)
            await ctx.tick()
            if valid:
                total = (0 if first else total) + a * b
            assert ctx.get(acc) == total and ctx.get(shadow.error) == 0, step
            if step % 7 == 3:  # an upset of each bit of the accumulator is flagged
                ctx.set(shadow.valid, 0)
                for bit in range(acc_shape.width):
                    ctx.set(acc, _flipped(total, bit, acc_shape))
                    assert ctx.get(shadow.error) == 1, (step, bit)
                ctx.set(acc, total)
                assert ctx.get(shadow.error) == 0

    _run(m, bench, clock=True)


# --- ABFT -------------------------------------------------------------------------------

def _abft_bench_module(rows, k, cols, operand, width):
    m = Module()
    m.submodules.enc = enc = AbftEncoder(rows, k, cols, operand)
    m.submodules.chk = chk = AbftChecker(rows, cols, width)
    return m, enc, chk


@pytest.mark.parametrize("rows, k, cols, operand, width", [
    (2, 3, 3, signed(8), 20), (3, 2, 2, unsigned(5), 9), (1, 4, 2, signed(4), 7)])
def test_abft_locates_and_corrects_every_single_element_error(rows, k, cols, operand, width):
    m, enc, chk = _abft_bench_module(rows, k, cols, operand, width)
    rng = np.random.default_rng(width)
    lo, hi = (-(1 << (operand.width - 1)), 1 << (operand.width - 1)) if operand.signed else (0, 1 << operand.width)
    modulus = 1 << width
    deltas = [1, -1, 3, 1 << (width - 1), modulus - 1, int(rng.integers(2, modulus - 1))]
    counts = {"single": 0, "double": 0}

    def check_rtl(ctx, c_full):
        for i in range(rows + 1):
            for j in range(cols + 1):
                ctx.set(chk.c[i][j], int(c_full[i, j]) % modulus)
        want = abft_golden.check(c_full, width)
        got = (ctx.get(chk.error), ctx.get(chk.located), ctx.get(chk.uncorrectable),
               tuple(bool(ctx.get(chk.row_error) >> i & 1) for i in range(rows + 1)),
               tuple(bool(ctx.get(chk.col_error) >> j & 1) for j in range(cols + 1)))
        assert got == (want.error, want.located, want.uncorrectable, want.row_error, want.col_error)
        if want.located:
            assert (ctx.get(chk.row), ctx.get(chk.col), ctx.get(chk.value)) == (want.row, want.col, want.value)
        return want

    async def bench(ctx):
        for _trial in range(3):
            a = rng.integers(lo, hi, (rows, k))
            b = rng.integers(lo, hi, (k, cols))
            for i, j in itertools.product(range(rows), range(k)):
                ctx.set(enc.a[i][j], int(a[i, j]))
            for i, j in itertools.product(range(k), range(cols)):
                ctx.set(enc.b[i][j], int(b[i, j]))
            a_ext, b_ext = abft_golden.checksum_operands(a, b)
            assert [ctx.get(enc.a_sum[x]) for x in range(k)] == list(a_ext[-1])
            assert [ctx.get(enc.b_sum[x]) for x in range(k)] == list(b_ext[:, -1])
            clean = abft_golden.full_checksum_product(a, b, width, operand.signed)
            assert not check_rtl(ctx, clean).error
            tile = abft_golden.full_checksum_product(a, b, width, operand.signed)[:-1, :-1]
            for i, j in itertools.product(range(rows + 1), range(cols + 1)):
                for delta in deltas:
                    bad = clean.copy()
                    bad[i, j] += delta
                    outcome = check_rtl(ctx, bad)
                    assert outcome.located and (outcome.row, outcome.col) == (i, j)
                    assert outcome.value == int(clean[i, j]) % modulus
                    assert np.array_equal(abft_golden.correct(bad, width, operand.signed), tile)
                    counts["single"] += 1
            # two wrong elements in different rows and columns: flagged, not located
            bad = clean.copy()
            bad[0, 0] += 1
            bad[rows, cols] += 2
            outcome = check_rtl(ctx, bad)
            assert outcome.uncorrectable and not outcome.located
            counts["double"] += 1

    _run(m, bench)
    assert counts["single"] == 3 * (rows + 1) * (cols + 1) * len(deltas)


@pytest.mark.parametrize("rows, cols, width", [(2, 3, 20), (3, 2, 9)])
def test_abft_row_checker_agrees_with_the_golden_on_streamed_tiles(rows, cols, width):
    """Tiles back to back, one row per beat with idle cycles: verdicts equal the golden check."""
    m = Module()
    m.submodules.chk = chk = AbftRowChecker(rows, cols, width)
    rng = np.random.default_rng(rows * 10 + cols)
    modulus = 1 << width
    tiles = []
    for _ in range(4):
        a, b = rng.integers(-128, 128, (rows, 4)), rng.integers(-128, 128, (4, cols))
        clean = abft_golden.full_checksum_product(a, b, width)
        tiles.append(clean)
        for i, j in itertools.product(range(rows + 1), range(cols + 1)):
            bad = clean.copy()
            bad[i, j] += int(rng.integers(1, modulus))
            tiles.append(bad)
        double = clean.copy()
        double[0, 0] += 1
        double[rows, cols] += 5
        tiles.append(double)
        same_row = clean.copy()
        same_row[1, 0] += 2
        same_row[1, 1] += 7
        tiles.append(same_row)
    seen = {"located": 0, "uncorrectable": 0, "clean": 0}

    async def bench(ctx):
        for n, tile in enumerate(tiles):
            want = abft_golden.check(tile, width)
            for i in range(rows + 1):
                if (n + i) % 3 == 0:  # idle cycles between beats change nothing
                    ctx.set(chk.valid, 0)
                    await ctx.tick()
                for j in range(cols + 1):
                    ctx.set(chk.beat[j], int(tile[i, j]) % modulus)
                ctx.set(chk.valid, 1)
                ctx.set(chk.last, i == rows)
                assert ctx.get(chk.row_error) == want.row_error[i], (n, i)
                assert ctx.get(chk.verdict) == (i == rows)
                if i == rows:
                    got = (ctx.get(chk.error), ctx.get(chk.located), ctx.get(chk.uncorrectable))
                    assert got == (want.error, want.located, want.uncorrectable), n
                    if want.located:
                        assert (ctx.get(chk.row), ctx.get(chk.col)) == (want.row, want.col), n
                        element = int(tile[want.row, want.col])
                        assert (element - ctx.get(chk.delta)) % modulus == want.value, n
                    seen["located" if want.located else "uncorrectable" if want.error else "clean"] += 1
                await ctx.tick()
        ctx.set(chk.valid, 0)

    _run(m, bench, clock=True)
    assert seen == {"located": 4 * (rows + 1) * (cols + 1), "uncorrectable": 8, "clean": 4}


# --- clip -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape, low, high", [
    (signed(8), -5, 100), (signed(8), -128, 127), (unsigned(8), 0, 100), (unsigned(6), 7, 7), (signed(5), -16, 3)])
def test_clip_is_exact_at_the_bounds(shape, low, high):
    m = Module()
    m.submodules.clip = clip = Clip(shape, low, high)
    lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else (0, 1 << shape.width)

    async def bench(ctx):
        for value in range(lo, hi):
            ctx.set(clip.value, value)
            assert ctx.get(clip.out) == min(max(value, low), high), value
            assert ctx.get(clip.out_of_range) == (not low <= value <= high), value

    _run(m, bench)
    with pytest.raises(ValueError, match="low"):
        Clip(signed(8), 5, 4)
    with pytest.raises(ValueError, match="high"):
        Clip(signed(8), 0, 128)


# --- the register hook ------------------------------------------------------------------

class _RegisterHarness(wiring.Component):
    """One protected register behind ports, for lint and the register names in Verilog.

    ``q`` leaves through an adder, as a datapath register's value does: a register
    that drives a port straight is named after the port (see ``hw/protect/registers.py``).
    """

    def __init__(self, shape, mechanism, init):
        self._args = (shape, mechanism, init)
        super().__init__({"d": In(shape), "en": In(1), "q": Out(shape),
                          "detected": Out(1), "corrected": Out(1)})

    def elaborate(self, platform):
        m = Module()
        shape, mechanism, init = self._args
        reg = protected_register(m, "acc", shape, mechanism, init=init)
        m.d.comb += [reg.d.eq(self.d), reg.en.eq(self.en), self.q.eq(reg.q + 1),
                     self.detected.eq(reg.detected), self.corrected.eq(reg.corrected)]
        return m


@pytest.mark.parametrize("mechanism", REGISTER_MECHANISMS)
def test_protected_register_alarms_and_repair(mechanism):
    """Write, hold, and every stored bit flipped: the documented value, alarm and repair."""
    m = Module()
    reg = protected_register(m, "acc", signed(8), mechanism, init=-3)
    regs = reg.registers

    async def bench(ctx):
        assert [r.name for r in regs] == list(register_names("acc", mechanism))
        assert sum(len(r) for r in regs) == stored_width(8, mechanism)
        assert ctx.get(reg.q) == -3
        for value in (0, -1, 85, -128):
            ctx.set(reg.d, value)
            ctx.set(reg.en, 1)
            await ctx.tick()
            ctx.set(reg.en, 0)
            await ctx.tick()  # holds
            assert ctx.get(reg.q) == value
            assert (ctx.get(reg.detected), ctx.get(reg.corrected)) == (0, 0)
            clean = [ctx.get(r) for r in regs]
            for n, flop in enumerate(regs):
                for bit in range(len(flop)):
                    ctx.set(flop, _flipped(clean[n], bit, flop.shape()))
                    alarms = (ctx.get(reg.detected), ctx.get(reg.corrected))
                    if mechanism == "none":
                        assert alarms == (0, 0) and ctx.get(reg.q) != value
                    elif mechanism in ("parity", "dmr"):
                        assert alarms == (1, 0)
                        await ctx.tick()  # held: the error stays visible until the next write
                        assert ctx.get(reg.detected) == 1
                    else:
                        assert alarms == (0, 1) and ctx.get(reg.q) == value
                        await ctx.tick()  # scrubbed: the corrected value was written back
                        assert [ctx.get(r) for r in regs] == clean
                        assert ctx.get(reg.corrected) == 0
                    for r, v in zip(regs, clean):
                        ctx.set(r, v)
            if mechanism == "secded":  # two flips in one word are reported, not miscorrected
                ctx.set(regs[0], clean[0] ^ 0b101)
                assert (ctx.get(reg.detected), ctx.get(reg.corrected)) == (1, 0)
                await ctx.tick()  # held, not scrubbed into a valid word
                assert ctx.get(regs[0]) == clean[0] ^ 0b101 and ctx.get(reg.detected) == 1
                ctx.set(regs[0], clean[0])

    _run(m, bench, clock=True)


@pytest.mark.parametrize("mechanism", REGISTER_MECHANISMS)
def test_protected_register_of_a_struct_layout(mechanism):
    """A register group of fields: the reset value and writes go through every mechanism field by field."""
    layout = StructLayout({"state": 3, "count": signed(5), "flag": 1})
    m = Module()
    reg = protected_register(m, "ctl", layout, mechanism, init={"state": 5, "count": -2})

    async def bench(ctx):
        assert [r.name for r in reg.registers] == list(register_names("ctl", mechanism))
        value = ctx.get(reg.q)
        assert (value.state, value.count, value.flag) == (5, -2, 0)
        ctx.set(reg.d, {"state": 1, "count": 7, "flag": 1})
        ctx.set(reg.en, 1)
        await ctx.tick()
        ctx.set(reg.en, 0)
        await ctx.tick()
        value = ctx.get(reg.q)
        assert (value.state, value.count, value.flag) == (1, 7, 1)
        assert (ctx.get(reg.detected), ctx.get(reg.corrected)) == (0, 0)

    _run(m, bench, clock=True)


def test_register_hook_rejects_what_does_not_fit():
    with pytest.raises(ValueError, match="mechanism: 'ecc' is not one of none, parity, secded, dmr, tmr"):
        protected_register(Module(), "x", 8, "ecc")
    with pytest.raises(ValueError, match="secded needs at least 2 data bits"):
        protected_register(Module(), "flag", 1, "secded")
    with pytest.raises(ValueError, match="not one of none, parity, secded"):
        WordEncoder(8, "tmr")
    assert [stored_width(32, name) for name in REGISTER_MECHANISMS] == [32, 33, 39, 64, 96]


def test_mechanism_table():
    assert set(REGISTER_MECHANISMS) - {"none"} <= set(MECHANISMS)
    assert {name for name, mech in MECHANISMS.items() if mech.corrects} == {"secded", "tmr", "abft"}
    assert all(mech.detects for mech in MECHANISMS.values())
    assert mechanisms_for("memory", 32) == ("parity", "secded")
    assert mechanisms_for("registers", 1) == ("parity", "dmr", "tmr")
    assert mechanisms_for("compute", 24) == ("dmr", "tmr", "residue", "abft")
    assert mechanisms_for("activation", 8) == ("dmr", "tmr", "clip")
    assert MECHANISMS["secded"].added_bits(64) == 8 and MECHANISMS["clip"].added_bits(8) is None
    with pytest.raises(ValueError, match="kind"):
        mechanisms_for("fifo", 8)


# --- Verilog ----------------------------------------------------------------------------

LINTED = {
    "parity_enc_8": lambda: ParityEncoder(8),
    "parity_chk_1": lambda: ParityChecker(1),
    "secded_enc_2": lambda: SecdedEncoder(2),
    "secded_dec_4": lambda: SecdedDecoder(4),
    "secded_dec_32": lambda: SecdedDecoder(32),
    "voter_8x3": lambda: Voter(8),
    "voter_4x5": lambda: Voter(4, 5),
    "comparator_32": lambda: Comparator(32),
    "residue_s8": lambda: Mod3Residue(signed(8)),
    "residue_u3": lambda: Mod3Residue(unsigned(3)),
    "mac_residue_checker": lambda: MacResidueChecker(signed(8), signed(20)),
    "mac_residue_shadow": lambda: MacResidueShadow(unsigned(6), unsigned(15)),
    "abft_encoder": lambda: AbftEncoder(2, 3, 3, signed(8)),
    "abft_checker": lambda: AbftChecker(2, 3, 20),
    "abft_row_checker": lambda: AbftRowChecker(3, 2, 12),
    "clip_s8": lambda: Clip(signed(8), -5, 100),
    "clip_full_range": lambda: Clip(unsigned(8), 0, 255),
    "word_secded_8": lambda: WordDecoder(8, "secded"),
    "word_parity_8": lambda: WordEncoder(8, "parity"),
    **{f"register_{name}": (lambda name=name: _RegisterHarness(signed(12), name, -7))
       for name in REGISTER_MECHANISMS},
}


class _AllComponents(wiring.Component):
    """Every component of :data:`LINTED` as a named submodule, its ports passed through."""

    def __init__(self):
        self._parts = {name: make() for name, make in LINTED.items()}
        super().__init__({name: Out(part.signature) for name, part in self._parts.items()})

    def elaborate(self, platform):
        m = Module()
        for name, part in self._parts.items():
            m.submodules[name] = part
            wiring.connect(m, wiring.flipped(getattr(self, name)), part)
        return m


def test_every_component_passes_lint(tmp_path):
    """All components in one design (one conversion, one Verilator run); a warning names its module."""
    path = tmp_path / "protect_lib.v"
    text = verilog.convert(_AllComponents(), name="protect_lib", emit_src=False)
    path.write_text(text)
    modules = {module.name: module for module in scan_modules(text)}
    for name in LINTED:
        assert f"protect_lib.{name}" in modules, name  # not optimised away
    for mechanism in REGISTER_MECHANISMS:  # the documented fault-site names survive conversion
        flops = modules[f"protect_lib.register_{mechanism}"].flops
        assert sorted(flops) == sorted(register_names("acc", mechanism)), mechanism
    assert lint(path, "protect_lib") == []
