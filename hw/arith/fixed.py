"""Fixed-point formats and their quantisation rules, written once for hardware and golden models.

A :class:`FixedFormat` is ``width`` bits of two's complement (or unsigned) code
``c`` standing for the real value ``c * 2**-frac``. Changing the number of
fraction bits (requantising) is two explicit steps:

1. **Quantisation** (:class:`Rounding`) when fraction bits are dropped:

   * ``truncate``: drop them, i.e. round toward minus infinity (what an
     arithmetic right shift does);
   * ``round_half_even``: to nearest, ties to the even code (no bias);
   * ``round_half_away``: to nearest, ties away from zero (the schoolbook rule).

2. **Overflow** (:class:`Overflow`) when the rounded code does not fit ``width``:

   * ``wrap``: keep the low ``width`` bits (modulo ``2**width``);
   * ``saturate``: clamp to the format's smallest or largest code.

The rules exist twice, and nowhere else: :func:`requantize` on integers (Python
``int`` or numpy integer arrays; golden models call it) and :func:`requantize_hw`
on Amaranth values (generators call it). ``tests/test_fixed.py`` checks the
integer rules against exact rational arithmetic and the hardware against the
integer rules, exhaustively for small widths.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

# The golden models import this module inside every cocotb simulation; Amaranth is imported by the
# hardware rules only (0.7 s of a small testbench's 2.3 s start-up otherwise).
if TYPE_CHECKING:
    from amaranth.hdl import Shape, Value

#: Widest intermediate code the integer rules handle (numpy int64 arithmetic).
MAX_INTERMEDIATE_BITS = 62


class Rounding(str, Enum):
    """How fraction bits are dropped; see the module docstring."""

    TRUNCATE = "truncate"
    HALF_EVEN = "round_half_even"
    HALF_AWAY = "round_half_away"


class Overflow(str, Enum):
    """What happens to a code that does not fit; see the module docstring."""

    WRAP = "wrap"
    SATURATE = "saturate"


@dataclass(frozen=True)
class FixedFormat:
    """``width`` bits, ``frac`` of them fraction bits, two's complement when ``signed``.

    ``frac`` may be negative (codes count multiples of ``2**-frac > 1``) or larger
    than ``width`` (a small-magnitude format with implicit leading bits).
    """

    width: int
    frac: int
    signed: bool

    def __post_init__(self):
        if not isinstance(self.width, int) or not 1 <= self.width <= MAX_INTERMEDIATE_BITS:
            raise ValueError(f"width must be an integer in 1..{MAX_INTERMEDIATE_BITS}, not {self.width!r}")
        if not isinstance(self.frac, int):
            raise ValueError(f"frac must be an integer, not {self.frac!r}")
        if self.signed and self.width < 2:
            raise ValueError("a signed format needs at least 2 bits")

    # codes
    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    def codes(self) -> np.ndarray:
        """Every code of the format, ascending (int64)."""
        return np.arange(self.min_code, self.max_code + 1, dtype=np.int64)

    # values
    @property
    def lsb(self) -> Fraction:
        """Value of one code step, ``2**-frac``."""
        return Fraction(2) ** -self.frac

    @property
    def min_value(self) -> Fraction:
        return self.min_code * self.lsb

    @property
    def max_value(self) -> Fraction:
        return self.max_code * self.lsb

    def to_float(self, code):
        """Real value of ``code`` (scalar or array) as float64."""
        return np.asarray(code, dtype=np.float64) * 2.0 ** -self.frac

    def from_float(self, value, rounding: "Rounding" = None, overflow: "Overflow" = None):
        """Code nearest to a real ``value`` under ``rounding`` and ``overflow``.

        Defaults: ``round_half_even``, ``saturate``. Exact for float64 inputs
        whose scaled value ``value * 2**frac`` is below ``2**62`` in magnitude.
        """
        rounding = Rounding(rounding or Rounding.HALF_EVEN)
        overflow = Overflow(overflow or Overflow.SATURATE)
        scaled = np.asarray(value, dtype=np.float64) * 2.0 ** self.frac
        if rounding is Rounding.TRUNCATE:
            code = np.floor(scaled)
        elif rounding is Rounding.HALF_EVEN:
            code = np.rint(scaled)  # IEEE round-half-even
        else:
            code = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
        limit = float(1 << MAX_INTERMEDIATE_BITS)
        code = np.clip(code, -limit, limit).astype(np.int64)
        return fit(code, self, overflow)

    # hardware
    def shape(self) -> Shape:
        """The Amaranth shape of a code."""
        from amaranth.hdl import signed, unsigned

        return signed(self.width) if self.signed else unsigned(self.width)

    def describe(self) -> str:
        """``s4.12`` style: sign, integer bits, fraction bits (``u0.16`` for an unsigned fraction)."""
        return f"{'s' if self.signed else 'u'}{self.width - self.frac}.{self.frac}"


# ---------------------------------------------------------------- integer rules

def _ints(code, shift: int = 0):
    """``code`` ready for exact integer arithmetic with a shift of ``shift`` bits.

    A Python int stays a Python int (exact at any size). An array becomes int64,
    or an object array of Python ints when a left shift (``shift < 0``) could
    overflow 64 bits or a right shift is wider than the masks int64 holds, so the
    rules stay exact (just slower) at any width. A right shift never grows a code:
    int64 stays exact for it (the golden models round wide products this way).
    """
    if np.ndim(code) == 0 and not isinstance(code, np.ndarray):
        return int(code), True
    array = np.asarray(code)
    if array.dtype != object and not np.issubdtype(array.dtype, np.integer):
        array = array.astype(np.int64)
    if array.size:
        magnitude = max(abs(int(array.min())), abs(int(array.max())))
        growth = max(0, -shift)
        if magnitude.bit_length() + growth + 1 > MAX_INTERMEDIATE_BITS or shift > MAX_INTERMEDIATE_BITS:
            return array.astype(object), False
    return array.astype(np.int64, copy=False), False


def _done(result, scalar: bool):
    """A rule's result as the caller gave its input: Python int, or an int64 array when it fits."""
    if scalar:
        return int(result)
    if result.dtype == object and result.size:
        magnitude = max(abs(int(result.min())), abs(int(result.max())))
        if magnitude.bit_length() < 63:
            return result.astype(np.int64)
    return result


