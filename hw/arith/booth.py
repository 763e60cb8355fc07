"""Radix-4 Booth recoding: a multiplier as signed digits in ``{-2, -1, 0, +1, +2}``.

A two's-complement value ``x`` of ``2n`` bits equals ``sum_i d_i * 4**i`` with
``d_i = -2*x[2i+1] + x[2i] + x[2i-1]`` (``x[-1] = 0``): each digit looks at a
bit pair and the bit below it. A signed ``W``-bit operand is sign-extended to an
even width, so it needs ``ceil(W / 2)`` digits. An unsigned ``W``-bit operand is
first zero-extended by one bit (the recoding reads its top bit as a sign), so it
needs ``ceil((W + 1) / 2)`` digits: one more when ``W`` is even; e.g. unsigned
``4'b1111 = 15 = -1 + 0*4 + 1*16`` takes three digits where signed 4-bit
operands take two.

A digit selects a partial product from ``{0, M, 2M}`` (``M`` the multiplicand)
and, when negative, inverts it; the ``+1`` that completes the negation is kept
as a separate term (one bit per digit, at the digit's weight), so no adder is
needed to form a partial product.
"""

from amaranth.hdl import Cat, Const, Module, Shape, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


def booth_digit_count(width: int, signed: bool) -> int:
    """Radix-4 digits of a ``width``-bit operand: ``ceil(W/2)`` signed, ``ceil((W+1)/2)`` unsigned."""
    if width < 1:
        raise ValueError(f"operand width must be >= 1, not {width}")
    return (width + (0 if signed else 1) + 1) // 2


def booth_digits(value: int, width: int, signed: bool) -> list[int]:
    """The radix-4 Booth digits of ``value``, least significant first (a reference in Python integers)."""
    count = booth_digit_count(width, signed)
    bits = value & ((1 << (2 * count)) - 1)  # two's complement over 2*count bits
    digits = []
    below = 0
    for i in range(count):
        low, high = (bits >> (2 * i)) & 1, (bits >> (2 * i + 1)) & 1
        digits.append(-2 * high + low + below)
        below = high
    return digits


class BoothPartialProducts(wiring.Component):
    """Partial products of ``multiplicand * multiplier``, radix-4 Booth, modulo ``2**width``.

    Combinational. ``terms`` holds ``booth_digit_count(...) + 1`` unsigned
    ``width``-bit vectors whose sum modulo ``2**width`` is the product modulo
    ``2**width`` (so, for ``width`` at least the product's width, the product
    itself in two's complement):

    * ``terms[i]`` for digit ``i``: ``|d_i| * multiplicand``, inverted when
      the top bit of the digit's window is set (``d_i`` negative, or zero from
      the bits ``111``), shifted left by ``2i`` (bits shifted past ``width``
      are dropped; the multiplicand is sign- or zero-extended by its shape);
    * the last term has bit ``2i`` set for every inverted ``terms[i]``: the
      ``+1`` of each two's-complement negation (for an inverted zero, all
      ones plus one is zero modulo ``2**width``).

    Parameters
    ----------
    multiplicand_shape, multiplier_shape : ShapeLike
        Shapes of ``multiplicand`` and ``multiplier`` (the recoded operand).
    width : int
        Width of every term.
    """

    def __init__(self, multiplicand_shape, multiplier_shape, width: int):
        self._multiplier_shape = Shape.cast(multiplier_shape)
        self._width = width
        self.digit_count = booth_digit_count(self._multiplier_shape.width, self._multiplier_shape.signed)
        super().__init__({
            "multiplicand": In(multiplicand_shape),
            "multiplier": In(self._multiplier_shape),
            "terms": Out(data.ArrayLayout(unsigned(width), self.digit_count + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        width, count = self._width, self.digit_count
        # The multiplier extended to 2*count bits (sign or zero, by its shape), with
        # the implicit 0 below bit 0 that the lowest digit reads.
        extended = Signal(Shape(2 * count, self._multiplier_shape.signed), name="extended")
        m.d.comb += extended.eq(self.multiplier)
        window = Cat(Const(0, 1), extended)
        once = Signal(unsigned(width), name="once")  # the multiplicand, extended by its shape
        m.d.comb += once.eq(self.multiplicand)
        twice = (once << 1)[:width]
        negative = []
        for i in range(count):
            below, low, high = window[2 * i], window[2 * i + 1], window[2 * i + 2]
            one = low ^ below  # |d_i| = 1
            two = (high & ~low & ~below) | (~high & low & below)  # |d_i| = 2
            magnitude = Signal(unsigned(width), name=f"magnitude_{i}")
            m.d.comb += magnitude.eq((once & one.replicate(width)) | (twice & two.replicate(width)))
            # high = 1: a negative digit, or 0 from the bits 111, whose inverted
            # zero (all ones) plus the correction bit is 0 modulo 2**width too.
            m.d.comb += self.terms[i].eq((magnitude ^ high.replicate(width)) << (2 * i))
            negative += [high, Const(0, 1)]
        m.d.comb += self.terms[count].eq(Cat(*negative))
        return m
