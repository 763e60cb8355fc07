"""Broadcast grids: the ``matrix2d``, ``cube`` and ``adder_tree`` engines.

All three are one structure: a ``rows x cols`` grid of output PEs, each fed by
``depth`` multipliers whose products a balanced adder tree sums exactly. Every
beat's ``A`` elements are broadcast along whole PE rows and its ``B`` elements
along whole PE columns in the same cycle (no skew), so every PE finishes a job
in the same cycle and one shared step tag serves the whole grid.

* ``matrix2d``: ``BroadcastGrid(rows, cols, 1, ..., tree_register=False)``.
* ``cube``: ``BroadcastGrid(rows, cols, depth, ..., tree_register=True)``.
* ``adder_tree``: ``BroadcastGrid(1, cols, k_tile, ..., tree_register=True)``.
"""

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..arith import accumulator_signed, accumulator_width
from .bitweight import BitWeightMac, DigitEncoder, digits_layout
from .interface import StepTag, accumulator_shape, engine_signature, operand_beat_layout
from .mac import CompressedMac, check_formats, check_mac, part_shape, parts, resolve


def sum_shape(operand_shape: Shape, terms: int, b_shape: Shape | None = None) -> Shape:
    """Exact shape of a sum of ``terms`` products of an ``operand_shape`` and a ``b_shape`` operand.

    The width rule of :func:`hw.arith.accumulator_width`, from the exact product
    range: e.g. one signed 8-bit product needs 16 bits, four need 18; signed when
    either operand is. ``b_shape`` defaults to ``operand_shape``.
    """
    b_shape = operand_shape if b_shape is None else b_shape
    width = accumulator_width(operand_shape.width, operand_shape.signed, terms,
                              b_width=b_shape.width, b_signed=b_shape.signed)
    return signed(width) if accumulator_signed(operand_shape.signed, b_shape.signed) else unsigned(width)


def adder_tree(m: Module, products: list, operand_shape: Shape, name: str, b_shape: Shape | None = None):
    """Balanced binary sum of ``products``, every node as wide as its exact range.

    Neighbours are paired level by level (an odd one out moves up a level
    unchanged), so the tree has ``ceil(log2(len(products)))`` adder levels.
    Node ``<name>_<level>_<n>`` (a combinational signal) holds the sum of the
    products below it in :func:`sum_shape` of their count (products of an
    ``operand_shape`` and a ``b_shape`` operand): assigning the
    one-bit-wider Amaranth sum to it drops only bits that never differ from
    the sign (or are zero), so the sum stays exact. Returns ``(value, shape)``.
    """
    nodes = []
    for index, product in enumerate(products):
        leaf = Signal(sum_shape(operand_shape, 1, b_shape), name=f"{name}_0_{index}")
        m.d.comb += leaf.eq(product)
        nodes.append((leaf, 1))
    level = 0
    while len(nodes) > 1:
        level += 1
        paired = []
        for index in range(0, len(nodes) - 1, 2):
            (left, n_left), (right, n_right) = nodes[index], nodes[index + 1]
            node = Signal(sum_shape(operand_shape, n_left + n_right, b_shape), name=f"{name}_{level}_{index // 2}")
            m.d.comb += node.eq(left + right)
            paired.append((node, n_left + n_right))
        if len(nodes) % 2:
            paired.append(nodes[-1])
        nodes = paired
    value, terms = nodes[0]
    return value, sum_shape(operand_shape, terms, b_shape)



def result_port(m, res, beats: int, capture):
    """The ``results`` port of a result bank that offers ``beats`` result beats per job.

    ``results.valid`` is ``draining`` (a register, see :func:`step_result_bank`),
    ``results.p.last`` marks the final beat, and ``capture`` loads the bank.
    Returns ``(draining, shift, final_row)``: ``shift``, a result beat moves at
    this edge; ``final_row``, the beat on offer is the job's last.
    """
    draining = Signal(name="draining")
    shift = Signal()      # a result beat moves at this edge
    final_row = Signal()  # the beat on offer carries the job's last row
    m.d.comb += [
        res.valid.eq(draining),
        res.p.last.eq(final_row),
        shift.eq(res.valid & res.ready),
    ]
    step_result_bank(m, beats, draining=draining, final_row=final_row, capture=capture, shift=shift)
    return draining, shift, final_row


