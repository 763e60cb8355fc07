"""Broadcast grids: ``matrix2d``, ``cube`` and ``adder_tree`` engines.

All three are one structure: a ``rows x cols`` grid of output PEs, each fed by
``depth`` multipliers whose products an adder tree reduces. Every beat's ``A``
elements are broadcast along whole PE rows and its ``B`` elements along whole
PE columns in the same cycle (no skew), so every PE finishes a job in the same
cycle. ``matrix2d`` is ``depth = 1``; ``cube`` is ``rows x cols x depth``;
``adder_tree`` is one row of ``cols`` dot-product units of width ``depth``.
"""

from amaranth.hdl import Module, Mux, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .interface import StepTag, accumulator_shape, engine_signature, operand_beat_layout


def reduce_tree(values: list):
    """Balanced binary sum of ``values``; Amaranth widens every level, so the sum is exact."""
    while len(values) > 1:
        paired = [values[n] + values[n + 1] for n in range(0, len(values) - 1, 2)]
        if len(values) % 2:
            paired.append(values[-1])
        values = paired
    return values[0]


class BroadcastPE(wiring.Component):
    """Output PE of a broadcast grid: ``depth`` multipliers, an adder tree, an accumulator.

    Contract, per clock cycle:

    * ``dot`` is the exact sum of ``a_in[s] * b_in[s]`` over the ``depth`` steps;
      with ``tree_register`` it is registered (``dot`` holds last cycle's sum
      while ``advance`` was high), otherwise it is combinational.
    * When ``advance`` and ``tag.valid``: ``acc <= (0 if tag.first else acc) + dot``,
      wrapped to ``acc_width`` bits; with ``tag.last`` also, the same sum is
      written to ``result`` (the grid raises ``tag.last`` only when the result
      registers are free).
    * Otherwise, when ``drain``: ``result <= result_in``: the grid shifts finished
      results up one row per output beat this way. A capture wins over a drain
      (the final row leaves at the same edge a new job is captured).
    * ``tag`` belongs to the stage that feeds ``acc`` (the grid keeps the
      tags: every PE of a broadcast grid sees the same one).

    Parameters
    ----------
    depth : int
        Multipliers (reduction steps per cycle).
    operand_shape : Shape
        Shape of ``a`` and ``b``.
    acc_width : int
        Width of ``acc`` and ``result``; signed when the operands are.
    tree_register : bool
        Register the adder tree's sum (one more cycle of latency, a shorter path).
    """

    def __init__(self, depth: int, operand_shape, acc_width: int, *, tree_register: bool):
        self._depth = depth
        self._operand_shape = Shape.cast(operand_shape)
        self._acc_shape = accumulator_shape(acc_width, self._operand_shape.signed)
        self._tree_register = tree_register
        super().__init__({
            "a_in": In(data.ArrayLayout(self._operand_shape, depth)),
            "b_in": In(data.ArrayLayout(self._operand_shape, depth)),
            "advance": In(1),
            "tag": In(StepTag),
            "drain": In(1),
            "result_in": In(self._acc_shape),
            "result": Out(self._acc_shape),
        })

    def elaborate(self, platform):
        m = Module()
        products = [self.a_in[s] * self.b_in[s] for s in range(self._depth)]
        tree = reduce_tree(products)
        if self._tree_register:
            dot = Signal(tree.shape(), name="dot")
            with m.If(self.advance):
                m.d.sync += dot.eq(tree)
        else:
            dot = tree

        acc = Signal(self._acc_shape, name="acc")
        # Assigning to a narrower signal wraps modulo 2**acc_width, as the golden model does.
        total = Signal(self._acc_shape)
        m.d.comb += total.eq(Mux(self.tag.first, 0, acc) + dot)
        capture = Signal()
        m.d.comb += capture.eq(self.advance & self.tag.valid & self.tag.last)
        with m.If(self.advance & self.tag.valid):
            m.d.sync += acc.eq(total)
        with m.If(capture):
            m.d.sync += self.result.eq(total)
        with m.Elif(self.drain):
            m.d.sync += self.result.eq(self.result_in)
        return m


