"""The unified linear engine: one TPE of the family behind A banks, weight tiles and an epilogue.

``LINEAR`` computes ``out[m, :] = epilogue(A[m, :] @ W + bias)`` for ``M`` rows, with the
arithmetic of :mod:`hw.vit.epilogue`. Dataflow (one operator)::

    A rows ─► ABuffer (rows banks) ──┐
    W tiles ─► WeightBuffer (2 halves)┴─► Feeder ─► TPE ─► Epilogue ─► RowWriter ─► DRAM
    residual slices ─► RowReader ─────────────────────────┘

The A rows are loaded once; weight tile ``t + 1`` loads while tile ``t`` computes (unless
``no_prefetch``); within a tile the M-tiles stream back to back through the engine, each a
job of ``ceil(K / steps)`` beats. Every stage walks tiles, M-tiles and rows in the same
order (:mod:`hw.vit.walk`). Reads: A rows, weight tiles, residual slices (three read
clients); writes: output slices (one write client).

The descriptor is checked first (sizes against the buffers, the format table, every tensor
against the address space, :class:`hw.vit.engine.TensorCheck`); see docs/accelerator.md.
"""

from dataclasses import dataclass

from amaranth.hdl import Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from hw.arith.divide import ceil_div_const
from hw.arith.fixed import FixedFormat
from hw.nonlinear.gelu import GeluSpec

from .descriptors import ERROR, FLAGS
from .engine import EngineControl, TensorCheck, desc_field, desc_flag, engine_members
from .epilogue import Epilogue, EpilogueFormat, EpilogueLane
from .feeder import Feeder
from .operands import ABuffer, WeightBuffer
from .slices import log2_exact as _log2
from .rowio import RowReader, RowWriter
from .router import QueueRows, queue_read_signature, redirect_requests
from .slices import SliceGeometry
from .select import equals, pick
from .walk import RowWalk

#: Largest N a LINEAR may have (bounds the tile count's constant division).
N_MAX = 1 << 20
#: Route-table read ports of the linear engine: gathered A rows, scattered residual rows, output rows, scores.
ROUTE_READERS = 4


@dataclass(frozen=True)
class MoeSpec:
    """What the linear engine's ``gather`` and ``scatter`` need of the route table: its ``experts`` queues of
    up to ``tokens`` entries and the gate's ``score`` format."""

    experts: int
    tokens: int
    score: FixedFormat