def step_result_bank(m, rows: int, *, draining, final_row, capture, shift):
    """The drain of a result bank that offers ``rows`` result rows one beat each.

    ``capture`` loads the bank (the row on offer restarts at 0 and ``draining`` rises);
    ``shift`` moves the row on offer on; ``final_row`` is driven high while the last row is
    on offer, and ``draining`` falls when that row leaves. Shared by the broadcast grid and
    the digit-serial grid, whose banks differ only in what makes a capture due.
    """
    if rows > 1:
        row = Signal(range(rows), name="row")  # the row on offer
        m.d.comb += final_row.eq(row == rows - 1)
        with m.If(capture):
            m.d.sync += row.eq(0)
        with m.Elif(shift):
            m.d.sync += row.eq(row + 1)
    else:
        m.d.comb += final_row.eq(1)
    with m.If(capture):
        m.d.sync += draining.eq(1)
    with m.Elif(shift & final_row):
        m.d.sync += draining.eq(0)

class BroadcastPE(wiring.Component):
    """Output PE of a broadcast grid: ``depth`` multipliers, an adder tree, an accumulator, a result register.

    Contract, per clock cycle (all registers change only at the rising edge):

    * ``dot`` is the exact sum of ``a_in[s] * b_in[s]`` over the ``depth``
      steps (a balanced adder tree, :func:`adder_tree`). With
      ``tree_register`` it is a register, loaded at every edge where
      ``advance`` is high (it then belongs to the beat that was in the grid's
      input registers in that cycle); otherwise it is the combinational sum of
      the current ``a_in``/``b_in`` (with ``depth = 1``: the product).
    * ``tag`` is the step tag of the beat whose ``dot`` the PE sees in this
      cycle; the grid keeps it (every PE sees the same one). When ``advance``
      and ``tag.valid``: ``acc <= (0 if tag.first else acc) + dot``, wrapped to
      ``acc_width`` bits (two's complement when the operands are signed); with
      ``tag.last`` also, the same sum is captured: ``result <= sum``.
    * Otherwise, when ``drain``: ``result <= result_in``; the grid shifts the
      result registers up one row per result beat this way. A capture wins
      over a drain: the grid captures only while the result registers are
      free, and at most the final row is leaving at that edge.
    * When ``advance`` is low, ``dot`` and ``acc`` hold (the grid stalls);
      ``result`` still drains.

    Parameters
    ----------
    depth : int
        Multipliers (reduction steps per cycle).
    a_shape : ShapeLike
        Shape of every element of ``a_in``, and of ``b_in`` unless ``b_shape`` is given.
    acc_width : int
        Width of ``acc``, ``result`` and ``result_in``; signed when either operand is.
    tree_register : bool
        Register the adder tree's sum in ``dot`` (one more cycle of latency, a
        multiply-and-add path split in two).
    mac : str
        ``"baseline"`` (above) or ``"opt1"`` (:mod:`hw.tpe.mac`, no tree
        register): the Booth partial products of all ``depth`` products and
        the accumulator's carry-save pair go through one carry-save tree into
        ``acc_sum``/``acc_carry``; ``result``, ``result_in`` become the pairs
        ``result_sum``/``result_carry`` and ``result_sum_in``/``result_carry_in``
        (unsigned ``acc_width`` bits, total modulo ``2**acc_width``), resolved
        by the grid. ``"opt2"`` (:class:`hw.tpe.bitweight.BitWeightMac`,
        submodule ``bitweight``): ``a_in`` holds the encoded digits of the
        ``A`` operands; selectors and one narrow adder tree per bit weight
        replace the multipliers and the tree, and ``tree_register`` registers
        the per-weight sums (``bitweight.bw_sum_<w>``) instead of ``dot``.
        ``opt2`` takes one shape for ``A`` and ``B`` (:func:`hw.tpe.mac.check_formats`).
    b_shape : ShapeLike or None
        Shape of every element of ``b_in``; ``None``: ``a_shape``.
    """

    def __init__(self, depth: int, a_shape, acc_width: int, *, b_shape=None, tree_register: bool,
                 mac: str = "baseline"):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        if check_mac(mac) == "opt1" and tree_register:
            raise ValueError(f"mac {mac!r} has no adder tree to register")
        self._mac = mac
        self._depth = depth
        self._a_shape = Shape.cast(a_shape)
        self._b_shape = self._a_shape if b_shape is None else Shape.cast(b_shape)
        check_formats(mac, self._a_shape, self._b_shape)
        self._acc_shape = accumulator_shape(acc_width, accumulator_signed(self._a_shape.signed,
                                                                          self._b_shape.signed))
        self._tree_register = tree_register
        self._parts = parts(mac)
        value = part_shape(mac, self._acc_shape)
        a_element = digits_layout(self._a_shape) if mac == "opt2" else self._a_shape
        members = {
            "a_in": In(data.ArrayLayout(a_element, depth)),
            "b_in": In(data.ArrayLayout(self._b_shape, depth)),
            "advance": In(1),
            "tag": In(StepTag),
            "drain": In(1),
        }
        for part in self._parts:
            members |= {f"result{part}_in": In(value), f"result{part}": Out(value)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        value = part_shape(self._mac, self._acc_shape)
        acc = [Signal(value, name=f"acc{part}") for part in self._parts]
        # Assigning to acc_width-bit signals wraps modulo 2**acc_width, which is
        # what the golden model does when K exceeds the k_max it was sized for.
        total = [Signal(value, name=f"total{part}") for part in self._parts]
        if self._mac == "baseline":
            products = [self.a_in[s] * self.b_in[s] for s in range(self._depth)]
            tree, tree_shape = adder_tree(m, products, self._a_shape, "tree", self._b_shape)
            if self._tree_register:
                dot = Signal(tree_shape, name="dot")
                with m.If(self.advance):
                    m.d.sync += dot.eq(tree)
            else:
                dot = tree
            m.d.comb += total[0].eq(Mux(self.tag.first, 0, acc[0]) + dot)
        elif self._mac == "opt2":
            m.submodules.bitweight = unit = BitWeightMac(self._depth, self._a_shape, self._acc_shape.width,
                                                         registered=self._tree_register)
            m.d.comb += [unit.digits.eq(self.a_in), unit.b.eq(self.b_in), unit.advance.eq(self.advance),
                         unit.addend.eq(Mux(self.tag.first, 0, acc[0])), total[0].eq(unit.total)]
        else:
            m.submodules.mac = mac = CompressedMac(self._depth, self._a_shape, self._acc_shape.width, 2,
                                                   b_shape=self._b_shape)
            for s in range(self._depth):
                m.d.comb += [mac.a[s].eq(self.a_in[s]), mac.b[s].eq(self.b_in[s])]
            for n, held in enumerate(acc):
                m.d.comb += mac.addends[n].eq(Mux(self.tag.first, 0, held))
            m.d.comb += [total[0].eq(mac.sum), total[1].eq(mac.carry)]
        step = Signal()
        capture = Signal()
        m.d.comb += [
            step.eq(self.advance & self.tag.valid),
            capture.eq(step & self.tag.last),
        ]
        with m.If(step):
            m.d.sync += [held.eq(new) for held, new in zip(acc, total)]
        for part, new in zip(self._parts, total):
            result = getattr(self, f"result{part}")
            with m.If(capture):
                m.d.sync += result.eq(new)
            with m.Elif(self.drain):
                m.d.sync += result.eq(getattr(self, f"result{part}_in"))
        return m


class BroadcastGrid(wiring.Component):
    """``rows x cols`` output PEs of ``depth`` multipliers each, behind the engine interface.

    Beats use the ``k_steps`` format with ``steps = depth`` (see
    :mod:`hw.tpe.interface`): element ``s*rows + i`` of ``a`` is ``A[i, k0+s]``
    and goes to every PE of row ``i``; element ``s*cols + j`` of ``b`` is
    ``B[k0+s, j]`` and goes to every PE of column ``j``. A job is ``C`` of
    ``rows x cols``, any ``K``: ``ceil(K / depth)`` beats, the steps past ``K``
    zero. Results: ``rows`` beats per job, row 0 first, ``last`` on row
    ``rows - 1``.

    Pipeline, per clock cycle (everything in it moves only when ``advance``):

    1. Input registers ``a_reg``, ``b_reg``, ``tag_reg``: an accepted beat is
       stored with its tag (``valid``; ``first`` when the previous accepted
       beat was a ``last`` or none was accepted since reset, kept by
       ``in_job``; ``last``); a cycle without an accepted beat stores a bubble
       (``valid = 0``).
    2. With ``tree_register``: every PE's ``dot`` registers its adder tree's
       sum of the ``depth`` products, ``tag_dot`` the tag beside it.
    3. Every PE adds its sum to its accumulator (restarting on ``first``); on
       the job's ``last`` beat it also captures the sum into its ``result``
       register.

    The result registers form a bank that drains like ``systolic_os`` with one
    buffer: ``results.valid`` (register ``draining``) while a job's results
    wait; a result beat carries ``result_rows`` rows of ``C``:
    ``results.payload.c[r*cols + j]`` is PE ``(r, j)``'s result; each accepted
    result beat shifts every column up ``result_rows`` rows; ``row`` counts the
    beats sent (no counter with one beat per job) and gives ``last``. A job
    leaves in ``rows / result_rows`` beats (:attr:`drain_beats`). The drain
    runs whether or not the pipeline advances.

    Flow control (``stall``), per cycle:

    * ``advance`` is low exactly when a capture is due (the tag at the
      accumulators has ``valid`` and ``last``) and the bank is not free: it
      is draining, and not its final row with ``results.ready`` high (that
      row leaves at the same edge the new results arrive). Then every
      pipeline register holds (input registers, ``in_job``, ``gap``, ``dot``,
      the tags, the accumulators).
    * ``gap`` spaces the ``last`` beats of consecutive jobs at least
      ``drain_beats`` advancing cycles apart: the bank needs ``drain_beats``
      cycles to drain, so with
      the sink ready a job's results have gone exactly when the next job's
      arrive and nothing ever stalls, every job has the same latency, and the
      job interval is ``drain_beats``. Without it a short job's ``last`` beat would
      enter at once and wait in the pipeline, with a longer latency.
    * ``operands.ready = advance & (gap == 0 | ~operands.payload.last)``: it
      depends combinationally on ``results.ready`` and ``operands.payload.last``
      in the same cycle, and on registers.

    Timing (sink always ready): the first result beat is valid :attr:`latency`
    cycles after the cycle in which the job's last operand beat moved (2
    without the tree register, 3 with it); consecutive jobs' ``last`` beats
    move ``max(beats, drain_beats)`` cycles apart at full rate.

    Reset (the ``sync`` domain's synchronous reset) clears every register,
    including a job in flight and results waiting in the bank.

    Parameters
    ----------
    rows, cols, depth : int
        Output PEs ``rows x cols``; ``depth`` multipliers (reduction steps per beat) each.
    a_shape : ShapeLike
        Shape of every ``A`` element, and of every ``B`` element unless ``b_shape`` is given.
    acc_width : int
        Accumulator width (see :func:`hw.arith.accumulator_width`); longer jobs wrap.
        Signed when either operand is.
    tree_register : bool
        Register the adder trees' sums (one pipeline stage more).
    mac : str
        ``"baseline"`` or ``"opt1"`` (:class:`BroadcastPE`; only without the
        tree register): the result registers hold carry-save pairs and one
        adder per column resolves row 0's pair into the result beat.
        ``"opt2"``: one :class:`hw.tpe.bitweight.DigitEncoder` per ``A``
        element of the input registers (``encode_<n>`` for element ``n`` of
        ``a_reg``) at the array edge; its digits go to the whole PE row;
        one shape for ``A`` and ``B`` (:func:`hw.tpe.mac.check_formats`).
    b_shape : ShapeLike or None
        Shape of every ``B`` element; ``None``: ``a_shape``.
    result_rows : int
        Rows of ``C`` per result beat, a divisor of ``rows`` (default 1). A job
        of ``beats`` operand beats keeps the grid busy back to back when
        ``beats >= rows / result_rows``: e.g. an 8x8x8 cube with jobs of
        ``K = 16`` (two beats) needs four rows per result beat.
    """

    def __init__(self, rows: int, cols: int, depth: int, a_shape, acc_width: int, *, b_shape=None,
                 tree_register: bool, mac: str = "baseline", result_rows: int = 1, fanout: int = 0):
        if min(rows, cols, depth) < 1:
            raise ValueError(f"grid size must be at least 1x1x1, not {rows}x{cols}x{depth}")
        if result_rows < 1 or rows % result_rows:
            raise ValueError(f"result_rows must divide rows={rows}, not {result_rows}")
        self.result_rows = result_rows
        if fanout < 0:
            raise ValueError(f"fanout must be 0 (none) or at least 1, not {fanout}")
        self.fanout = fanout
        if acc_width < 1:
            raise ValueError(f"acc_width must be at least 1, not {acc_width}")
        self.rows, self.cols, self.depth = rows, cols, depth
        self.a_shape = Shape.cast(a_shape)
        self.b_shape = self.a_shape if b_shape is None else Shape.cast(b_shape)
        self.acc_width = acc_width
        self.tree_register = bool(tree_register)
        self.mac = check_mac(mac)
        check_formats(mac, self.a_shape, self.b_shape)
        if mac == "opt1" and tree_register:
            raise ValueError(f"mac {mac!r} has no adder tree to register")
        super().__init__(engine_signature(
            operand_beat_layout(rows, cols, self.a_shape, steps=depth, b_shape=self.b_shape),
            cols * result_rows, self.a_shape, acc_width, b_shape=self.b_shape))

    @property
    def latency(self) -> int:
        """Cycles from the last operand beat's transfer to the first result beat's ``valid`` (sink ready).

        One cycle in the input registers, one in the copies with ``fanout``,
        one more in ``dot`` with the tree register, one at the accumulators
        (the capture edge ends it); the result is valid in the next cycle.
        """
        return 2 + self.tree_register + (self.fanout > 0)

    @property
    def drain_beats(self) -> int:
        """Result beats per job: ``rows / result_rows``."""
        return self.rows // self.result_rows

    @property
    def job_interval(self) -> int:
        """Fewest operand-stream cycles a job occupies back to back (sink ready): :attr:`drain_beats`.

        A job of ``beats >= drain_beats`` beats takes ``beats`` cycles; a shorter one
        waits for the previous job's result beats to drain.
        """
        return self.drain_beats

    @property
    def mac_units(self) -> int:
        return self.rows * self.cols * self.depth

    @property
    def job(self) -> dict:
        rows_per_beat = {"result_rows": self.result_rows} if self.result_rows > 1 else {}
        return {"format": "k_steps", "steps_per_beat": self.depth, "c_rows": self.rows} | rows_per_beat

    @property
    def flow_control(self) -> str:
        return "stall"

    def elaborate(self, platform):
        m = Module()
        ops, res = self.operands, self.results
        rows, cols, depth = self.rows, self.cols, self.depth

        pe = [[BroadcastPE(depth, self.a_shape, self.acc_width, b_shape=self.b_shape,
                           tree_register=self.tree_register, mac=self.mac)
               for _ in range(cols)] for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                m.submodules[f"pe_{i}_{j}"] = pe[i][j]

        advance = Signal()  # the pipeline moves at this edge
        accept = Signal()   # an operand beat moves at this edge
        gap_ok = Signal()   # a job's last beat may be accepted now

        # Stage 1: input registers.
        a_reg = Signal.like(ops.p.a, name="a_reg")
        b_reg = Signal.like(ops.p.b, name="b_reg")
        tag_reg = Signal(StepTag, name="tag_reg")
        in_job = Signal(name="in_job")  # the last accepted beat was not a job's last
        m.d.comb += [
            ops.ready.eq(advance & (gap_ok | ~ops.p.last)),
            accept.eq(ops.valid & ops.ready),
        ]
        with m.If(advance):
            # first/last of a bubble are never read (valid = 0); writing them
            # anyway saves a multiplexer per bit.
            m.d.sync += [
                tag_reg.valid.eq(accept),
                tag_reg.first.eq(~in_job),
                tag_reg.last.eq(ops.p.last),
            ]
        with m.If(accept):  # accept implies advance
            m.d.sync += [a_reg.eq(ops.p.a), b_reg.eq(ops.p.b), in_job.eq(~ops.p.last)]

        # opt2 recodes A once per row at the array edge; every PE of the row shares the digits.
        a_edge = a_reg
        if self.mac == "opt2":
            a_edge = []
            for n in range(rows * depth):
                m.submodules[f"encode_{n}"] = encoder = DigitEncoder(self.a_shape)
                m.d.comb += encoder.a.eq(a_reg[n])
                a_edge.append(encoder.digits)

        # Fan-out stage: a copy of every A element per group of `fanout` columns, of every B element per group
        # of `fanout` rows, so no register drives a whole row or column (on an FPGA the broadcast nets, not
        # the MACs, set the clock). The copies carry `keep`: synthesis would merge identical flip-flops.
        tag = tag_reg
        a_copy = lambda i, j, n: a_edge[n]  # noqa: E731  (PE (i, j)'s A element n, B element n below)
        b_copy = lambda i, j, n: b_reg[n]  # noqa: E731
        if self.fanout:
            a_groups, b_groups = -(-cols // self.fanout), -(-rows // self.fanout)
            a_element = digits_layout(self.a_shape) if self.mac == "opt2" else self.a_shape
            a_fan = [[Signal(a_element, name=f"a_fan_{g}_{n}", attrs={"keep": 1} if a_groups > 1 else {})
                      for n in range(rows * depth)] for g in range(a_groups)]
            b_fan = [[Signal(self.b_shape, name=f"b_fan_{g}_{n}", attrs={"keep": 1} if b_groups > 1 else {})
                      for n in range(cols * depth)] for g in range(b_groups)]
            tag = Signal(StepTag, name="tag_fan")
            with m.If(advance):
                m.d.sync += tag.eq(tag_reg)
                m.d.sync += [copy.eq(a_edge[n]) for group in a_fan for n, copy in enumerate(group)]
                m.d.sync += [copy.eq(b_reg[n]) for group in b_fan for n, copy in enumerate(group)]
            a_copy = lambda i, j, n: a_fan[j // self.fanout][n]  # noqa: E731
            b_copy = lambda i, j, n: b_fan[i // self.fanout][n]  # noqa: E731

        # Stage 2 (tree register): the PEs register their sums; the tag follows.
        if self.tree_register:
            tag_dot = Signal(StepTag, name="tag_dot")
            with m.If(advance):
                m.d.sync += tag_dot.eq(tag)
            tag = tag_dot

        # Spacing of last beats: the bank drains one result beat per cycle at best.
        drain_beats, per_beat = self.drain_beats, self.result_rows
        if drain_beats > 1:
            gap = Signal(range(drain_beats), name="gap")  # advancing cycles still to wait
            m.d.comb += gap_ok.eq(~gap.any())
            with m.If(advance):
                with m.If(accept & ops.p.last):
                    m.d.sync += gap.eq(drain_beats - 1)
                with m.Elif(gap.any()):
                    m.d.sync += gap.eq(gap - 1)
        else:
            m.d.comb += gap_ok.eq(1)

        # Stage 3 and the result bank: busy from a capture until its final row left.
        due = Signal()        # the accumulators see a job's last beat
        bank_free = Signal()  # results captured at this edge would overwrite nothing on offer
        capture = Signal()
        draining, shift, final_row = result_port(m, res, drain_beats, capture)
        m.d.comb += [
            due.eq(tag.valid & tag.last),
            bank_free.eq(~draining | (shift & final_row)),
            advance.eq(~due | bank_free),
            capture.eq(due & bank_free),
        ]

        for i in range(rows):
            for j in range(cols):
                p = pe[i][j]
                m.d.comb += [p.advance.eq(advance), p.tag.eq(tag), p.drain.eq(shift)]
                for s in range(depth):
                    m.d.comb += [p.a_in[s].eq(a_copy(i, j, s * rows + i)), p.b_in[s].eq(b_copy(i, j, s * cols + j))]
                if i + per_beat < rows:  # the bottom rows shift in zeros
                    for part in parts(self.mac):
                        m.d.comb += getattr(p, f"result{part}_in").eq(getattr(pe[i + per_beat][j], f"result{part}"))
        for r in range(per_beat):
            for j in range(cols):
                m.d.comb += res.p.c[r * cols + j].eq(
                    resolve([getattr(pe[r][j], f"result{part}") for part in parts(self.mac)]))
        return m