class BroadcastGrid(wiring.Component):
    """``rows x cols`` output PEs of ``depth`` multipliers each, behind the engine interface.

    Beats use the ``k_steps`` format with ``steps = depth`` (see
    :mod:`hw.tpe.interface`): element ``s*rows + i`` of ``a`` is ``A[i, k0+s]``
    and goes to every PE of row ``i``; element ``s*cols + j`` of ``b`` is
    ``B[k0+s, j]`` and goes to every PE of column ``j``.

    Pipeline: an accepted beat is registered (``a_reg``, ``b_reg``, ``tag_reg``);
    with ``tree_register`` the adder trees' sums are registered next (``dot``,
    ``tag_dot``); then every accumulator adds its sum. On a job's last beat the
    sums go to the PEs' result registers, which drain as ``rows`` result beats,
    row 0 first, by shifting up one row per accepted beat.

    Flow control: a job's ``last`` beat is accepted only ``rows`` or more
    advancing cycles after the previous one's, so that at full rate a job's
    results have left by the time the next job finishes (back to back a job
    occupies ``max(beats, rows)`` cycles). If the sink holds results longer, the
    whole pipeline holds (a clock enable, ``advance``) in any cycle where a
    job would finish while the result registers are still busy, and
    ``operands.ready`` is low then. ``operands.ready`` therefore depends on
    ``results.ready`` and on ``operands.payload.last`` in the same cycle.

    Timing (sink always ready): the first result beat is valid :attr:`latency`
    cycles after the cycle in which the job's last operand beat moved: 2
    without the tree register, 3 with it.

    Parameters
    ----------
    rows, cols, depth : int
        Output PEs ``rows x cols``; ``depth`` multipliers each.
    operand_shape : ShapeLike
        Shape of every ``A`` and ``B`` element.
    acc_width : int
        Accumulator width (see :func:`hw.arith.accumulator_width`); longer jobs wrap.
    tree_register : bool
        Register the adder trees' sums.
    """

    def __init__(self, rows: int, cols: int, depth: int, operand_shape, acc_width: int, *,
                 tree_register: bool):
        if min(rows, cols, depth) < 1:
            raise ValueError(f"grid size must be at least 1x1x1, not {rows}x{cols}x{depth}")
        self.rows, self.cols, self.depth = rows, cols, depth
        self.operand_shape = Shape.cast(operand_shape)
        self.acc_width = acc_width
        self.tree_register = tree_register
        super().__init__(engine_signature(operand_beat_layout(rows, cols, self.operand_shape, steps=depth),
                                          cols, self.operand_shape, acc_width))

    @property
    def latency(self) -> int:
        """Cycles from the last operand beat's transfer to the first result beat's ``valid`` (sink ready)."""
        return 3 if self.tree_register else 2

    @property
    def job_interval(self) -> int:
        """Fewest operand-stream cycles a job occupies back to back (sink ready)."""
        return self.rows

    @property
    def mac_units(self) -> int:
        return self.rows * self.cols * self.depth

    @property
    def job(self) -> dict:
        return {"format": "k_steps", "steps_per_beat": self.depth, "c_rows": self.rows}

    @property
    def flow_control(self) -> str:
        return "stall"

    def elaborate(self, platform):
        m = Module()
        ops, res = self.operands, self.results
        rows, cols, depth = self.rows, self.cols, self.depth

        pe = [[BroadcastPE(depth, self.operand_shape, self.acc_width, tree_register=self.tree_register)
               for _ in range(cols)] for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pe[i][j]

        advance = Signal()
        accept = Signal()
        in_job = Signal()  # the previous accepted beat was not a job's last
        gap_ok = Signal()

        a_reg = Signal.like(ops.p.a, name="a_reg")
        b_reg = Signal.like(ops.p.b, name="b_reg")
        tag_reg = Signal(StepTag, name="tag_reg")
        m.d.comb += [
            ops.ready.eq(advance & (gap_ok | ~ops.p.last)),
            accept.eq(ops.valid & ops.ready),
        ]
        with m.If(advance):
            m.d.sync += [
                tag_reg.valid.eq(accept),
                tag_reg.first.eq(~in_job),
                tag_reg.last.eq(ops.p.last),
            ]
            with m.If(accept):
                m.d.sync += [a_reg.eq(ops.p.a), b_reg.eq(ops.p.b), in_job.eq(~ops.p.last)]
        if self.tree_register:
            tag = Signal(StepTag, name="tag_dot")
            with m.If(advance):
                m.d.sync += tag.eq(tag_reg)
        else:
            tag = tag_reg

        if rows > 1:
            # Advancing cycles still to wait before the next last beat.
            gap = Signal(range(rows), name="gap")
            m.d.comb += gap_ok.eq(~gap.any())
            with m.If(advance):
                with m.If(accept & ops.p.last):
                    m.d.sync += gap.eq(rows - 1)
                with m.Elif(gap.any()):
                    m.d.sync += gap.eq(gap - 1)
        else:
            m.d.comb += gap_ok.eq(1)

        # Result registers: busy from a capture until the final row has left.
        draining = Signal()
        shift = Signal()
        final_row = Signal()
        m.d.comb += [
            res.valid.eq(draining),
            res.p.last.eq(final_row),
            shift.eq(res.valid & res.ready),
            # Hold everything while a job would finish into busy result registers.
            advance.eq(~(tag.valid & tag.last & draining & ~(shift & final_row))),
        ]
        capture = Signal()
        m.d.comb += capture.eq(advance & tag.valid & tag.last)
        if rows > 1:
            row = Signal(range(rows), name="row")
            m.d.comb += final_row.eq(row == rows - 1)
            with m.If(shift):
                m.d.sync += row.eq(row + 1)
            with m.If(capture):
                m.d.sync += row.eq(0)
        else:
            m.d.comb += final_row.eq(1)
        with m.If(shift & final_row):
            m.d.sync += draining.eq(0)
        with m.If(capture):
            m.d.sync += draining.eq(1)

        for i in range(rows):
            for j in range(cols):
                p = pe[i][j]
                m.d.comb += [
                    p.advance.eq(advance),
                    p.tag.eq(tag),
                    p.drain.eq(shift),
                ]
                for s in range(depth):
                    m.d.comb += [p.a_in[s].eq(a_reg[s * rows + i]), p.b_in[s].eq(b_reg[s * cols + j])]
                if i + 1 < rows:  # the bottom row's result_in stays 0
                    m.d.comb += p.result_in.eq(pe[i + 1][j].result)
        for j in range(cols):
            m.d.comb += res.p.c[j].eq(pe[0][j].result)
        return m
