"""Two-row output buffer between a pipeline that holds on a clock enable and a stream sink."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class RowBuffer(wiring.Component):
    """Holds up to two result rows and offers them, oldest first, on ``out``.

    Contract, per clock cycle:

    * ``space`` is high while fewer than two rows are stored. It is a register,
      so a pipeline can use it as its clock enable without a combinational
      path from ``out.ready``.
    * A row offered with ``push`` high is stored at the rising edge and offered
      on ``out`` from the next cycle on. The caller pushes only while ``space``
      is high; a row pushed into a full buffer is lost.
    * Rows leave in the order they came, one per beat.

    With ``out.ready`` always high at most one row is ever stored, so a
    pipeline that pushes one row per cycle never sees ``space`` low.

    The two rows stay where they were pushed (``row_0``, ``row_1``, written in
    turn) and ``out.payload`` is a multiplexer of the two chosen by ``rd``. A
    row register is enabled by a register of its own, ``load_<n>``: high while
    it is the free one that the next push writes, so it copies ``row`` in every
    such cycle and keeps the one of the push. No row bit is enabled through
    logic from ``push`` or ``out.ready`` (only ``rd``, ``wr``, ``count``, ``space``
    and the two ``load_<n>`` follow them). (A head/tail pair that shifts on every
    taken beat makes ``out.ready`` the enable of every row bit: on the ECP5 that
    net, spread over a large array, was the 8x8 ``opt1`` ``systolic_os``'s
    longest path, 10.6 ns of routing against 1.2 ns of logic; with ``push``
    and ``wr`` gating the enables instead, 9.1 ns against 1.0.)

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
            "space": Out(1, init=1),
            "out": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        rows = [Signal(self._layout, name=f"row_{n}") for n in range(2)]
        wr = Signal(name="wr")  # the row register the next push writes
        rd = Signal(name="rd")  # the row register on offer
        count = Signal(range(3), name="count")
        # load_<n>: row_<n> is the free one the next push writes (wr == n and count < 2), a
        # register so that no logic sits between it and the enables of the row's bits.
        load = [Signal(name=f"load_{n}", init=1 - n) for n in range(2)]

        pop = Signal()
        count_next = Signal(range(3))
        wr_next = Signal()
        m.d.comb += [
            self.out.valid.eq(count.any()),
            self.out.payload.eq(Mux(rd, rows[1], rows[0])),
            pop.eq(self.out.valid & self.out.ready),
            wr_next.eq(wr ^ self.push),
            count_next.eq(count),
        ]
        with m.If(self.push & ~pop):
            m.d.comb += count_next.eq(count + 1)
        with m.Elif(pop & ~self.push):
            m.d.comb += count_next.eq(count - 1)
        free = count_next < 2
        m.d.sync += [
            count.eq(count_next),
            wr.eq(wr_next),
            rd.eq(rd ^ pop),
            self.space.eq(free),
            load[0].eq(free & ~wr_next),
            load[1].eq(free & wr_next),
        ]
        for row, enabled in zip(rows, load):
            with m.If(enabled):
                m.d.sync += row.eq(self.row)
        return m
