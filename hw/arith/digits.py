"""Sparse operand encodings for digit-serial MACs: EN-T radix-4 digits and effectual terms.

Both encodings are sign-magnitude: the operand's sign is kept once and its
magnitude ``|x|`` (at most ``2**(W-1)`` signed, ``2**W - 1`` unsigned: ``W``
bits either way) is written as signed digits. A zero digit costs a digit-serial
MAC nothing, so the number of nonzero digits is the number of cycles it needs.

**EN-T** (radix 4): ``|x| = sum_i d_i * 4**i`` with ``d_i`` in ``{-1, 0, 1, 2}``.
Split ``|x|`` into base-4 digits ``r_i`` and add the carry ``c_i`` from below
(``c_0 = 0``): ``t = r_i + c_i`` is 0..4; ``t = 3`` becomes ``-1`` with a carry,
``t = 4`` becomes ``0`` with a carry, anything else is the digit itself. E.g.
``91 = 1*64 + 2*16 - 1*4 - 1`` and ``124 = 2*64 - 1*4``. Digits at most 2 reach
``2 * (4**n - 1) / 3`` with ``n`` digits, so ``n`` is the least with
``max |x|`` at most that: 4 digits for signed INT8 (``|x| <= 128``), 5 unsigned.

**Effectual terms** (non-adjacent form, NAF): ``|x| = sum_i e_i * 2**i`` with
``e_i`` in ``{-1, 0, 1}`` and no two adjacent nonzero, the signed-binary form
with the fewest nonzero terms. With ``y = 3*|x|``, the positive terms are
``(y & ~|x|) >> 1`` and the negative ones ``(~y & |x|) >> 1`` (one adder). E.g.
``14 = 16 - 2``. Positions: ``W`` signed, ``W + 1`` unsigned (``15 = 16 - 1``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def _magnitude_range(width: int, signed: bool) -> int:
    if width < 2:
        raise ValueError(f"operand width must be >= 2, not {width}")
    return 1 << (width - 1) if signed else (1 << width) - 1


def ent_digit_count(width: int, signed: bool) -> int:
    """EN-T digits of a ``width``-bit operand: 2 for signed 4-bit, 3 for unsigned 4-bit, 4 for signed 8-bit."""
    top, count = _magnitude_range(width, signed), 1
    while top > 2 * (4 ** count - 1) // 3:
        count += 1
    return count


def ent_digits(value: int, width: int, signed: bool) -> list[int]:
    """The EN-T digits of ``value`` with its sign applied, least significant first (Python reference)."""
    magnitude, carry, digits = abs(value), 0, []
    for i in range(ent_digit_count(width, signed)):
        t = ((magnitude >> (2 * i)) & 3) + carry
        digit, carry = {0: (0, 0), 1: (1, 0), 2: (2, 0), 3: (-1, 1), 4: (0, 1)}[t]
        digits.append(-digit if value < 0 else digit)
    return digits


def term_position_count(width: int, signed: bool) -> int:
    """Bit positions of the effectual terms (NAF) of a ``width``-bit operand: ``W`` signed, ``W + 1`` unsigned."""
    _magnitude_range(width, signed)
    return width if signed else width + 1


def effectual_terms(value: int, width: int, signed: bool) -> list[int]:
    """The NAF terms (``-1, 0, +1`` per bit position) of ``value`` with its sign applied (Python reference)."""
    magnitude = abs(value)
    triple = 3 * magnitude
    plus, minus = (triple & ~magnitude) >> 1, (~triple & magnitude) >> 1
    sign = -1 if value < 0 else 1
    return [sign * (((plus >> i) & 1) - ((minus >> i) & 1)) for i in range(term_position_count(width, signed))]


def _magnitude(m: Module, value, shape: Shape, name: str):
    """``|value|`` as an unsigned ``W``-bit signal and the sign bit (constant 0 when unsigned)."""
    magnitude = Signal(unsigned(shape.width), name=f"{name}_magnitude")
    if shape.signed:
        negative = value[-1]
        m.d.comb += magnitude.eq(Mux(negative, -value, value))  # -(-2**(W-1)) = 2**(W-1) fits W bits
    else:
        negative = Const(0, 1)
        m.d.comb += magnitude.eq(value)
    return magnitude, negative


class EntEncoder(wiring.Component):
    """Combinational EN-T encoder: an operand as a sign and radix-4 digits in ``{-1, 0, 1, 2}``.

    Digit ``i`` is described by three mask bits: ``nonzero[i]``, ``two[i]``
    (the digit is 2) and ``minus[i]`` (the digit is -1). ``negative`` is the
    operand's sign; the digit's value is negated when it is set.

    Parameters
    ----------
    operand_shape : ShapeLike
        Shape of ``value``.
    """

    def __init__(self, operand_shape):
        self._shape = Shape.cast(operand_shape)
        self.count = ent_digit_count(self._shape.width, self._shape.signed)
        super().__init__({
            "value": In(self._shape),
            "negative": Out(1),
            "nonzero": Out(self.count),
            "two": Out(self.count),
            "minus": Out(self.count),
        })

    def elaborate(self, platform):
        m = Module()
        magnitude, negative = _magnitude(m, self.value, self._shape, "enc")
        m.d.comb += self.negative.eq(negative)
        padded = Cat(magnitude, Const(0, 2 * self.count - self._shape.width + 2))
        carry = Const(0, 1)
        for i in range(self.count):
            low, high = padded[2 * i], padded[2 * i + 1]
            # t = 2*high + low + carry: 1 and 2 stay, 3 -> -1 and 4 -> 0 carry one up.
            m.d.comb += [
                self.nonzero[i].eq((low ^ carry) | (high ^ low)),  # t in 1..3; low == carry gives t = 2*(high + low)
                self.two[i].eq((high & ~low & ~carry) | (~high & low & carry)),
                self.minus[i].eq(high & (low ^ carry)),
            ]
            carry_out = Signal(name=f"carry_{i + 1}")
            m.d.comb += carry_out.eq(high & (low | carry))
            carry = carry_out
        return m


class TermEncoder(wiring.Component):
    """Combinational effectual-term (NAF) encoder: ``plus`` and ``minus`` position masks and the sign.

    ``|value| = sum(plus[i] * 2**i) - sum(minus[i] * 2**i)``, never two
    adjacent nonzero positions; ``negative`` is the operand's sign.
    """

    def __init__(self, operand_shape):
        self._shape = Shape.cast(operand_shape)
        self.count = term_position_count(self._shape.width, self._shape.signed)
        super().__init__({
            "value": In(self._shape),
            "negative": Out(1),
            "plus": Out(self.count),
            "minus": Out(self.count),
        })

    def elaborate(self, platform):
        m = Module()
        magnitude, negative = _magnitude(m, self.value, self._shape, "enc")
        # As wide as 3*|x|, so that ~wide has ones above |x| (a narrower ~ would be zero-extended).
        wide = Signal(unsigned(self._shape.width + 2), name="wide")
        triple = Signal(unsigned(self._shape.width + 2), name="triple")
        m.d.comb += [
            wide.eq(magnitude),
            triple.eq(wide + (wide << 1)),
            self.negative.eq(negative),
            self.plus.eq((triple & ~wide) >> 1),
            self.minus.eq((~triple & wide) >> 1),
        ]
        return m


def lowest_set(m: Module, mask, name: str):
    """The lowest set bit of ``mask`` as a one-hot signal (zero for an empty mask), and whether it is the only one.

    A priority chain: bit ``i`` wins when no bit below it is set.
    """
    width = len(mask)
    onehot = Signal(width, name=f"{name}_onehot")
    single = Signal(name=f"{name}_single")  # at most one bit set
    below = Const(0, 1)
    for i in range(width):
        m.d.comb += onehot[i].eq(mask[i] & ~below)
        seen = Signal(name=f"{name}_below_{i + 1}")
        m.d.comb += seen.eq(below | mask[i])
        below = seen
    m.d.comb += single.eq(~(mask & ~onehot).any())
    return onehot, single