class LinearEngine(wiring.Component):
    """The ``LINEAR`` engine around ``engine``, a TPE with the ``k_steps`` beat format.

    Parameters: the memory geometry (``addr_width``, ``data_width``), the activation format
    and its container (``act``, ``act_bytes``), weight containers (``w_bytes``), the A
    buffer's capacity (``a_rows`` rows of up to ``a_k`` elements), ``k_max`` (the weight
    tile's depth, at most the engine's), the epilogue's ``formats`` and ``gelu`` spec.
    Extra ports: ``mac_beat`` (an operand beat moved into the TPE this cycle).
    """

    def __init__(self, *, engine, addr_width: int, data_width: int, act: FixedFormat, act_bytes: int,
                 w_bytes: int, a_rows: int, a_k: int, k_max: int, formats: list[EpilogueFormat],
                 gelu: GeluSpec | None, attention: bool = False, moe=None):
        job = engine.job
        if job["format"] != "k_steps":
            raise ValueError(f"the linear engine feeds k_steps engines, not {job['format']}")
        self.engine = engine
        layout = engine.operands.payload.shape()
        self.rows, self.steps = job["c_rows"], job["steps_per_beat"]
        self.cols = layout.members["b"].length // self.steps
        self.operand_layout = layout
        self.a_shape = Shape.cast(layout.members["a"].elem_shape)
        self.b_shape = Shape.cast(layout.members["b"].elem_shape)
        self.addr_width, self.data_width = addr_width, data_width
        self.act, self.act_bytes, self.w_bytes = act, act_bytes, w_bytes
        self.k_max = k_max
        self.formats, self.gelu = list(formats), gelu
        beat_bytes = data_width // 8
        beat_elems = beat_bytes // act_bytes
        if beat_elems < 1:
            raise ValueError(f"a {act_bytes}-byte activation does not fit a {beat_bytes}-byte beat")
        if self.steps <= beat_elems:
            if beat_elems % self.steps:
                raise ValueError(f"{self.steps} reduction steps per beat do not divide the {beat_elems} "
                                 "activations of a memory beat")
            self.beats_per_word = 1
        else:
            if self.steps % beat_elems:
                raise ValueError(f"{self.steps} reduction steps per beat are not a multiple of the {beat_elems} "
                                 "activations of a memory beat")
            self.beats_per_word = self.steps // beat_elems
        self.word_elems = beat_elems * self.beats_per_word
        self.a_rows, self.a_k = a_rows, a_k
        row_beats = -(-a_k * act_bytes // beat_bytes)
        self.pitch = -(-row_beats // self.beats_per_word)
        self.a_words = -(-a_rows // self.rows) * self.pitch
        self.half_words = -(-k_max // self.steps)
        self.w_row_beats = -(-self.cols * w_bytes // beat_bytes)
        self.bias_bits = max([f.bias.width for f in formats if f.bias is not None] + [1])
        if self.bias_bits > 8 * w_bytes:
            raise ValueError(f"biases of {self.bias_bits} bits do not fit {w_bytes}-byte weight containers")
        self.slices = SliceGeometry(cols=self.cols, act_bytes=act_bytes, data_width=data_width)
        # The unified attention's B operands: V's rows (``b_rows``) and K's rows as B^T (``b_transposed``, a
        # second set of banks like A's, one per output column); B codes are then activations.
        self.attention = attention
        self.w_bits = max(f.b.width for f in formats if f.b.width <= 8 * w_bytes) if any(
            f.b.width <= 8 * w_bytes for f in formats) else 8 * w_bytes
        self.b_bank_bits = max(self.w_bits, act.width) if attention else self.w_bits
        if self.b_bank_bits > self.b_bits:
            raise ValueError(f"B codes of {self.b_bank_bits} bits do not fit the engine's {self.b_bits}-bit operands")
        self.bt_words = -(-a_rows // self.cols) * self.pitch if attention else 0
        # The mixture of experts (``moe``: a :class:`MoeSpec`): A rows gathered through an expert's queue, output
        # rows scattered back, weighted by the gate score (hw/vit/router.py).
        self.moe = moe
        members = {"mac_beat": Out(1)}
        if moe is not None:
            members |= {"route": Out(queue_read_signature(moe.experts, moe.tokens, moe.score)).array(ROUTE_READERS),
                        "route_counts": In(data.ArrayLayout(unsigned(bits_for(moe.tokens)), moe.experts)),
                        "route_tokens": In(bits_for(moe.tokens))}
        super().__init__(engine_members(addr_width=addr_width, data_width=data_width, read_clients=4 if attention
                                        else 3, write_clients=1) | members)

    @property
    def a_bits(self) -> int:
        return self.a_shape.width

    @property
    def b_bits(self) -> int:
        return self.b_shape.width

    @property
    def epilogue_latency(self) -> int:
        """The epilogue's stages (:attr:`Epilogue.latency`; the manifest's ``linear.epilogue_latency``)."""
        acc_shape = Shape.cast(self.engine.results.payload.shape().members["c"].elem_shape)
        return EpilogueLane(formats=self.formats, gelu=self.gelu, acc_shape=acc_shape, bias_bits=self.bias_bits,
                            score=self.moe.score if self.moe else None).latency

    def elaborate(self, platform):
        m = Module()
        desc = self.desc
        beat_bytes = self.data_width // 8
        field = lambda name: desc_field(desc, "LINEAR", name)  # noqa: E731
        flag = lambda name: desc_flag(desc, "LINEAR", name)  # noqa: E731
        m_rows, k, n_cols = field("m"), field("k"), field("n")
        # With gather or scatter the rows are a part of an expert's queue: entries ``queue_from`` on, at most
        # a_rows of them; the descriptor's m is the rows of the tensors they index (for the checks).
        if self.moe is not None:
            gather, scatter = flag("gather"), flag("scatter")
            routed = gather | scatter
            expert, queue_from = field("expert"), field("queue_from")
            queued = Signal(bits_for(self.moe.tokens), name="queued")
            m.d.comb += queued.eq(pick(expert, [self.route_counts[e] for e in range(self.moe.experts)]))
            left = Signal(bits_for(self.moe.tokens), name="queue_left")
            m.d.comb += left.eq(Mux(queued > queue_from, queued - queue_from, 0))
            # The run's row count, registered: the descriptor and the route counts hold from start to done and
            # the run begins check_cycles after start, while the queue's arithmetic in front of every row walk's
            # comparison made the residual reader's ready 50 cells deep.
            clamped = Mux(left > self.a_rows, self.a_rows, left)
            count = Signal(bits_for(self.moe.tokens), name="queue_count")
            m.d.sync += count.eq(clamped)
            empty = Signal(name="queue_empty")
            m.d.comb += empty.eq(routed & ~count.any())
            desc_rows = m_rows
            m_rows = Signal(32, name="m_rows_run")
            m.d.sync += m_rows.eq(Mux(routed, clamped, desc_rows))
        else:
            gather = scatter = routed = empty = Const(0, 1)
            desc_rows = m_rows

        a_buf = m.submodules.a_buf = ABuffer(
            rows=self.rows, data_width=self.data_width, addr_width=self.addr_width, act_bytes=self.act_bytes,
            operand_bits=self.a_bits, beats_per_word=self.beats_per_word, words=max(1, self.a_words),
            pitch=self.pitch)
        w_buf = m.submodules.w_buf = WeightBuffer(
            cols=self.cols, steps=self.steps, data_width=self.data_width, addr_width=self.addr_width,
            w_bytes=self.w_bytes, w_bits=self.w_bits, b_bits=self.b_bank_bits, bias_bits=self.bias_bits,
            half_words=self.half_words, row_beats=self.w_row_beats, k_max=self.k_max, rows_mode=self.attention,
            act_bytes=self.act_bytes, act_bits=self.act.width)
        feeder = m.submodules.feeder = Feeder(
            rows=self.rows, cols=self.cols, steps=self.steps, word_elems=self.word_elems, a_bits=self.a_bits,
            b_bits=self.b_bank_bits, operand_layout=self.operand_layout, pitch=self.pitch,
            half_words=self.half_words, a_words=max(1, self.a_words), bt_words=self.bt_words)
        if self.attention:
            bt_buf = m.submodules.bt_buf = ABuffer(
                rows=self.cols, data_width=self.data_width, addr_width=self.addr_width, act_bytes=self.act_bytes,
                operand_bits=self.b_bank_bits, beats_per_word=self.beats_per_word, words=self.bt_words,
                pitch=self.pitch)
            wiring.connect(m, wiring.flipped(self.reads[3]), bt_buf.read)
        m.submodules.tpe = tpe = self.engine
        acc_shape = Shape.cast(tpe.results.payload.shape().members["c"].elem_shape)
        epi = m.submodules.epilogue = Epilogue(cols=self.cols, acc_shape=acc_shape, formats=self.formats,
                                               gelu=self.gelu, bias_bits=self.bias_bits,
                                               score=self.moe.score if self.moe else None)
        reader = m.submodules.residual = RowReader(rows=self.rows, cols=self.cols, act=self.act,
                                                   act_bytes=self.act_bytes, data_width=self.data_width,
                                                   addr_width=self.addr_width)
        writer = m.submodules.writer = RowWriter(rows=self.rows, cols=self.cols, act=self.act,
                                                 act_bytes=self.act_bytes, data_width=self.data_width,
                                                 addr_width=self.addr_width)
        wiring.connect(m, wiring.flipped(self.reads[1]), w_buf.read)
        if self.moe is None:
            wiring.connect(m, wiring.flipped(self.reads[0]), a_buf.read)
            wiring.connect(m, wiring.flipped(self.reads[2]), reader.read)
            wiring.connect(m, wiring.flipped(self.writes[0]), writer.write)

        # ------------------------------------------------------------ check the descriptor
        n_tiles = Signal(32, name="n_tiles")
        m.d.comb += n_tiles.eq(ceil_div_const(Mux(n_cols > N_MAX, N_MAX, n_cols)[:21], self.cols, N_MAX))
        tile_bytes = (k + flag("bias")) * (self.w_row_beats * beat_bytes)
        slice_span = n_tiles * self.slices.slice_bytes
        row_span = Mux(slice_span < beat_bytes, beat_bytes, slice_span)
        b_rows, b_transposed = (flag("b_rows"), flag("b_transposed")) if self.attention else (0, 0)
        a_row_bytes = k << _log2(self.act_bytes)
        # The row bytes in register stages from the held descriptor (TensorCheck reads row_bytes
        # TensorCheck.row_bytes_delay cycles after its sample): n_tiles * tile_bytes in one cycle was 47 cells deep.
        n_tiles_q, tile_bytes_q, row_span_q = (Signal(32, name="n_tiles_q"), Signal(32, name="tile_bytes_q"),
                                               Signal(32, name="row_span_q"))
        m.d.sync += [n_tiles_q.eq(n_tiles), tile_bytes_q.eq(tile_bytes), row_span_q.eq(row_span)]
        b_row_bytes = Signal(32, name="b_row_bytes")
        m.d.sync += b_row_bytes.eq(Mux(b_transposed, a_row_bytes, Mux(b_rows, row_span_q, n_tiles_q * tile_bytes_q)))
        assert TensorCheck.row_bytes_delay >= 2
        # B: weight tiles (one block), V's rows (K rows of the output's span) or K's rows (N rows of K elements).
        b_check = (Mux(b_transposed, n_cols, Mux(b_rows, k, 1)), Mux(b_rows | b_transposed, field("b_stride"), 0),
                   b_row_bytes)
        checks = {}
        for name, base, rows, stride, row_bytes in (
                ("src", field("src"), desc_rows, field("src_stride"), a_row_bytes),
                ("weights", field("weights"), *b_check),
                ("dst", field("dst"), desc_rows, field("dst_stride"), row_span_q),
                ("residual", field("residual"), desc_rows, field("res_stride"), row_span_q)):
            check = checks[name] = TensorCheck(addr_width=self.addr_width, align=beat_bytes)
            m.submodules[f"check_{name}"] = check
            m.d.comb += [check.base.eq(base), check.rows.eq(rows), check.stride.eq(stride),
                         check.row_bytes.eq(row_bytes)]
        known_flags = sum(1 << bit for bit in FLAGS["LINEAR"].values())
        fmt = desc[16:24]
        bias_ok = Signal(name="bias_ok")
        m.d.comb += bias_ok.eq(1)
        for index, f in enumerate(self.formats):
            if f.bias is None:
                with m.If(equals(fmt, index)):
                    m.d.comb += bias_ok.eq(~flag("bias"))
        format_ok = ~(desc[8:16] & (~known_flags & 0xFF)).any() & (fmt < len(self.formats)) & bias_ok
        if self.gelu is None:
            format_ok = format_ok & ~flag("gelu")
        if self.attention:  # one B source; activations carry no bias row
            format_ok = format_ok & ~(flag("b_rows") & flag("b_transposed")) & \
                ~((flag("b_rows") | flag("b_transposed")) & flag("bias"))
        else:
            format_ok = format_ok & ~flag("b_rows") & ~flag("b_transposed")
        if self.moe is None:
            format_ok = format_ok & ~flag("gather") & ~flag("scatter")
        else:  # an expert's queue indexes the descriptor's m rows; every queue fits the A buffer
            format_ok = format_ok & ~(routed & (flag("b_rows") | flag("b_transposed")))
        size_ok = (desc_rows.any() & k.any() & n_cols.any() & (k <= min(self.k_max, self.a_k))
                   & (routed | (desc_rows <= self.a_rows)) & (n_cols <= N_MAX))
        if self.moe is not None:  # the tensors indexed by the queue hold every routed token
            size_ok = size_ok & (~routed | ((expert < self.moe.experts) & (self.route_tokens <= desc_rows)))
        if self.attention:  # B^T holds at most a_rows rows (keys)
            size_ok = size_ok & (~flag("b_transposed") | (n_cols <= self.a_rows))

        control = m.submodules.control = EngineControl(check_cycles=TensorCheck.latency)
        finished = Signal(name="finished")
        for check in checks.values():
            m.d.comb += check.sample.eq(control.check)
        addresses_ok = checks["src"].ok & checks["weights"].ok & checks["dst"].ok & \
            (checks["residual"].ok | ~flag("residual"))
        # The engines' order: a format problem first, then sizes, then addresses.
        with m.If(~format_ok):
            m.d.comb += control.fault.eq(ERROR["BAD_FORMAT"])
        with m.Elif(~size_ok):
            m.d.comb += control.fault.eq(ERROR["BAD_SIZE"])
        with m.Elif(~addresses_ok):
            m.d.comb += control.fault.eq(ERROR["BAD_ADDRESS"])
        go, running = control.go, control.running
        m.d.comb += [control.start.eq(self.start), control.finished.eq(finished),
                     self.busy.eq(control.busy), self.done.eq(control.done), self.error.eq(control.error)]

        # ------------------------------------------------------------ run
        # An expert with an empty queue: nothing to read or write (its weights are not fetched).
        for unit in (a_buf, feeder, reader, writer):
            m.d.comb += unit.start.eq(go & ~empty)
        m.d.comb += [w_buf.start.eq(go & ~b_transposed & ~empty), w_buf.rows.eq(b_rows),
                     w_buf.b_stride.eq(field("b_stride"))]
        b_loaded = w_buf.tiles_done
        if self.attention:
            m.d.comb += [bt_buf.start.eq(go & b_transposed & ~empty), bt_buf.m_rows.eq(n_cols), bt_buf.k.eq(k),
                         bt_buf.src.eq(field("weights")), bt_buf.src_stride.eq(field("b_stride")),
                         feeder.transposed.eq(b_transposed), feeder.bt_rows_loaded.eq(bt_buf.rows_loaded),
                         bt_buf.r_en.eq(feeder.bt_r_en), bt_buf.r_addr.eq(feeder.bt_r_addr)]
            for j in range(self.cols):
                m.d.comb += feeder.bt_r_data[j].eq(bt_buf.r_data[j].as_value())
            b_loaded = Mux(b_transposed, bt_buf.loaded, w_buf.tiles_done)
        m.d.comb += [
            a_buf.m_rows.eq(m_rows), a_buf.k.eq(k), a_buf.src.eq(Mux(gather, 0, field("src"))),
            a_buf.src_stride.eq(Mux(gather, 0, field("src_stride"))),
            w_buf.k.eq(k), w_buf.n_cols.eq(n_cols), w_buf.weights.eq(field("weights")), w_buf.bias.eq(flag("bias")),
            w_buf.no_prefetch.eq(flag("no_prefetch")),
            feeder.m_rows.eq(m_rows), feeder.k.eq(k), feeder.n_cols.eq(n_cols),
            feeder.rows_loaded.eq(a_buf.rows_loaded), feeder.w_ready.eq(w_buf.ready), w_buf.fed.eq(feeder.w_fed),
            a_buf.r_en.eq(feeder.a_r_en), a_buf.r_addr.eq(feeder.a_r_addr),
            w_buf.r_en.eq(feeder.w_r_en), w_buf.r_addr.eq(feeder.w_r_addr),
            reader.m_rows.eq(m_rows), reader.n_cols.eq(n_cols), reader.base.eq(Mux(scatter, 0, field("residual"))),
            reader.stride.eq(Mux(scatter, 0, field("res_stride"))), reader.enable.eq(flag("residual")),
            writer.m_rows.eq(m_rows), writer.n_cols.eq(n_cols), writer.base.eq(Mux(scatter, 0, field("dst"))),
            writer.stride.eq(Mux(scatter, 0, field("dst_stride"))),
            epi.fmt.eq(fmt), epi.gelu.eq(flag("gelu")), epi.residual.eq(flag("residual")),
        ]
        for i in range(self.rows):
            m.d.comb += feeder.a_r_data[i].eq(a_buf.r_data[i].as_value())
        for s in range(self.steps):
            m.d.comb += feeder.w_r_data[s].eq(w_buf.r_data[s].as_value())
        wiring.connect(m, feeder.operands, tpe.operands)
        m.d.comb += self.mac_beat.eq(tpe.operands.valid & tpe.operands.ready)

        if self.moe is not None:
            score_rows = self._queue_walks(m, a_buf, reader, writer, go=go & ~empty, expert=expert,
                                           queue_from=queue_from, count=count,
                                           n_tiles=n_tiles, gather=gather, scatter=scatter, field=field,
                                           use_res=flag("residual"))

        # Results: rows past M are dropped; kept rows enter the epilogue with their bias and residual.
        res = tpe.results
        row_step = Signal(name="row_step")
        walk = RowWalk(m, "result", rows=self.rows, cols=self.cols, m_rows=m_rows, n_cols=n_cols, start=go,
                       step=row_step)
        half = walk.t[0]
        use_res = flag("residual")
        residual_ready = reader.rows.valid | ~use_res
        if self.moe is not None:  # every scattered row takes its score from the queue
            residual_ready = residual_ready & (score_rows.rows.valid | ~scatter)
        enter = res.valid & walk.keep & residual_ready & epi.inp.ready
        m.d.comb += [
            epi.inp.valid.eq(res.valid & walk.keep & residual_ready & running),
            res.ready.eq(running & (~walk.keep | (residual_ready & epi.inp.ready))),
            row_step.eq(res.valid & res.ready),
            reader.rows.ready.eq(enter & use_res & running),
        ]
        if self.moe is not None:
            m.d.comb += [score_rows.rows.ready.eq(enter & scatter & running), epi.weight.eq(scatter),
                         epi.inp.payload.score.eq(score_rows.rows.payload.score),
                         epi.inp.payload.accumulate.eq(score_rows.rows.payload.accumulate)]
        for j in range(self.cols):
            bias = Mux(flag("bias"), Mux(half, w_buf.bias_rows[1][j], w_buf.bias_rows[0][j]), 0)
            m.d.comb += [epi.inp.payload.acc[j].eq(res.payload.c[j]), epi.inp.payload.bias[j].eq(bias),
                         epi.inp.payload.res[j].eq(reader.rows.payload[j])]
        # The tile's last result row has taken its bias: its weight half is free.
        m.d.comb += w_buf.release.eq(Mux(row_step & walk.tile_end, 1 << half, 0))
        # A job's rows leave the engine back to back, one per cycle, while the writer moves one row per
        # slice of beats: a queue of two jobs' rows takes the burst, so the array never waits on the writer.
        row_bits = self.cols * self.act.width
        out_queue = m.submodules.out_queue = SyncFIFOBuffered(width=row_bits, depth=max(4, 2 * self.rows + 2))
        m.d.comb += [out_queue.w_en.eq(epi.out.valid), out_queue.w_data.eq(epi.out.payload.as_value()),
                     epi.out.ready.eq(out_queue.w_rdy),
                     writer.rows.valid.eq(out_queue.r_rdy), writer.rows.payload.as_value().eq(out_queue.r_data),
                     out_queue.r_en.eq(writer.rows.ready)]

        m.d.comb += finished.eq(empty | (a_buf.loaded & b_loaded & feeder.done & walk.done & writer.idle))
        m.d.comb += self.mem_stall.eq(running & (feeder.waiting | writer.waiting |
                                                 (res.valid & walk.keep & use_res & ~reader.rows.valid)))
        return m

    def _queue_walks(self, m, a_buf, reader, writer, *, go, expert, queue_from, count, n_tiles, gather, scatter,
                     field, use_res):
        """The walks over the expert's queue: the gathered A rows' addresses (once), and per weight tile the
        scattered residual rows' and output rows' addresses and the rows' scores (docs/accelerator.md)."""
        moe = self.moe
        walks = {}
        for index, (name, base, stride, repeats) in enumerate((
                ("a_rows", field("src"), field("src_stride"), Mux(gather, 1, 0)),
                ("res_rows", field("residual"), field("res_stride"), Mux(scatter & use_res, n_tiles, 0)),
                ("out_rows", field("dst"), field("dst_stride"), Mux(scatter, n_tiles, 0)),
                ("score_rows", 0, 0, Mux(scatter, n_tiles, 0)))):
            walk = m.submodules[name] = QueueRows(experts=moe.experts, tokens=moe.tokens, score=moe.score,
                                                  addr_width=self.addr_width)
            m.d.comb += [walk.start.eq(go), walk.expert.eq(expert), walk.first.eq(queue_from), walk.count.eq(count),
                         walk.repeats.eq(repeats),
                         walk.base.eq(base), walk.stride.eq(stride)]
            wiring.connect(m, walk.table, wiring.flipped(self.route[index]))
            walks[name] = walk
        redirect_requests(m, a_buf.read, self.reads[0], walks["a_rows"].rows, gather)
        redirect_requests(m, reader.read, self.reads[2], walks["res_rows"].rows, scatter)
        redirect_requests(m, writer.write, self.writes[0], walks["out_rows"].rows, scatter)
        return walks["score_rows"]
