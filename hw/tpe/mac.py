"""Multiply-accumulate options shared by the engines (``mac:`` in the config).

``baseline``: a multiplier and a carry-propagate adder per MAC; accumulators and
partial sums are single ``acc_width``-bit values.

``opt1`` (compressed accumulative MAC): radix-4 Booth partial products of the
products and the running sum and carry go through one carry-save compressor
tree (:class:`CompressedMac`) into a registered *pair* of ``acc_width``-bit
vectors, sum and carry, whose total modulo ``2**acc_width`` is the running sum.
No carry propagates inside a PE; one adder resolves a pair where a result
leaves the array (:func:`resolve`). Every register that held an accumulator,
partial sum or result becomes two, named with the suffixes of :func:`parts`.

``opt2`` (same-bit-weight compressor array, :mod:`hw.tpe.bitweight`) keeps
single accumulators: only the multipliers and the adder tree change.
"""

from functools import reduce
from operator import add

from amaranth.hdl import Cat, Const, Module, Shape, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith.booth import BoothPartialProducts, booth_digit_count
from ..arith.csa import CarrySaveTree

MAC_OPTIONS = ("baseline", "opt1", "opt2", "opt3", "opt4c", "laconic")  # opt3, opt4c, laconic: digit_serial.py


#: The options the systolic engines (and their PEs) implement.
SYSTOLIC_MAC = ("baseline", "opt1")

#: Operand formats of the options that recode an operand into digits or terms and keep the limits
#: they were built and verified with: one shape for ``A`` and ``B`` (``opt2`` selects multiples
#: of ``B`` by ``A``'s digits through adders sized from one format; the digit-serial options'
#: cycle model tabulates every code of it) of at most this many bits. ``baseline`` (a multiplier)
#: and ``opt1`` (Booth digits of ``A`` times ``B``, each extended by its own shape) take any two shapes.
SAME_FORMAT_MAX_WIDTH = {"opt2": 16, "opt3": 16, "opt4c": 16, "laconic": 16}


def format_limit(mac: str) -> str | None:
    """What ``mac`` requires of the operand formats, in words, or None if it takes any."""
    if mac not in SAME_FORMAT_MAX_WIDTH:
        return None
    return f"one format for A and B (operand) of at most {SAME_FORMAT_MAX_WIDTH[mac]} bits"


def check_formats(mac: str, a_shape, b_shape) -> None:
    """``ValueError`` unless ``mac`` takes ``A`` of ``a_shape`` and ``B`` of ``b_shape`` (:func:`format_limit`)."""
    a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
    limit = SAME_FORMAT_MAX_WIDTH.get(mac)
    if limit is not None and (a_shape != b_shape or a_shape.width > limit):
        raise ValueError(f"mac {mac!r} takes {format_limit(mac)}, not A {a_shape!r} and B {b_shape!r}")


def check_mac(mac: str, implemented: tuple[str, ...] = MAC_OPTIONS) -> str:
    """``mac`` itself, or ``ValueError`` if the calling engine does not implement it."""
    if mac not in implemented:
        raise ValueError(f"mac: {mac!r} is not one of {implemented}")
    return mac


def parts(mac: str) -> tuple[str, ...]:
    """Name suffixes of the registers that hold one running value: ``("",)`` or ``("_sum", "_carry")``."""
    return ("_sum", "_carry") if check_mac(mac) == "opt1" else ("",)


def part_shape(mac: str, acc_shape: Shape) -> Shape:
    """Shape of each part: the accumulator's own, or unsigned vectors of its width (carry-save)."""
    return unsigned(acc_shape.width) if check_mac(mac) == "opt1" else acc_shape


def resolve(values):
    """The value held as ``values`` (one part, or a sum and carry): the one carry-propagate add.

    Assign the result to an ``acc_width``-bit signal: that drops the carry out
    of the top bit, which is the modulo ``2**acc_width`` the pair is exact to.
    """
    return reduce(add, values)


def split_widths(depth: int, a_shape, b_shape, width: int) -> tuple[int, int] | None:
    """``(L, G)`` of :class:`CompressedMac`'s split accumulation, or None when it would not split.

    ``L``: bits that hold every Booth term with its sign (a term is at most
    ``(2 |b| + 1) * 4**i`` in magnitude: the inverted magnitude shifted by its digit's
    weight). ``G``: guard bits above them that hold the exact sum of all the tree's
    ``L``-bit inputs (``depth`` products of ``digits + 1`` terms, the two addends and one
    constant) with one bit to spare, so no compressor drops a carry. No split when
    ``L + G`` reaches ``width``: nothing would be left above the tree; and none for more than
    one product per tree (``cube``): the guard bits then take most of the width back, and the
    adder after the tree only lengthens the loop (a 4x4x4 INT8 cube with 24-bit accumulators,
    tree 22 bits: 56.89 MHz on the ECP5 against 67.59 unsplit, 26,013 LUTs against 24,868).
    """
    if depth != 1:
        return None
    a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
    digits = booth_digit_count(a_shape.width, a_shape.signed)
    most = 2 ** (b_shape.width - 1) if b_shape.signed else 2 ** b_shape.width - 1
    low = ((2 * most + 1) * 4 ** (digits - 1)).bit_length() + 1
    inputs = depth * (digits + 1) + 2 + 1
    guard = (inputs - 1).bit_length() + 1
    return (low, guard) if low + guard < width else None


