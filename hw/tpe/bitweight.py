"""``mac: opt2``: the same-bit-weight compressor array of the broadcast grids.

A product is a sum over the radix-4 digits of its ``A`` operand,
``a * b = sum_w d_w * b * 4**w``, so a dot product of ``depth`` steps can be
summed per bit weight *before* shifting:
``sum_s a_s * b_s = sum_w 4**w * (sum_s d_{s,w} * b_s)``. The inner sums add
only partial products (``{0, +-b, +-2b}``, ``W + 1`` bits for signed ``W``-bit
operands), so their adders are narrow (about ``W + 1 + log2(depth)`` bits); the
shift by ``2w`` and the wide add happen once per dot product, together with
the accumulation.

* :class:`DigitEncoder` recodes one ``A`` element into sign-magnitude radix-4
  Booth digits. The grid instantiates one per ``A`` element of a beat, at the
  array edge, and broadcasts the digits along the PE row, so every PE of a row
  shares them.
* :class:`BitWeightMac` is the PE's arithmetic: the partial-product selectors,
  one narrow adder tree per bit weight, optional registers for the per-weight
  sums, and the shift-and-add into the accumulator.

Why Booth and not the sign-magnitude EN-T code of the HPCA 2025 paper: both give
the same number of digits with the same digit set ``{0, +-1, +-2}`` (``ceil(W/2)``
for signed ``W``-bit operands; an unsigned one needs one more when ``W`` is
even), but a Booth digit is a function of three neighbouring bits, while EN-T
needs the magnitude of ``A`` (a ``W``-bit negation) and a carry rippling
through the digits. EN-T's extra zero digits shorten a digit-serial MAC
(``opt3``); here every digit is processed in the same cycle, so they would only
save switching.
"""

from amaranth.hdl import Mux, Module, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith.booth import booth_digit_count
from ..arith.widths import operand_range, signed_width_for
from .interface import accumulator_shape

#: One radix-4 digit in sign-magnitude form: ``(-1 if negative else 1) * (one + 2 * two)``;
#: ``one`` and ``two`` are never both set, and zero is never negative.
Digit = data.StructLayout({"negative": unsigned(1), "one": unsigned(1), "two": unsigned(1)})


def digit_count(operand_shape) -> int:
    """Radix-4 digits of an operand of ``operand_shape`` (one more for unsigned operands of even width)."""
    shape = Shape.cast(operand_shape)
    return booth_digit_count(shape.width, shape.signed)


def digits_layout(operand_shape) -> data.ArrayLayout:
    """Layout of one encoded operand: :func:`digit_count` digits, least significant first."""
    return data.ArrayLayout(Digit, digit_count(operand_shape))


def partial_product_range(operand_shape) -> tuple[int, int]:
    """Range of one selected partial product ``|d| * b``, inverted when ``d < 0``, over every ``b`` and ``d``.

    The inversion is ``-x - 1``; the ``+1`` that completes the negation is a
    separate one-bit term. E.g. signed 8-bit ``b``: ``|d| * b`` is in
    ``[-256, 254]``, inverted in ``[-255, 255]``, together 9 bits.
    """
    shape = Shape.cast(operand_shape)
    lo, hi = operand_range(shape.width, shape.signed)
    magnitudes = (0, lo, hi, 2 * lo, 2 * hi)
    return min(min(magnitudes), -max(magnitudes) - 1), max(max(magnitudes), -min(magnitudes) - 1)


def sum_widths(depth: int, operand_shape, acc_width: int) -> list[int]:
    """Width of each per-weight sum ``bw_<w>`` (register ``bw_sum_<w>``) of :class:`BitWeightMac`, ``w = 0, 1, ...``.

    The exact range of ``depth`` selected partial products and negation bits,
    but no more than the ``acc_width - 2w`` bits that reach the accumulator
    after the shift; a weight with none left is dropped. E.g. signed INT8,
    ``depth = 16``: ``d * b`` is in ``[-256, 256]``, 16 of them need 14 bits.
    """
    lo, hi = partial_product_range(operand_shape)
    exact = signed_width_for(depth * lo, depth * (hi + 1))
    return [min(exact, acc_width - 2 * w) for w in range(digit_count(operand_shape)) if acc_width > 2 * w]


class DigitEncoder(wiring.Component):
    """Radix-4 Booth recoding of one operand into sign-magnitude digits (combinational).

    ``a == sum_w value(digits[w]) * 4**w`` for every ``a`` of ``operand_shape``,
    with digit ``w`` read from bits ``2w+1, 2w, 2w-1`` of ``a`` (sign- or
    zero-extended; bit ``-1`` is 0): ``-2*a[2w+1] + a[2w] + a[2w-1]``
    (see :mod:`hw.arith.booth`). The window ``111`` gives a plain zero (not a
    negative one), so a zero digit selects nothing and negates nothing.
    """

    def __init__(self, operand_shape):
        self._shape = Shape.cast(operand_shape)
        super().__init__({"a": In(self._shape), "digits": Out(digits_layout(self._shape))})

    def elaborate(self, platform):
        m = Module()
        count = len(self.digits)
        extended = Signal(Shape(2 * count, self._shape.signed), name="extended")
        m.d.comb += extended.eq(self.a)
        for w in range(count):
            below = extended[2 * w - 1] if w else 0
            low, high = extended[2 * w], extended[2 * w + 1]
            digit = self.digits[w]
            m.d.comb += [
                digit.one.eq(low ^ below),
                digit.two.eq((high & ~low & ~below) | (~high & low & below)),
                digit.negative.eq(high & ~(low & below)),
            ]
        return m


