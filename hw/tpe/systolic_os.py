"""Output-stationary systolic array."""

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import data, wiring

from .interface import engine_signature
from .pe import OutputStationaryPE, StepTag
from .skew import SkewBuffer


class SystolicOS(wiring.Component):
    """``rows x cols`` output-stationary systolic array behind the engine interface.

    ``A`` enters from the left (row ``i`` delayed ``i`` cycles), ``B`` from the top
    (column ``j`` delayed ``j`` cycles), so ``A[i, k]`` and ``B[k, j]`` meet in
    PE ``(i, j)`` in the ``i + j + 1``-th cycle after the one in which step ``k``
    was accepted (one input register, then one hop per PE). Each PE keeps
    ``C[i, j]``. A step tag (valid/first/last) travels with ``A``; bubbles carry
    ``valid = 0``, so the array advances every cycle and never stalls.

    When the last step of a job has left PE ``(rows-1, cols-1)``, every PE holds
    its result and the array drains them as ``rows`` result beats, row 0 first,
    by shifting the result registers up one row per accepted beat.

    Flow control: at most one finished job waits in the result registers. The
    ``last`` beat of the next job is held off (``operands.ready`` low while
    ``operands.payload.last`` is high) until that job has fully drained; all
    other beats are accepted at once, so the next job's reduction overlaps the
    previous job's drain.

    Timing (cycles, sink always ready): the first result beat is valid
    :attr:`latency` cycles after the cycle in which the job's last operand beat
    moved; one result beat per cycle follows. Back to back, a job occupies
    ``max(K, 2*rows + cols + 1)`` cycles of the operand stream.

    Parameters
    ----------
    rows, cols : int
        Array size: ``A`` has ``rows`` rows, ``B`` has ``cols`` columns.
    operand_shape : ShapeLike
        Shape of every ``A`` and ``B`` element.
    acc_width : int
        Accumulator width. The caller chooses it wide enough for its ``k_max``
        (see :func:`hw.arith.accumulator_width`); longer jobs wrap.
    """

    def __init__(self, rows: int, cols: int, operand_shape, acc_width: int):
        if rows < 1 or cols < 1:
            raise ValueError(f"array size must be at least 1x1, not {rows}x{cols}")
        self.rows = rows
        self.cols = cols
        self.operand_shape = Shape.cast(operand_shape)
        self.acc_width = acc_width
        super().__init__(engine_signature(rows, cols, self.operand_shape, acc_width))

    @property
    def latency(self) -> int:
        """Cycles from the last operand beat's transfer to the first result beat's ``valid``."""
        return self.rows + self.cols + 1

    @property
    def job_interval(self) -> int:
        """Fewest operand-stream cycles a job occupies when jobs run back to back (for K small)."""
        return 2 * self.rows + self.cols + 1

    def _forwarded(self, i: int, j: int) -> set[str]:
        """What PE ``(i, j)`` passes on: only what a neighbour (or the drain logic) reads."""
        forward = set()
        if j + 1 < self.cols:
            forward |= {"a", "tag"}
        if i + 1 < self.rows:
            forward.add("b")
        if (i, j) == (self.rows - 1, self.cols - 1):
            forward.add("tag")  # its tag tells the drain logic that a job is complete
        return forward

    def elaborate(self, platform):
        m = Module()
        ops, res = self.operands, self.results

        a_lane = data.StructLayout({"a": self.operand_shape, "tag": StepTag})
        m.submodules.skew_a = skew_a = SkewBuffer(self.rows, a_lane)
        m.submodules.skew_b = skew_b = SkewBuffer(self.cols, self.operand_shape)

        pe = [[OutputStationaryPE(self.operand_shape, self.acc_width,
                                  forward=self._forwarded(i, j))
               for j in range(self.cols)]
              for i in range(self.rows)]
        for i in range(self.rows):
            for j in range(self.cols):
                m.submodules[f"pe_{i}_{j}"] = pe[i][j]

        # A job's last beat has been accepted and its results have not all left yet.
        pending = Signal()
        # The previous accepted beat was not a job's last, so the next one is not a first.
        in_job = Signal()

        m.d.comb += ops.ready.eq(~(pending & ops.p.last))
        accept = Signal()
        m.d.comb += accept.eq(ops.valid & ops.ready)
        with m.If(accept):
            m.d.sync += in_job.eq(~ops.p.last)
            with m.If(ops.p.last):
                m.d.sync += pending.eq(1)

        for i in range(self.rows):
            m.d.comb += [
                skew_a.i[i].a.eq(ops.p.a[i]),
                skew_a.i[i].tag.valid.eq(accept),
                skew_a.i[i].tag.first.eq(~in_job),
                skew_a.i[i].tag.last.eq(ops.p.last),
            ]
        for j in range(self.cols):
            m.d.comb += skew_b.i[j].eq(ops.p.b[j])

        for i in range(self.rows):
            for j in range(self.cols):
                if j == 0:
                    a_from, tag_from = skew_a.o[i].a, skew_a.o[i].tag
                else:
                    a_from, tag_from = pe[i][j - 1].a_out, pe[i][j - 1].tag_out
                b_from = skew_b.o[j] if i == 0 else pe[i - 1][j].b_out
                m.d.comb += [pe[i][j].a_in.eq(a_from), pe[i][j].tag_in.eq(tag_from), pe[i][j].b_in.eq(b_from)]

        # Drain: results shift up one row per accepted result beat.
        draining = Signal()
        shift = Signal()
        final_row = Signal()  # the beat on offer carries the job's last row
        last_pe = pe[self.rows - 1][self.cols - 1]
        job_done = Signal()
        m.d.comb += job_done.eq(last_pe.tag_out.valid & last_pe.tag_out.last)

        if self.rows > 1:
            row = Signal(range(self.rows))
            m.d.comb += final_row.eq(row == self.rows - 1)
            with m.If(job_done):
                m.d.sync += row.eq(0)
            with m.If(shift):
                m.d.sync += row.eq(row + 1)
        else:
            m.d.comb += final_row.eq(1)

        m.d.comb += [
            res.valid.eq(draining),
            res.p.last.eq(final_row),
            shift.eq(res.valid & res.ready),
        ]
        for j in range(self.cols):
            m.d.comb += res.p.c[j].eq(pe[0][j].result)
        for i in range(self.rows):
            for j in range(self.cols):
                m.d.comb += pe[i][j].drain.eq(shift)
                if i + 1 < self.rows:  # the bottom row's result_in stays 0
                    m.d.comb += pe[i][j].result_in.eq(pe[i + 1][j].result)

        with m.If(job_done):
            m.d.sync += draining.eq(1)
        with m.If(shift & final_row):
            m.d.sync += [draining.eq(0), pending.eq(0)]
        return m