class CompressedMac(wiring.Component):
    """Booth partial products of ``depth`` products and ``addends`` vectors in one carry-save tree.

    Combinational, no carry-propagate adder: ``sum + carry`` equals
    ``sum_s a[s] * b[s] + sum_n addends[n]`` modulo ``2**width``. ``a[s]`` is the
    Booth-recoded operand (:class:`hw.arith.booth.BoothPartialProducts`), ``b[s]``
    the multiplicand; every partial product and the addends enter one
    :class:`hw.arith.csa.CarrySaveTree`.

    **Split accumulation** (``addends == 2``, the running pair, when
    :func:`split_widths` gives ``(L, G)``: one product, room above): the tree is only
    ``L + G`` bits wide. Why:
    each Booth term is sign-extended over the whole width, so with the digits' signs
    changing from cycle to cycle every upper bit of every term, of the tree and of the
    pair toggled, though the running sum's upper bits barely move; and those bits cost
    compressor cells. A term fits in ``L`` bits with its sign, so its low ``L`` bits
    with bit ``L - 1`` inverted, minus ``2**(L - 1)``, is its value: the inverted low
    parts, the addends' low ``L`` bits and (for an odd count of terms) a constant
    ``2**(L - 1)`` enter the tree, whose exact sum fits in ``L + G`` bits. Above bit
    ``L - 1`` one adder forms ``high = sum[L:] + carry[L:]`` of the addends plus the
    tree's bits from ``L`` up, minus the terms' constants (``ceil(terms / 2)``, at
    weight ``2**L``), ``width - L`` bits. Outputs: ``sum = {high, tree sum[:L]}``,
    ``carry = {0, tree carry[:L]}``: fed back, the carry's upper bits stay zero and
    ``high`` moves only when the low part wraps. The same total modulo ``2**width``.

    Parameters
    ----------
    depth : int
        Products summed.
    a_shape : ShapeLike
        Shape of every ``a`` element (the recoded operand), and of every ``b`` element unless
        ``b_shape`` is given. Mixed signedness is exact: each operand is extended by its own shape.
    width : int
        Width of the addends, ``sum`` and ``carry`` (the accumulator width).
    addends : int
        Carry-save vectors added (2: a running sum and carry; 0: none).
    b_shape : ShapeLike or None
        Shape of every ``b`` element (the multiplicand); ``None``: ``a_shape``.
    """

    def __init__(self, depth: int, a_shape, width: int, addends: int, *, b_shape=None):
        self._depth, self._width, self._addends = depth, width, addends
        self._a_shape = Shape.cast(a_shape)
        self._b_shape = self._a_shape if b_shape is None else Shape.cast(b_shape)
        self.split = split_widths(depth, self._a_shape, self._b_shape, width) if addends == 2 else None
        super().__init__({
            "a": In(data.ArrayLayout(self._a_shape, depth)),
            "b": In(data.ArrayLayout(self._b_shape, depth)),
            "addends": In(data.ArrayLayout(unsigned(width), addends)),
            "sum": Out(unsigned(width)),
            "carry": Out(unsigned(width)),
        })

    def elaborate(self, platform):
        m = Module()
        products, corrections, every = [], [], []
        for s in range(self._depth):
            pp = BoothPartialProducts(self._b_shape, self._a_shape, self._width)
            m.submodules[f"booth_{s}"] = pp
            m.d.comb += [pp.multiplier.eq(self.a[s]), pp.multiplicand.eq(self.b[s])]
            products += list(pp.terms)[:-1]
            corrections.append(pp.terms[-1])
            every += list(pp.terms)
        if self.split is None:
            terms = every + list(self.addends)
            m.submodules.tree = tree = CarrySaveTree(len(terms), self._width)
            for n, term in enumerate(terms):
                m.d.comb += tree.terms[n].eq(term)
            m.d.comb += [self.sum.eq(tree.sum), self.carry.eq(tree.carry)]
            return m
        low, guard = self.split
        width, tree_width = self._width, low + guard
        top = 1 << (low - 1)
        # Each term: its low bits with the sign bit inverted, worth the term plus 2**(L-1).
        terms = [(term ^ top)[:low] for term in products]
        terms += [term[:low] for term in corrections + list(self.addends)]
        odd = len(products) % 2
        if odd:  # the constants' half unit of 2**L
            terms.append(Const(top, low))
        m.submodules.tree = tree = CarrySaveTree(len(terms), tree_width)
        for n, term in enumerate(terms):
            m.d.comb += tree.terms[n].eq(term)
        high = Signal(unsigned(width - low), name="high")
        constants = (len(products) + odd) // 2
        m.d.comb += high.eq(sum((addend[low:] for addend in self.addends), tree.sum[low:] + tree.carry[low:])
                            - constants)
        m.d.comb += [self.sum.eq(Cat(tree.sum[:low], high)), self.carry.eq(tree.carry[:low])]
        return m
