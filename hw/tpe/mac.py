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

    **Narrowed terms.** A Booth term ``|d_i| * b`` (inverted for a negative digit) is an
    ``n``-bit two's-complement number at weight ``4**i`` (``n``: ``b``'s width plus one, two
    when ``b`` is unsigned); sign-extended, every bit above it is a copy of its sign, and
    every column of the tree up to the top would compress those copies. Instead each term
    enters as its ``n`` bits with the sign bit inverted (the term plus ``2**(2i + n - 1)``:
    nothing above it), and one constant takes the sum of those weights back (modulo
    ``2**width``; split, below). Above the terms' top bit the tree adds only the addends and
    that constant.

    **Split accumulation** (``addends == 2``, the running pair, when
    :func:`split_widths` gives ``(L, G)``: one product, room above): the tree is only
    ``L + G`` bits wide. Why: the running sum's upper bits barely move, but a pair kept
    over the whole width toggles them (its carry has no stable sign bits), and the tree's
    upper columns cost compressor cells. Every term lies below ``L``, so the narrowed terms,
    the addends' low ``L`` bits and the constant ``C`` (the terms' sign weights rounded up to
    a whole ``constants * 2**L``, minus those weights: ``C < 2**L``) enter the tree, whose exact
    sum fits in ``L + G`` bits. Above bit ``L - 1`` one adder forms ``high = sum[L:] +
    carry[L:]`` of the addends plus the tree's bits from ``L`` up, minus ``constants``,
    ``width - L`` bits. Outputs: ``sum = {high, tree sum[:L]}``, ``carry = {0, tree
    carry[:L]}``: fed back, the carry's upper bits stay zero and ``high`` moves only when the
    low part wraps. The same total modulo ``2**width``.

    **Deferred top** (``deferred=True``, split only): the caller keeps the bits above ``L``
    and adds the tree's upper bits a cycle later, so no adder follows the tree inside an
    accumulation loop (:class:`hw.tpe.pe.OutputStationaryPE`). The addends are then the pair's
    ``L``-bit low parts, ``sum``/``carry`` the tree's low ``L`` bits, and ``top_sum``/``top_carry``
    its ``G`` upper bits: ``sum + carry + (top_sum + top_carry - constants) * 2**L`` is the
    exact total of the products and the addends.

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
    deferred : bool
        Leave the bits above the split tree to the caller (above); only where it splits.

    Attributes
    ----------
    split : (int, int) or None
        ``(L, G)``, or None when the tree spans the whole width.
    constants : int
        Split only: what the terms' inverted sign bits add at weight ``2**L``.
    """

    def __init__(self, depth: int, a_shape, width: int, addends: int, *, b_shape=None, deferred: bool = False):
        self._depth, self._width, self._addends = depth, width, addends
        self._a_shape = Shape.cast(a_shape)
        self._b_shape = self._a_shape if b_shape is None else Shape.cast(b_shape)
        self.split = split_widths(depth, self._a_shape, self._b_shape, width) if addends == 2 else None
        self.deferred = deferred
        if deferred and self.split is None:
            raise ValueError(f"deferred: a {width}-bit tree of {depth} product(s) and {addends} addend(s) "
                             "does not split, so there is no top to defer")
        if self.split is not None:  # whole units of 2**L that the narrowed terms' signs add
            self.constants = -(-self._offset(self.split[0]) // (1 << self.split[0]))
        low, guard = self.split if deferred else (width, 0)
        members = {
            "a": In(data.ArrayLayout(self._a_shape, depth)),
            "b": In(data.ArrayLayout(self._b_shape, depth)),
            "addends": In(data.ArrayLayout(unsigned(low), addends)),
            "sum": Out(unsigned(low)),
            "carry": Out(unsigned(low)),
        }
        if deferred:
            members |= {"top_sum": Out(unsigned(guard)), "top_carry": Out(unsigned(guard))}
        super().__init__(members)

    def _sign_positions(self, modulus_bits: int) -> list[int | None]:
        """Per Booth term of one product: the bit where the term's sign sits once narrowed, or None.

        Term ``i`` is ``|d_i| * b``, inverted for a negative digit, at weight ``4**i``: its
        ``n`` low bits from ``2i`` (``n`` = ``b``'s width plus one, plus one more when ``b`` is
        unsigned) are a two's-complement number and every bit above them a copy of its sign.
        Narrowed, it enters the tree as those ``n`` bits with the sign bit inverted, worth the
        term plus ``2**(2i + n - 1)``; None where that bit falls outside ``modulus_bits``.
        """
        n = self._b_shape.width + (1 if self._b_shape.signed else 2)
        digits = booth_digit_count(self._a_shape.width, self._a_shape.signed)
        return [2 * i + n - 1 if 2 * i + n - 1 < modulus_bits else None for i in range(digits)]

    def _offset(self, modulus_bits: int) -> int:
        """What the narrowed terms' inverted sign bits add, in total, over the ``depth`` products."""
        return self._depth * sum(1 << p for p in self._sign_positions(modulus_bits) if p is not None)

    def elaborate(self, platform):
        m = Module()
        low, guard = self.split or (self._width, 0)
        tree_width = low + guard
        signs = self._sign_positions(low)
        terms = []
        for s in range(self._depth):
            pp = BoothPartialProducts(self._b_shape, self._a_shape, self._width)
            m.submodules[f"booth_{s}"] = pp
            m.d.comb += [pp.multiplier.eq(self.a[s]), pp.multiplicand.eq(self.b[s])]
            for i, (term, sign) in enumerate(zip(list(pp.terms)[:-1], signs)):
                if sign is None:
                    terms.append(term[:low])
                else:  # no sign extension: the sign bit inverted, its weight in the constant below
                    terms.append(Cat(Const(0, 2 * i), term[2 * i:sign + 1] ^ (1 << (sign - 2 * i))))
            terms.append(pp.terms[-1][:low])
        terms += [addend[:low] for addend in self.addends]
        # The constant that takes the inverted sign bits' weight back: modulo 2**acc_width
        # unsplit; split, up to a whole number (``constants``) of 2**L, subtracted above the tree.
        offset = self._offset(low)
        correction = (-offset) % (1 << low)
        if correction:
            terms.append(Const(correction, low))
        m.submodules.tree = tree = CarrySaveTree(len(terms), tree_width)
        for n, term in enumerate(terms):
            m.d.comb += tree.terms[n].eq(term)
        if self.split is None:
            m.d.comb += [self.sum.eq(tree.sum), self.carry.eq(tree.carry)]
            return m
        assert (offset + correction) == self.constants << low
        if self.deferred:
            m.d.comb += [self.sum.eq(tree.sum[:low]), self.carry.eq(tree.carry[:low]),
                         self.top_sum.eq(tree.sum[low:]), self.top_carry.eq(tree.carry[low:])]
            return m
        high = Signal(unsigned(self._width - low), name="high")
        m.d.comb += high.eq(sum((addend[low:] for addend in self.addends), tree.sum[low:] + tree.carry[low:])
                            - self.constants)
        m.d.comb += [self.sum.eq(Cat(tree.sum[:low], high)), self.carry.eq(tree.carry[:low])]
        return m
