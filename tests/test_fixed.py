"""The fixed-point rules of ``hw/arith/fixed.py``: integers against exact rationals, hardware against integers."""

import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.arith.fixed import (FixedFormat, Overflow, Rounding, fit, requantize, requantize_hw, shift_round)

ROUNDINGS = list(Rounding)
OVERFLOWS = list(Overflow)


def exact_round(x: Fraction, rounding: Rounding) -> int:
    """The rounding rules written from their definitions on rationals."""
    floor = math.floor(x)
    if rounding is Rounding.TRUNCATE:
        return floor
    rest = x - floor
    if rest > Fraction(1, 2):
        return floor + 1
    if rest < Fraction(1, 2):
        return floor
    if rounding is Rounding.HALF_EVEN:
        return floor + (floor % 2)
    return floor + 1 if x > 0 else floor  # ties away from zero


def exact_fit(code: int, fmt: FixedFormat, overflow: Overflow) -> int:
    if overflow is Overflow.SATURATE:
        return min(max(code, fmt.min_code), fmt.max_code)
    modulus = 1 << fmt.width
    code %= modulus
    return code - modulus if fmt.signed and code > fmt.max_code else code


formats = st.builds(FixedFormat, width=st.integers(2, 24), frac=st.integers(-4, 30), signed=st.booleans())


@settings(max_examples=2000, deadline=None)
@given(code=st.integers(-(1 << 40), 1 << 40), from_frac=st.integers(-8, 40), fmt=formats,
       rounding=st.sampled_from(ROUNDINGS), overflow=st.sampled_from(OVERFLOWS))
def test_requantize_matches_exact_rational_arithmetic(code, from_frac, fmt, rounding, overflow):
    value = Fraction(code) * Fraction(2) ** -from_frac
    expected = exact_fit(exact_round(value / fmt.lsb, rounding), fmt, overflow)
    assert requantize(code, from_frac, fmt, rounding, overflow) == expected


@settings(max_examples=500, deadline=None)
@given(codes=st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=40),
       shift=st.integers(-40, 70), rounding=st.sampled_from(ROUNDINGS))
def test_arrays_and_scalars_agree(codes, shift, rounding):
    """Arrays give the scalars' exact results, also where int64 would overflow (shifts past 62 bits)."""
    array = shift_round(np.array(codes, dtype=np.int64), shift, rounding)
    scalars = [shift_round(c, shift, rounding) for c in codes]
    assert [int(v) for v in array] == scalars
    assert all(isinstance(v, int) for v in scalars)
    if max(abs(v) for v in scalars) < 1 << 62:
        assert array.dtype == np.int64


@settings(max_examples=500, deadline=None)
@given(codes=st.lists(st.integers(-(1 << 61) + 1, (1 << 61) - 1), min_size=1, max_size=40),
       shift=st.integers(1, 70), rounding=st.sampled_from(ROUNDINGS))
def test_right_shifts_of_wide_int64_codes_stay_int64_and_exact(codes, shift, rounding):
    """A right shift never grows a code: int64 arrays up to 61 bits round in int64, as the scalars do."""
    array = shift_round(np.array(codes, dtype=np.int64), shift, rounding)
    assert array.dtype == np.int64
    assert array.tolist() == [shift_round(c, shift, rounding) for c in codes]


@settings(max_examples=300, deadline=None)
@given(codes=st.lists(st.integers(-(1 << 40), 1 << 40), min_size=1, max_size=20), from_frac=st.integers(-8, 40),
       fmt=formats, rounding=st.sampled_from(ROUNDINGS), overflow=st.sampled_from(OVERFLOWS))
def test_requantize_on_arrays_equals_scalars(codes, from_frac, fmt, rounding, overflow):
    array = requantize(np.array(codes, dtype=np.int64), from_frac, fmt, rounding, overflow)
    assert array.dtype == np.int64
    assert array.tolist() == [requantize(c, from_frac, fmt, rounding, overflow) for c in codes]


