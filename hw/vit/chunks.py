"""Rows of elements regrouped: groups of ``a`` elements in, groups of ``b`` elements out.

The attention engine reads rows as memory beats of ``E`` elements and computes on chunks of
``L`` lanes (and writes its result chunks back as beats), where one of ``E`` and ``L`` divides
the other. :class:`Rechunk` does both directions for a row of a run-time ``length``:

* ``a >= b`` (split): each input group gives ``a / b`` output groups, except that the row's
  final output group ends the input group early (the rest of the input group is padding);
* ``a < b`` (gather): ``b / a`` input groups make one output group; the row's final input
  group (``last``) closes an output group early.

An output group carries ``data`` (element ``l`` = element ``e + l`` of the row, where ``e`` is
the group's first element; elements at or past ``length`` are 0), ``mask`` (bit ``l`` set when
``e + l < length``) and ``last`` (the row's final group: ``e + b >= length``). Rows follow each
other; the input's ``last`` must mark exactly the group holding the row's final element
(``ceil(length / a)`` groups per row), and ``length`` stays stable while rows pass.

Timing: split: combinational (``inp.ready`` depends on ``out.ready``), one output group per
cycle. Gather: one register stage; an input group is taken in every cycle the output register
is empty or being taken, so one output group every ``b / a`` cycles.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .select import equals, pick


def group_layout(shape, size: int) -> data.StructLayout:
    """An input group: ``size`` elements and ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(shape, size), "last": 1})


def masked_group_layout(shape, size: int) -> data.StructLayout:
    """An output group: ``size`` elements, which of them are in the row (``mask``), ``last``."""
    return data.StructLayout({"data": data.ArrayLayout(shape, size), "mask": size, "last": 1})


class Rechunk(wiring.Component):
    """See the module docstring. ``shape`` is the elements' shape, ``length_max`` the longest row."""

    def __init__(self, *, shape, a: int, b: int, length_max: int):
        if a < 1 or b < 1 or (a % b if a >= b else b % a):
            raise ValueError(f"one group size must divide the other, not {a} and {b}")
        self.shape, self.a, self.b, self.length_max = shape, a, b, length_max
        super().__init__({
            "inp": In(stream.Signature(group_layout(shape, a))),
            "out": Out(stream.Signature(masked_group_layout(shape, b))),
            "length": In(range(length_max + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        a, b = self.a, self.b
        # first element of the output group on offer (within its row)
        first = Signal(range(self.length_max + max(a, b) + 1), name="first")
        last = Signal(name="group_last")
        m.d.comb += last.eq(first + b >= self.length)
        out_take = self.out.valid & self.out.ready
        with m.If(out_take):
            m.d.sync += first.eq(Mux(last, 0, first + b))
        inside = [first + lane < self.length for lane in range(b)]
        if a >= b:
            self._split(m, last, inside)
        else:
            self._gather(m, last, inside)
        return m

    def _split(self, m, last, inside):
        parts = self.a // self.b
        sub = Signal(range(max(2, parts)), name="sub")
        release = Signal(name="release")
        m.d.comb += [release.eq(last | (equals(sub, parts - 1) if parts > 1 else Const(1, 1))),
                     self.out.valid.eq(self.inp.valid),
                     self.inp.ready.eq(self.out.ready & release),
                     self.out.payload.last.eq(last),
                     self.out.payload.mask.eq(Cat(*inside))]
        for lane in range(self.b):
            options = [self.inp.payload.data[part * self.b + lane] for part in range(parts)]
            value = pick(sub, options) if parts > 1 else options[0]
            m.d.comb += self.out.payload.data[lane].eq(Mux(inside[lane], value, 0))
        if parts > 1:
            with m.If(self.out.valid & self.out.ready):
                m.d.sync += sub.eq(Mux(release, 0, sub + 1))

    def _gather(self, m, last, inside):
        parts = self.b // self.a
        held = [Signal(self.shape, name=f"held_{lane}") for lane in range(self.b)]
        fill = Signal(range(parts), name="fill")
        full = Signal(name="full")
        take = Signal(name="take")
        closes = Signal(name="closes")
        m.d.comb += [self.inp.ready.eq(~full | self.out.ready),
                     take.eq(self.inp.valid & self.inp.ready),
                     closes.eq(take & (self.inp.payload.last | equals(fill, parts - 1))),
                     self.out.valid.eq(full),
                     self.out.payload.last.eq(last),
                     self.out.payload.mask.eq(Cat(*inside))]
        for lane in range(self.b):
            m.d.comb += self.out.payload.data[lane].eq(Mux(inside[lane], held[lane], 0))
        with m.If(take):
            for part in range(parts):
                with m.If(equals(fill, part)):
                    for lane in range(self.a):
                        m.d.sync += held[part * self.a + lane].eq(self.inp.payload.data[lane])
            m.d.sync += fill.eq(Mux(closes, 0, fill + 1))
        m.d.sync += full.eq((full & ~self.out.ready) | closes)


def unpack_beat(beat, *, container: int, elements: int, shape) -> list:
    """The ``elements`` codes of a memory beat of ``container``-bit little-endian containers, as ``shape``
    (the low bits of each container)."""
    shape = Shape.cast(shape)
    out = []
    for j in range(elements):
        bits = beat[j * container:j * container + shape.width]
        out.append(bits.as_signed() if shape.signed else bits.as_unsigned())
    return out
