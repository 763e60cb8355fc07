"""Regrouping a row stream from one number of elements per beat to another, rows kept apart.

A memory beat holds ``data_width / 8 / container`` elements, a nonlinear unit takes
``lanes`` elements per beat: :class:`Regroup` turns a stream of ``in_lanes`` elements per
beat into one of ``out_lanes`` per beat. Both sides are element streams as in
:mod:`hw.nonlinear.interface` (``data``, ``count`` when there is more than one lane,
``last`` on a row's final beat): every output beat but a row's last holds ``out_lanes``
elements, a row's first element is lane 0 of a beat on both sides, and the output row has
the elements of the input row in order.

Timing: a buffer of ``in_lanes + out_lanes`` elements. An output beat is offered when the
buffer holds ``out_lanes`` elements or the rest of a row; an input beat is taken when at
most ``out_lanes`` elements stay buffered after this cycle's output beat (and, once a
row's last beat is in, only in the cycle the row's final output beat leaves). So the
stream moves ``min(in_lanes, out_lanes)`` elements per cycle, with no bubble between
rows. ``out.valid`` and the output payload come
from registers; ``inp.ready`` depends on registers and ``out.ready``.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from .select import equals


def row_layout(shape, lanes: int) -> data.StructLayout:
    """:func:`hw.nonlinear.interface.element_layout` for elements of any ``shape``."""
    if lanes < 1:
        raise ValueError(f"lanes must be at least 1, not {lanes}")
    fields = {"data": data.ArrayLayout(shape, lanes)}
    if lanes > 1:
        fields["count"] = unsigned(bits_for(lanes))
    fields["last"] = unsigned(1)
    return data.StructLayout(fields)


def beat_count(payload, lanes: int):
    """The elements a beat of :func:`row_layout` holds (``count``, or 1 for one lane)."""
    return payload.count if lanes > 1 else 1


class Regroup(wiring.Component):
    """``inp``: rows of elements of ``shape``, ``in_lanes`` per beat; ``out``: the same rows, ``out_lanes``
    per beat (see the module docstring)."""

    def __init__(self, shape, *, in_lanes: int, out_lanes: int):
        self.shape, self.in_lanes, self.out_lanes = shape, in_lanes, out_lanes
        super().__init__({"inp": In(stream.Signature(row_layout(shape, in_lanes))),
                          "out": Out(stream.Signature(row_layout(shape, out_lanes)))})

    def elaborate(self, platform):
        m = Module()
        a, b = self.in_lanes, self.out_lanes
        size = a + b
        buf = [Signal(self.shape, name=f"buf_{j}") for j in range(size)]
        fill = Signal(range(size + 1), name="fill")
        closed = Signal(name="closed")  # the buffer holds a row's last element: nothing more enters
        final = Signal(name="final")  # the beat on offer is its row's last
        inp, out = self.inp, self.out

        m.d.comb += [final.eq(closed & (fill <= b)),
                     out.valid.eq((fill >= b) | closed), out.payload.last.eq(final)]
        for lane in range(b):
            m.d.comb += out.payload.data[lane].eq(buf[lane])
        if b > 1:
            m.d.comb += out.payload.count.eq(Mux(fill >= b, b, fill))
        take = Signal(name="take")
        accept = Signal(name="accept")
        # After the output beat leaves: b elements fewer, or none left after a row's final beat. An input
        # beat lands behind those (at most b of them): a row's last beat closes the buffer until its final
        # output beat leaves.
        remain = Signal(range(size + 1), name="remain")
        shifted = take & ~final
        m.d.comb += [take.eq(out.valid & out.ready),
                     remain.eq(Mux(take, Mux(final, 0, fill - b), fill)),
                     inp.ready.eq(Mux(closed, final & out.ready, remain <= b)),
                     accept.eq(inp.valid & inp.ready)]
        incoming = beat_count(inp.payload, a)
        with m.If(accept):
            m.d.sync += [fill.eq(remain + incoming), closed.eq(inp.payload.last)]
        with m.Else():
            m.d.sync += fill.eq(remain)
            with m.If(take & final):
                m.d.sync += closed.eq(0)
        # Slot j keeps its element (moved down by b when a beat left) unless the input beat lands on it:
        # slots remain .. remain + a - 1, remain <= b.
        for j in range(size):
            kept = Mux(shifted, buf[j + b], buf[j]) if j + b < size else buf[j]
            value = kept
            for start in range(max(0, j - a + 1), min(j, b) + 1):
                value = Mux(accept & equals(remain, start), inp.payload.data[j - start], value)
            m.d.sync += buf[j].eq(value)
        return m
