"""Two-row output buffer between a pipeline that holds on a clock enable and a stream sink."""

from amaranth.hdl import Module, Mux, Signal
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

    The two rows stay where they were pushed (``row_0``, ``row_1``, written in
    turn, ``wr`` says which is next) and ``out.payload`` is a multiplexer of the
    two chosen by ``rd``: a row register loads only on ``push``, which the
    pipeline drives from registers, never because ``out.ready`` took a beat.
    Only ``rd`` and ``count`` follow ``out.ready``. (A head/tail pair that
    shifts on every taken beat makes ``out.ready`` the enable of every row bit:
    on the ECP5 that net, spread over a large array, was the 8x8 ``opt1``
    ``systolic_os``'s longest path, 10.6 ns of routing against 1.2 ns of logic.)

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
        rows = [Signal(self._layout, name=f"row_{n}") for n in range(2)]
        wr = Signal(name="wr")  # the row register the next push writes
        rd = Signal(name="rd")  # the row register on offer
        count = Signal(range(3), name="count")

        pop = Signal()
        m.d.comb += [
            self.out.valid.eq(count.any()),
            self.out.payload.eq(Mux(rd, rows[1], rows[0])),
            pop.eq(self.out.valid & self.out.ready),
            self.space.eq(count < 2),
        ]
        with m.If(self.push):
            with m.If(wr):
                m.d.sync += rows[1].eq(self.row)
            with m.Else():
                m.d.sync += rows[0].eq(self.row)
            m.d.sync += wr.eq(~wr)
        with m.If(pop):
            m.d.sync += rd.eq(~rd)
        with m.If(self.push & ~pop):
            m.d.sync += count.eq(count + 1)
        with m.Elif(pop & ~self.push):
            m.d.sync += count.eq(count - 1)
        return m
