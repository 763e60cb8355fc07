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

from amaranth.hdl import Module, Shape, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith.booth import BoothPartialProducts
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


class CompressedMac(wiring.Component):
    """Booth partial products of ``depth`` products and ``addends`` vectors in one carry-save tree.

    Combinational, no carry-propagate adder: ``sum + carry`` equals
    ``sum_s a[s] * b[s] + sum_n addends[n]`` modulo ``2**width``. ``a[s]`` is the
    Booth-recoded operand (:class:`hw.arith.booth.BoothPartialProducts`), ``b[s]``
    the multiplicand; every partial product and the addends enter one
    :class:`hw.arith.csa.CarrySaveTree`.

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
        super().__init__({
            "a": In(data.ArrayLayout(self._a_shape, depth)),
            "b": In(data.ArrayLayout(self._b_shape, depth)),
            "addends": In(data.ArrayLayout(unsigned(width), addends)),
            "sum": Out(unsigned(width)),
            "carry": Out(unsigned(width)),
        })

    def elaborate(self, platform):
        m = Module()
        terms = []
        for s in range(self._depth):
            pp = BoothPartialProducts(self._b_shape, self._a_shape, self._width)
            m.submodules[f"booth_{s}"] = pp
            m.d.comb += [pp.multiplier.eq(self.a[s]), pp.multiplicand.eq(self.b[s])]
            terms += list(pp.terms)
        terms += list(self.addends)
        m.submodules.tree = tree = CarrySaveTree(len(terms), self._width)
        for n, term in enumerate(terms):
            m.d.comb += tree.terms[n].eq(term)
        m.d.comb += [self.sum.eq(tree.sum), self.carry.eq(tree.carry)]
        return m
