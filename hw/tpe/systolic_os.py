"""Output-stationary systolic array."""

from operator import or_

from amaranth.hdl import EnableInserter, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, wiring

from ..arith.tree import balanced
from ..arith.widths import accumulator_signed
from .interface import StepTag, accumulator_shape, engine_signature, operand_beat_layout, result_beat_layout
from .mac import SYSTOLIC_MAC, check_mac, part_shape, parts, resolve
from .pe import OutputStationaryPE
from .rowbuffer import RowBuffer
from .skew import DelayLine, SkewBuffer


class SystolicOS(wiring.Component):
    """``rows x cols`` output-stationary systolic array behind the engine interface.

    ``A`` enters from the left (row ``i`` delayed ``i`` cycles), ``B`` from the top
    (column ``j`` delayed ``j`` cycles), so ``A[i, k]`` and ``B[k, j]`` meet in
    PE ``(i, j)`` in the ``i + j + 1``-th cycle after the one in which step ``k``
    was accepted (one input register, then one hop per PE). Each PE keeps
    ``C[i, j]``. A step tag (valid/first/last) travels with ``A``; bubbles carry
    ``valid = 0``. One operand beat is one reduction step (format ``k_steps``).

    ``result_buffers`` chooses how finished results leave:

    ``1`` -- *drain by shifting.* When the last step of a job has left PE
    ``(rows-1, cols-1)``, every PE holds its result in a result register and the
    array drains them as ``rows`` result beats, row 0 first, by shifting the
    result registers up one row per accepted beat. At most one finished job
    waits there, so the ``last`` beat of the next job is held off
    (``operands.ready`` low while ``operands.payload.last`` is high) until that
    job has fully drained. The array itself never stalls. Back to back, a job
    occupies ``max(K, 2*rows + cols + 1)`` operand-stream cycles.

    ``2`` -- *stream by column buses.* The accumulators are the first buffer:
    in the cycle after a job's last step passed PE ``(i, j)``, its accumulator
    still holds ``C[i, j]`` and a per-column bus reads it, so row ``i`` of
    column ``j`` leaves ``i + j`` cycles after row 0 of column 0 (a wavefront).
    A de-skew buffer delays column ``j`` by ``cols - 1 - j`` more cycles so whole
    rows line up, and a two-row :class:`RowBuffer` is the second buffer. The
    array, skew and de-skew registers advance only while that buffer has room
    (a clock enable), so backpressure holds everything in place instead of
    losing results. A job's ``last`` beat must follow the previous one by at
    least ``rows`` cycles (each column bus carries one row per cycle), so back
    to back a job occupies ``max(K, rows)`` cycles. A column bus is a balanced
    OR tree (:func:`hw.arith.tree.balanced`) of the PEs' done-selected sums, so
    its depth grows with ``log2(rows)``, not ``rows``.

    Parameters
    ----------
    rows, cols : int
        Array size: ``A`` has ``rows`` rows, ``B`` has ``cols`` columns.
    a_shape : ShapeLike
        Shape of every ``A`` element, and of every ``B`` element unless ``b_shape`` is given.
    acc_width : int
        Accumulator width. The caller chooses it wide enough for its ``k_max``
        (see :func:`hw.arith.accumulator_width`); longer jobs wrap. Accumulators
        are signed when either operand is.
    result_buffers : int
        ``1`` or ``2`` (above).
    mac : str
        ``"baseline"`` or ``"opt1"`` (:mod:`hw.tpe.mac`). With ``opt1`` every PE
        keeps its sum as a carry-save pair; the result registers (``1``) shift
        pairs up and one adder per column resolves the top row's pair for the
        result beat; the column buses (``2``) carry pairs into a readout
        register per column (``bus_sum_<j>``, ``bus_carry_<j>``), and one adder
        per column resolves the registered pair into the de-skew, so neither the
        bus nor the adder lengthens the PE's path; latency one cycle more.
    b_shape : ShapeLike or None
        Shape of every ``B`` element; ``None``: ``a_shape``.
    """

    def __init__(self, rows: int, cols: int, a_shape, acc_width: int, *, b_shape=None, result_buffers: int = 2,
                 mac: str = "baseline"):
        if rows < 1 or cols < 1:
            raise ValueError(f"array size must be at least 1x1, not {rows}x{cols}")
        if result_buffers not in (1, 2):
            raise ValueError(f"result_buffers must be 1 or 2, not {result_buffers}")
        self.rows = rows
        self.cols = cols
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = self.a_shape if b_shape is None else Shape.cast(b_shape)
        self.acc_width = acc_width
        self.result_buffers = result_buffers
        self.mac = check_mac(mac, SYSTOLIC_MAC)
        super().__init__(engine_signature(operand_beat_layout(rows, cols, self.a_shape, b_shape=self.b_shape),
                                          cols, self.a_shape, acc_width, b_shape=self.b_shape))

    @property
    def latency(self) -> int:
        """Cycles from the last operand beat's transfer to the first result beat's ``valid`` (sink ready)."""
        if self.result_buffers == 1:
            return self.rows + self.cols + 1
        return self.cols + 3 + self._readout_stages

    @property
    def _readout_stages(self) -> int:
        """Registers between a column bus and the de-skew: the opt1 pair's readout register, or none."""
        return 1 if self.mac == "opt1" and self.result_buffers == 2 else 0

    @property
    def job_interval(self) -> int:
        """Fewest operand-stream cycles a job occupies when jobs run back to back (for K small)."""
        if self.result_buffers == 1:
            return 2 * self.rows + self.cols + 1
        return self.rows

    @property
    def mac_units(self) -> int:
        return self.rows * self.cols

    @property
    def job(self) -> dict:
        return {"format": "k_steps", "steps_per_beat": 1, "c_rows": self.rows}

    @property
    def flow_control(self) -> str:
        return "hold_last_until_drained" if self.result_buffers == 1 else "stall"

    def _forwarded(self, i: int, j: int) -> set[str]:
        """What PE ``(i, j)`` passes on: only what a neighbour (or the drain logic) reads."""
        forward = set()
        if j + 1 < self.cols:
            forward |= {"a", "tag"}
        if i + 1 < self.rows:
            forward.add("b")
        if self.result_buffers == 1 and (i, j) == (self.rows - 1, self.cols - 1):
            forward.add("tag")  # its tag tells the drain logic that a job is complete
        return forward

    def _grid(self, m: Module, enable=None):
        """Skew buffers and PEs, wired; returns (skew_a, skew_b, pe)."""
        readout = "shift" if self.result_buffers == 1 else "bus"

        def add(name, component):
            m.submodules[name] = component if enable is None else EnableInserter(enable)(component)
            return component

        a_lane = data.StructLayout({"a": self.a_shape, "tag": StepTag})
        # keep: the tag enters every lane alike; merged, one chain would feed every row's first PE.
        skew_a = add("skew_a", SkewBuffer(self.rows, a_lane, keep=True))
        skew_b = add("skew_b", SkewBuffer(self.cols, self.b_shape))
        pe = [[OutputStationaryPE(self.a_shape, self.acc_width, b_shape=self.b_shape, forward=self._forwarded(i, j),
                                  readout=readout, mac=self.mac)
               for j in range(self.cols)]
              for i in range(self.rows)]
        for i in range(self.rows):
            for j in range(self.cols):
                add(f"pe_{i}_{j}", pe[i][j])
                if j == 0:
                    a_from, tag_from = skew_a.o[i].a, skew_a.o[i].tag
                else:
                    a_from, tag_from = pe[i][j - 1].a_out, pe[i][j - 1].tag_out
                b_from = skew_b.o[j] if i == 0 else pe[i - 1][j].b_out
                m.d.comb += [pe[i][j].a_in.eq(a_from), pe[i][j].tag_in.eq(tag_from), pe[i][j].b_in.eq(b_from)]
        return skew_a, skew_b, pe

    def _feed(self, m: Module, skew_a, skew_b, accept, in_job) -> None:
        ops = self.operands
        for i in range(self.rows):
            m.d.comb += [
                skew_a.i[i].a.eq(ops.p.a[i]),
                skew_a.i[i].tag.valid.eq(accept),
                skew_a.i[i].tag.first.eq(~in_job),
                skew_a.i[i].tag.last.eq(ops.p.last),
            ]
        for j in range(self.cols):
            m.d.comb += skew_b.i[j].eq(ops.p.b[j])

    def elaborate(self, platform):
        m = Module()
        if self.result_buffers == 1:
            self._elaborate_shift_drain(m)
        else:
            self._elaborate_bus_stream(m)
        return m

    def _elaborate_shift_drain(self, m: Module) -> None:
        ops, res = self.operands, self.results
        skew_a, skew_b, pe = self._grid(m)

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
        self._feed(m, skew_a, skew_b, accept, in_job)

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
        held = parts(self.mac)
        for j in range(self.cols):
            m.d.comb += res.p.c[j].eq(resolve([getattr(pe[0][j], f"result{part}") for part in held]))
        for i in range(self.rows):
            for j in range(self.cols):
                m.d.comb += pe[i][j].drain.eq(shift)
                if i + 1 < self.rows:  # the bottom row's result_in stays 0
                    for part in held:
                        m.d.comb += getattr(pe[i][j], f"result{part}_in").eq(getattr(pe[i + 1][j], f"result{part}"))

        with m.If(job_done):
            m.d.sync += draining.eq(1)
        with m.If(shift & final_row):
            m.d.sync += [draining.eq(0), pending.eq(0)]

    def _elaborate_bus_stream(self, m: Module) -> None:
        ops, res = self.operands, self.results
        acc_shape = accumulator_shape(self.acc_width, accumulator_signed(self.a_shape.signed, self.b_shape.signed))
        m.submodules.out = out = RowBuffer(result_beat_layout(self.cols, acc_shape))
        advance = out.space  # registers only: no path from results.ready into the array
        skew_a, skew_b, pe = self._grid(m, enable=advance)

        in_job = Signal()
        accept = Signal()
        gap_ok = Signal()  # a job's last beat may go now without two jobs sharing a column bus
        m.d.comb += [
            ops.ready.eq(advance & (gap_ok | ~ops.p.last)),
            accept.eq(ops.valid & ops.ready),
        ]
        with m.If(accept):
            m.d.sync += in_job.eq(~ops.p.last)
        self._feed(m, skew_a, skew_b, accept, in_job)

        if self.rows > 1:
            # Advancing cycles still to wait before the next last beat: each column
            # bus carries the rows of one job in consecutive cycles.
            gap = Signal(range(self.rows), name="gap")
            m.d.comb += gap_ok.eq(~gap.any())
            with m.If(advance):
                with m.If(accept & ops.p.last):
                    m.d.sync += gap.eq(self.rows - 1)
                with m.Elif(gap.any()):
                    m.d.sync += gap.eq(gap - 1)
        else:
            m.d.comb += gap_ok.eq(1)

        # Column buses: at most one PE of a column is done in any cycle.
        # De-skew lane l carries column cols-1-l, so column j waits cols-j cycles.
        deskew = SkewBuffer(self.cols, acc_shape)
        m.submodules.deskew = EnableInserter(advance)(deskew)
        for j in range(self.cols):
            buses = []
            for n, part in enumerate(parts(self.mac)):
                bus = balanced(or_, [Mux(pe[i][j].done, getattr(pe[i][j], pe[i][j].readout_names[n]), 0)
                                     for i in range(self.rows)])
                if self._readout_stages:  # opt1: the carry-propagate add gets a cycle of its own
                    held = Signal(part_shape(self.mac, acc_shape), name=f"bus{part}_{j}")
                    with m.If(advance):
                        m.d.sync += held.eq(bus)
                    bus = held
                buses.append(bus)
            m.d.comb += deskew.i[self.cols - 1 - j].eq(resolve(buses))
        # Column 0's done flags say which cycles carry a row, and which row is the
        # last; they take the same cycles as column 0's data.
        row_tag = data.StructLayout({"valid": unsigned(1), "last": unsigned(1)})
        tags = DelayLine(row_tag, self.cols + self._readout_stages)
        m.submodules.row_tag = EnableInserter(advance)(tags)
        m.d.comb += [
            tags.i.valid.eq(balanced(or_, [pe[i][0].done for i in range(self.rows)])),
            tags.i.last.eq(pe[self.rows - 1][0].done),
        ]
        aligned = tags.o
        m.d.comb += [
            out.push.eq(advance & aligned.valid),
            out.row.last.eq(aligned.last),
        ]
        for j in range(self.cols):
            m.d.comb += out.row.c[j].eq(deskew.o[self.cols - 1 - j])
        wiring.connect(m, wiring.flipped(res), out.out)