def _exact_sum(m: Module, terms: list, name: str):
    """Balanced binary sum of ``(value, lo, hi)`` terms, every node exactly as wide as its range.

    Neighbours are paired level by level (an odd one out moves up unchanged);
    node ``<name>_<level>_<n>`` is a signed signal of
    :func:`hw.arith.widths.signed_width_for` its range. Returns ``(value, lo, hi)``.
    """
    level = 0
    while len(terms) > 1:
        level += 1
        paired = []
        for index in range(0, len(terms) - 1, 2):
            (left, left_lo, left_hi), (right, right_lo, right_hi) = terms[index], terms[index + 1]
            lo, hi = left_lo + right_lo, left_hi + right_hi
            node = Signal(signed(signed_width_for(lo, hi)), name=f"{name}_{level}_{index // 2}")
            m.d.comb += node.eq(left + right)
            paired.append((node, lo, hi))
        if len(terms) % 2:
            paired.append(terms[-1])
        terms = paired
    return terms[0]


class BitWeightMac(wiring.Component):
    """Dot product of ``depth`` encoded ``A`` and plain ``B`` operands, summed per bit weight, plus ``addend``.

    Per bit weight ``w`` and step ``s`` a selector forms ``|d_{s,w}| * b[s]``
    (``0``, ``b`` or ``2b``: a multiplexer, no multiplier), inverted when the
    digit is negative; one adder tree per bit weight sums the ``depth`` selected
    products and the ``depth`` negation bits (each completing an inversion)
    into ``bw_<w>``, exactly (:func:`partial_product_range`; every adder
    ``W + 1 + log2(depth)`` bits or so), kept at no more than
    ``acc_width - 2w`` bits, the bits that can reach the accumulator.

    ``total = addend + sum_w bw_<w> * 4**w`` modulo ``2**acc_width``: the shift
    is wiring, and the per-weight sums and the addend meet in one add.

    With ``registered``, the per-weight sums are registers ``bw_sum_<w>``,
    loaded at every edge where ``advance`` is high from the ``digits`` and
    ``b`` of that cycle; ``total`` then uses the registered sums and the
    current ``addend``. Without it, ``total`` is combinational and ``advance``
    is not read.

    Parameters
    ----------
    depth : int
        Steps per dot product.
    operand_shape : ShapeLike
        Shape of the ``A`` (before encoding) and ``B`` operands.
    acc_width : int
        Width of ``addend`` and ``total``, signed when the operands are.
    registered : bool
        Register the per-weight sums.
    """

    def __init__(self, depth: int, operand_shape, acc_width: int, *, registered: bool):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self._depth = depth
        self._shape = Shape.cast(operand_shape)
        self._acc_width = acc_width
        self._registered = registered
        acc_shape = accumulator_shape(acc_width, self._shape.signed)
        super().__init__({
            "digits": In(data.ArrayLayout(digits_layout(self._shape), depth)),
            "b": In(data.ArrayLayout(self._shape, depth)),
            "advance": In(1),
            "addend": In(acc_shape),
            "total": Out(acc_shape),
        })

    def elaborate(self, platform):
        m = Module()
        width = self._shape.width + (1 if self._shape.signed else 2)  # one selected partial product
        lo, hi = partial_product_range(self._shape)
        total = self.addend
        for w, sum_width in enumerate(sum_widths(self._depth, self._shape, self._acc_width)):
            products, negations = [], []
            for s in range(self._depth):
                digit = self.digits[s][w]
                once = Signal(signed(width), name=f"once_{w}_{s}")
                selected = Signal(signed(width), name=f"pp_{w}_{s}")
                m.d.comb += [
                    once.eq(Mux(digit.two, self.b[s] << 1, Mux(digit.one, self.b[s], 0))),
                    selected.eq((once.as_unsigned() ^ digit.negative.replicate(width)).as_signed()),
                ]
                products.append((selected, lo, hi))
                negations.append((digit.negative, 0, 1))
            exact, _, _ = _exact_sum(m, [_exact_sum(m, products, f"bw{w}_pp"),
                                         _exact_sum(m, negations, f"bw{w}_neg")], f"bw{w}")
            bw = Signal(signed(sum_width), name=f"bw_{w}")
            m.d.comb += bw.eq(exact)  # drops only bits at or above 2**acc_width once shifted
            if self._registered:
                held = Signal(signed(sum_width), name=f"bw_sum_{w}")
                with m.If(self.advance):
                    m.d.sync += held.eq(bw)
                bw = held
            total = total + (bw << (2 * w))
        m.d.comb += self.total.eq(total)
        return m