def _as_int(flag):
    return flag.astype(np.int64) if isinstance(flag, np.ndarray) else int(flag)


def shift_round(code, shift: int, rounding: Rounding):
    """``code * 2**-shift`` rounded to an integer by ``rounding`` (``shift <= 0`` is an exact left shift).

    Works on Python ints (returns an int) and numpy integer arrays (returns an
    int64 array, or an object array when the result needs more than 63 bits).
    """
    rounding = Rounding(rounding)
    c, scalar = _ints(code, shift)
    if shift <= 0:
        return _done(c << -shift, scalar)
    floor = c >> shift
    if rounding is Rounding.TRUNCATE:
        return _done(floor, scalar)
    one = 1 if scalar or c.dtype == object else np.int64(1)
    half = one << (shift - 1)
    rest = c & ((one << shift) - 1)  # c - floor * 2**shift, in [0, 2**shift)
    if rounding is Rounding.HALF_EVEN:
        up = (rest > half) | ((rest == half) & ((floor & 1) == 1))
    else:  # ties away from zero: up on a tie only for non-negative codes
        up = (rest > half) | ((rest == half) & (c >= 0))
    return _done(floor + _as_int(up), scalar)


def fit(code, fmt: FixedFormat, overflow: Overflow):
    """``code`` made to fit ``fmt``'s width by ``overflow`` (no change of scale)."""
    overflow = Overflow(overflow)
    c, scalar = _ints(code)
    if overflow is Overflow.SATURATE:
        result = min(max(c, fmt.min_code), fmt.max_code) if scalar else np.clip(c, fmt.min_code, fmt.max_code)
    else:
        result = ((c - fmt.min_code) & ((1 << fmt.width) - 1)) + fmt.min_code
    if scalar:
        return int(result)
    return np.asarray(result).astype(np.int64)


def requantize(code, from_frac: int, to: FixedFormat, rounding: Rounding, overflow: Overflow):
    """A code with ``from_frac`` fraction bits, expressed in format ``to``.

    Rounds first (when ``from_frac > to.frac``), then applies ``overflow``.
    """
    return fit(shift_round(code, from_frac - to.frac, rounding), to, overflow)


# --------------------------------------------------------------- hardware rules

def shift_round_hw(value: Value, shift: int, rounding: Rounding) -> Value:
    """Hardware of :func:`shift_round`: ``value * 2**-shift`` rounded, as a value wide enough to be exact."""
    from amaranth.hdl import Cat, Const, Value

    rounding = Rounding(rounding)
    value = Value.cast(value)
    if shift <= 0:
        return value << -shift
    floor = value >> shift  # arithmetic for signed values; keeps at least one bit
    if rounding is Rounding.TRUNCATE:
        return floor
    width = value.shape().width
    if shift >= width:
        if not value.shape().signed:
            if shift > width:  # the value is below half an output step: it rounds to 0
                return Const(0, 1)
        else:
            # Sign-extend so that the dropped bits are those of the integer rule.
            value = Cat(value, value[-1].replicate(shift + 1 - width)).as_signed()
            floor = value >> shift
    half_bit = value[shift - 1]
    below_half = value[:shift - 1].any() if shift > 1 else Const(0, 1)
    if rounding is Rounding.HALF_EVEN:
        up = half_bit & (below_half | floor[0])
    else:
        negative = value[-1] if value.shape().signed else Const(0, 1)
        up = half_bit & (below_half | ~negative)
    return floor + up


def fit_hw(value: Value, fmt: FixedFormat, overflow: Overflow) -> Value:
    """Hardware of :func:`fit`: a value of ``fmt.shape()``."""
    from amaranth.hdl import Cat, Const, Mux, Value, signed

    overflow = Overflow(overflow)
    value = Value.cast(value)
    if overflow is Overflow.SATURATE:
        low = Const(fmt.min_code, signed(fmt.width + 1))
        high = Const(fmt.max_code, signed(fmt.width + 1))
        value = Mux(value < low, low, Mux(value > high, high, value))
    width = value.shape().width
    if width >= fmt.width:
        bits = value[:fmt.width]
    elif value.shape().signed:
        bits = Cat(value, value[-1].replicate(fmt.width - width))
    else:
        bits = Cat(value, Const(0, fmt.width - width))
    return bits.as_signed() if fmt.signed else bits.as_unsigned()


def requantize_hw(value: Value, from_frac: int, to: FixedFormat, rounding: Rounding, overflow: Overflow) -> Value:
    """Hardware of :func:`requantize`: ``value`` (``from_frac`` fraction bits) as a code of ``to``."""
    return fit_hw(shift_round_hw(value, from_frac - to.frac, rounding), to, overflow)