def test_ties_are_broken_as_named():
    # 2.5, 3.5, -2.5, -3.5 with one fraction bit dropped.
    codes = [5, 7, -5, -7]
    assert [shift_round(c, 1, Rounding.TRUNCATE) for c in codes] == [2, 3, -3, -4]
    assert [shift_round(c, 1, Rounding.HALF_EVEN) for c in codes] == [2, 4, -2, -4]
    assert [shift_round(c, 1, Rounding.HALF_AWAY) for c in codes] == [3, 4, -3, -4]


def test_overflow_rules_at_the_edges():
    s8 = FixedFormat(8, 0, True)
    assert [fit(c, s8, Overflow.SATURATE) for c in (-129, -128, 127, 128)] == [-128, -128, 127, 127]
    assert [fit(c, s8, Overflow.WRAP) for c in (-129, -128, 127, 128, 256)] == [127, -128, 127, -128, 0]
    u4 = FixedFormat(4, 2, False)
    assert [fit(c, u4, Overflow.SATURATE) for c in (-1, 0, 15, 16)] == [0, 0, 15, 15]
    assert [fit(c, u4, Overflow.WRAP) for c in (-1, 16, 17)] == [15, 0, 1]


def test_format_facts():
    fmt = FixedFormat(16, 12, True)
    assert (fmt.min_code, fmt.max_code) == (-32768, 32767)
    assert fmt.lsb == Fraction(1, 4096) and fmt.max_value == Fraction(32767, 4096)
    assert fmt.describe() == "s4.12"
    assert fmt.codes().size == 1 << 16
    assert fmt.from_float(1.0) == 4096 and fmt.from_float(100.0) == 32767
    assert fmt.from_float(-0.5 / 4096) == 0  # a tie goes to the even code
    assert fmt.from_float(1.5 / 4096, Rounding.HALF_AWAY) == 2
    with pytest.raises(ValueError, match="signed format needs at least 2 bits"):
        FixedFormat(1, 0, True)


def _hw_outputs(in_shape, from_frac, fmt, rounding, overflow):
    """Every input code through ``requantize_hw`` in Amaranth's simulator."""
    m = Module()
    x = Signal(in_shape)
    y = Signal(fmt.shape())
    m.d.comb += y.eq(requantize_hw(x, from_frac, fmt, rounding, overflow))
    lo = -(1 << (in_shape.width - 1)) if in_shape.signed else 0
    inputs = range(lo, lo + (1 << in_shape.width))
    outputs = []

    async def bench(ctx):
        for code in inputs:
            ctx.set(x, code)
            outputs.append(ctx.get(y))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return list(inputs), outputs


# Input shapes x (from_frac, output format): narrowing, widening, shifts past the width.
HW_CASES = [
    (signed(7), 5, FixedFormat(4, 2, True)),
    (signed(6), 9, FixedFormat(3, 0, True)),   # shift 9 > input width 6
    (signed(5), 5, FixedFormat(3, 0, True)),   # shift equal to the input width
    (unsigned(6), 4, FixedFormat(3, 1, False)),
    (unsigned(5), 7, FixedFormat(3, 0, False)),  # shift past the width
    (unsigned(5), 5, FixedFormat(2, 0, False)),
    (signed(5), 1, FixedFormat(8, 3, True)),   # widening: exact
    (unsigned(6), 2, FixedFormat(5, 0, True)),  # unsigned into signed
    (signed(6), 2, FixedFormat(4, 0, False)),  # signed into unsigned
]


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=[r.value for r in ROUNDINGS])
@pytest.mark.parametrize("overflow", OVERFLOWS, ids=[o.value for o in OVERFLOWS])
@pytest.mark.parametrize("in_shape,from_frac,fmt", HW_CASES,
                         ids=[f"{s.width}{'s' if s.signed else 'u'}f{f}-{o.describe()}" for s, f, o in HW_CASES])
def test_hardware_equals_integer_rules_exhaustively(in_shape, from_frac, fmt, rounding, overflow):
    inputs, outputs = _hw_outputs(in_shape, from_frac, fmt, rounding, overflow)
    expected = [requantize(c, from_frac, fmt, rounding, overflow) for c in inputs]
    assert outputs == expected
