"""The linear engine's feeder: operand beats for the TPE from the A banks and the weight tiles.

Walks tiles (``t``, weight half ``t % 2``), then M-tiles, then reduction steps ``k0`` in
groups of the engine's ``steps`` per beat, and offers one ``k_steps`` beat per cycle
(``hw/tpe/interface.py``): ``a[s*rows + i] = A[row0 + i, k0 + s]``,
``b[s*cols + j] = W[k0 + s, t*cols + j]``, zeros for ``k0 + s >= K`` (the source's duty),
``last`` on a job's final beat. A beat of an M-tile waits until the tile's rows are loaded
(``rows_loaded``) and a tile's beats until its half is ``ready``; ``w_fed`` pulses ``1 << half``
when a tile's last beat is read (the half then waits for its next tile, not the old one).

Timing: a three-stage pipeline (address; the memories' registered data; the beat, registered)
that advances when its output is empty or taken, so beats flow at one per cycle while the
engine takes them and stall in place when it does not.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .slices import log2_exact as _log2
from .select import pick


class Feeder(wiring.Component):
    """See the module docstring. ``operand_layout`` is the engine's beat layout."""

    def __init__(self, *, rows: int, cols: int, steps: int, word_elems: int, a_bits: int, b_bits: int,
                 operand_layout, pitch: int, half_words: int, a_words: int, bt_words: int = 0):
        if word_elems % steps:
            raise ValueError(f"{steps} steps per beat do not divide the {word_elems} elements of an A word")
        self.rows, self.cols, self.steps, self.word_elems = rows, cols, steps, word_elems
        self.a_bits, self.b_bits, self.pitch, self.half_words = a_bits, b_bits, pitch, half_words
        self.operand_layout = operand_layout
        self.bt_words = bt_words
        transposed = {} if not bt_words else {
            "transposed": In(1), "bt_rows_loaded": In(32),
            "bt_r_en": Out(1), "bt_r_addr": Out(range(max(2, bt_words))),
            "bt_r_data": In(word_elems * b_bits).array(cols)}
        super().__init__(transposed | {
            "start": In(1), "m_rows": In(32), "k": In(32), "n_cols": In(32),
            "rows_loaded": In(32), "w_ready": In(2),
            "a_r_en": Out(1), "a_r_addr": Out(range(max(2, a_words))),
            "a_r_data": In(word_elems * a_bits).array(rows),
            "w_fed": Out(2), "w_r_en": Out(1), "w_r_addr": Out(range(2 * half_words)),
            "w_r_data": In(cols * b_bits).array(steps),
            "operands": Out(stream.Signature(operand_layout)),
            "done": Out(1), "waiting": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols, steps = self.rows, self.cols, self.steps
        ops = self.operands
        k, m_rows, n_cols = Signal(32, name="k_q"), Signal(32, name="m_rows_q"), Signal(32, name="n_cols_q")
        k0 = Signal(32, name="k0")
        row0 = Signal(32, name="row0")
        col0 = Signal(32, name="col0")
        a_base = Signal(self.a_r_addr.shape(), name="a_base")
        bt_base = Signal(range(max(2, self.bt_words + self.pitch)), name="bt_base")  # B^T words of this tile
        half = Signal(name="half")
        issuing = Signal(name="issuing")  # beats remain to issue
        with m.If(self.start):
            m.d.sync += [k.eq(self.k), m_rows.eq(self.m_rows), n_cols.eq(self.n_cols), k0.eq(0), row0.eq(0),
                         col0.eq(0), a_base.eq(0), bt_base.eq(0), half.eq(0), issuing.eq(1)]

        # Stage B: metadata of the beat whose memory words arrive this cycle.
        b_valid = Signal(name="b_valid")
        b_k0 = Signal(32, name="b_k0")
        b_last = Signal(name="b_last")
        # Which steps of the beat lie below K, decided at issue: keeps a 32-bit compare out of the beat's path.
        b_live = Signal(steps, name="b_live")
        advance = Signal(name="advance")
        # Stage C: the beat itself, registered, so that the TPE's first multipliers start from a register and
        # not from the memories' lane selection (which put its accumulators 9 cells deeper than alone).
        c_valid = Signal(name="c_valid")
        c_beat = Signal(self.operand_layout, name="c_beat")
        take = Signal(name="take")
        m.d.comb += [take.eq(~c_valid | ops.ready), advance.eq(~b_valid | take)]

        rows_in = (self.rows_loaded >= row0 + rows) | (self.rows_loaded >= m_rows)
        b_in = pick(half, [self.w_ready[0], self.w_ready[1]])
        if self.bt_words:
            # B^T: the tile's columns are rows of a tensor loaded once, like A's rows.
            bt_in = (self.bt_rows_loaded >= col0 + cols) | (self.bt_rows_loaded >= n_cols)
            b_in = Mux(self.transposed, bt_in, b_in)
        can_issue = issuing & b_in & rows_in & ~self.start
        last_step = k0 + steps >= k
        m.d.comb += [
            self.a_r_en.eq(advance), self.w_r_en.eq(advance),
            self.a_r_addr.eq(a_base + (k0 >> _log2(self.word_elems))),
            self.w_r_addr.eq(Mux(half, self.half_words, 0) + (k0 >> _log2(steps))),
            self.waiting.eq(issuing & ~can_issue & ~self.start),
        ]
        with m.If(advance):
            m.d.sync += [b_valid.eq(can_issue), b_k0.eq(k0), b_last.eq(last_step),
                         b_live.eq(Cat(*[k0 + s < k for s in range(steps)]))]
            with m.If(can_issue):
                with m.If(~last_step):
                    m.d.sync += k0.eq(k0 + steps)
                with m.Else():
                    m.d.sync += k0.eq(0)
                    with m.If(row0 + rows < m_rows):
                        m.d.sync += [row0.eq(row0 + rows), a_base.eq(a_base + self.pitch)]
                    with m.Else():
                        m.d.sync += [row0.eq(0), a_base.eq(0), half.eq(~half), col0.eq(col0 + cols),
                                     bt_base.eq(bt_base + self.pitch)]
                        m.d.comb += self.w_fed.eq(Mux(half, 0b10, 0b01))
                        with m.If(col0 + cols >= n_cols):
                            m.d.sync += issuing.eq(0)
        with m.If(self.start):
            m.d.sync += b_valid.eq(0)

        # The beat: lanes of the A words and the weight rows; zeros past K.
        group = b_k0[:_log2(self.word_elems)] if self.word_elems > 1 else Const(0, 1)
        a_shape = Shape.cast(self.operand_layout.members["a"].elem_shape)
        b_shape = Shape.cast(self.operand_layout.members["b"].elem_shape)
        beat = Signal(self.operand_layout, name="beat")  # stage B's beat, into stage C
        with m.If(take):
            m.d.sync += [c_valid.eq(b_valid), c_beat.eq(beat)]
        with m.If(self.start):
            m.d.sync += c_valid.eq(0)
        m.d.comb += [ops.valid.eq(c_valid), ops.payload.eq(c_beat)]
        for s in range(steps):
            live = b_live[s]
            for i in range(rows):
                word = self.a_r_data[i]
                lanes = [word[e * self.a_bits:(e + 1) * self.a_bits] for e in range(self.word_elems)]
                options = lanes[s::steps]  # the lane of step s in each group
                value = pick(group >> _log2(steps) if steps > 1 else group, options)
                code = value.as_signed() if a_shape.signed else value.as_unsigned()
                m.d.comb += beat.a[s * rows + i].eq(Mux(live, code, 0))
            for j in range(cols):
                value = self.w_r_data[s][j * self.b_bits:(j + 1) * self.b_bits]
                if self.bt_words:
                    word = self.bt_r_data[j]
                    lanes = [word[e * self.b_bits:(e + 1) * self.b_bits] for e in range(self.word_elems)]
                    transposed = pick(group >> _log2(steps) if steps > 1 else group, lanes[s::steps])
                    value = Mux(self.transposed, transposed, value)
                code = value.as_signed() if b_shape.signed else value.as_unsigned()
                m.d.comb += beat.b[s * cols + j].eq(Mux(live, code, 0))
        m.d.comb += [beat.last.eq(b_last), self.done.eq(~issuing & ~b_valid & ~c_valid)]
        if self.bt_words:
            m.d.comb += [self.bt_r_en.eq(advance), self.bt_r_addr.eq(bt_base + (k0 >> _log2(self.word_elems)))]
        return m
