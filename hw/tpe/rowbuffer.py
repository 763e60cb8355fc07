"""Two-row output buffer between a pipeline that holds on a clock enable and a stream sink."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class RowBuffer(wiring.Component):
    """Holds up to two result rows and offers them, oldest first, on ``out``.

    Contract, per clock cycle:

    * ``space`` is high while fewer than two rows are stored. It depends on
      registers only, so a pipeline can use it as its clock enable without a
      combinational path from ``out.ready``.
    * A row offered with ``push`` high is stored at the rising edge and offered
      on ``out`` from the next cycle on. The caller pushes only while ``space``
      is high; a row pushed into a full buffer is lost.
    * Rows leave in the order they came, one per beat.

    With ``out.ready`` always high at most one row is ever stored, so a
    pipeline that pushes one row per cycle never sees ``space`` low.

    Parameters
    ----------
    layout : Layout
        Payload layout of one row (the ``out`` stream's payload).
    """

    def __init__(self, layout):
        self._layout = layout
        super().__init__({
            "push": In(1),
            "row": In(layout),
            "space": Out(1),
            "out": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        head = Signal(self._layout, name="head")  # the row on offer
        tail = Signal(self._layout, name="tail")  # the row behind it
        count = Signal(range(3), name="count")

        pop = Signal()
        m.d.comb += [
            self.out.valid.eq(count.any()),
            self.out.payload.eq(head),
            pop.eq(self.out.valid & self.out.ready),
            self.space.eq(count < 2),
        ]
        with m.If(self.push & pop):
            with m.If(count == 1):
                m.d.sync += head.eq(self.row)
            with m.Else():
                m.d.sync += [head.eq(tail), tail.eq(self.row)]
        with m.Elif(self.push):
            with m.If(~count.any()):
                m.d.sync += head.eq(self.row)
            with m.Else():
                m.d.sync += tail.eq(self.row)
            m.d.sync += count.eq(count + 1)
        with m.Elif(pop):
            m.d.sync += [head.eq(tail), count.eq(count - 1)]
        return m
