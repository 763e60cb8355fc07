"""The dedicated attention engine: opcode ``ATTENTION``, one head per descriptor, Edge-MoE's reordered schedule.

One descriptor computes one head of multi-head self-attention from the rows of the qkv tensor:
``out = softmax(convert(scale(Q K^T))) V`` for ``T`` tokens of ``hd`` features, with the
golden's arithmetic (:func:`sim.golden.moevit.fixed.attention`): raw scores summed exactly and
fitted to the accumulator, times the scale code (``1/sqrt(hd)`` as a code of the scale format),
requantised to activations, converted to the softmax unit's input format, the softmax of each
row (:class:`hw.nonlinear.softmax.Softmax`), probabilities times ``V`` summed exactly, fitted to
the accumulator, requantised to activations.

Dataflow (``p`` slots of ``lanes`` multipliers: ``macs = p * lanes``)::

    Q rows ─► chunks ─► query store (p slots) ──┐
    K rows ─► chunks ───────────────────────────┴─► p x lanes MACs ─► score units ─► score rows (2 per slot)
                                                       ▲                                   │ complete rows, in order
    V rows ─► chunks ──────────────────────────────────┤                                   ▼
                                  probability banks (p) ┘◄────────────────────────── softmax unit
                                  accumulator rows (2 per slot) ─► fit, requantise ─► output rows ─► DRAM

The two matmuls follow Edge-MoE's reordered order (:mod:`hw.vit.skew`): ``p`` query rows on
chip, one key (value) row per step, multiplied with every held query (probability) in
``ceil(hd / lanes)`` chunks of ``lanes`` features; query row ``base + i`` is read and stored
when the key index is ``i``. A score row is complete when its query has met every key; the
rows complete in row order, each is kept (in key order) until it has gone through the
softmax unit, whose output rows fill the probability banks (row ``r`` in bank ``r % p``).
``A V`` runs after the last probability row, in the same order over the value rows, each slot
accumulating its output row (``hd`` exact sums) in an accumulator row; complete output rows
are written to the heads tensor in row order. A slot starts a row only when the row its
buffer held two rows before has been read out (``rows_fed`` / ``rows_drained``), so the
stream waits for the softmax or the writer instead of overwriting.

Reads: ``reads[0]`` query rows (``T`` requests, in row order), ``reads[1]`` key rows and
``reads[2]`` value rows (one request per step, the same order); writes: ``writes[0]`` output
rows (``T`` requests). The value requests go out from the start, so value rows wait in the
port's receive queue when ``A V`` begins.

Errors (before any memory access; the first that applies): ``BAD_FORMAT`` (a flag or ``fmt``
set), ``BAD_SIZE`` (``tokens`` zero or above ``t_max``, ``head_dim`` zero or above
``hd_max``), ``BAD_ADDRESS`` (:class:`hw.vit.engine.TensorCheck` of q, k, v and the output:
``tokens`` rows of ``head_dim * act_bytes`` bytes).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import Out
from amaranth.utils import bits_for

from hw.arith.divide import ceil_div_const
from hw.arith.fixed import FixedFormat, fit_hw, requantize_hw
from hw.nonlinear.softmax import Softmax, SoftmaxSpec

from .descriptors import ERROR
from .engine import EngineControl, RowRequests, TensorCheck, check_widths, desc_field, engine_members
from .epilogue import EpilogueFormat
from .chunks import Rechunk, unpack_beat
from .select import equals, pick
from .skew import SkewWalk


def _magnitude(fmt: FixedFormat) -> int:
    return max(-fmt.min_code, fmt.max_code)


def _exact_bits(bound: int) -> int:
    """Bits of a signed value of magnitude at most ``bound``."""
    return bound.bit_length() + 1


def tree_sum(values: list):
    """The sum of ``values`` as a balanced tree of adders (the widths grow one bit per level)."""
    while len(values) > 1:
        values = [a + b for a, b in zip(values[0::2], values[1::2])] + ([values[-1]] if len(values) % 2 else [])
    return values[0]


def _operand_shape(fmt: FixedFormat):
    return signed(fmt.width if fmt.signed else fmt.width + 1)


def _read_out(m, p: int, memories, row_words: int, *, go, advance, issue, final, position, rows, slot, parity,
              taken) -> list:
    """A read-out over the slots' rows (two rows of ``row_words`` words per slot memory, in ``memories``): while
    ``advance``, the word at ``position`` of the slot's current row is read and ``taken = (valid, last, slot)``
    registers whether it was issued, whether it is the row's ``final`` word and its slot; after an issued word
    the next ``position``, or after the row's final one the next row: ``rows`` counts it, ``slot`` goes round
    the ``p`` slots and ``parity`` (which of a slot's two rows) flips when it wraps. ``go`` restarts it.
    Returns the memories' read data (the word one cycle after its address)."""
    reads = []
    for rows_memory in memories:
        read = rows_memory.read_port()
        m.d.comb += [read.en.eq(advance), read.addr.eq(parity * row_words + position)]
        reads.append(read.data)
    valid, last, held_slot = taken
    with m.If(advance):
        m.d.sync += [valid.eq(issue), last.eq(final), held_slot.eq(slot)]
    with m.If(go):
        m.d.sync += [slot.eq(0), parity.eq(0), position.eq(0), rows.eq(0)]
    with m.Elif(advance & issue):
        with m.If(final):
            wraps = equals(slot, p - 1) if p > 1 else Const(1, 1)
            m.d.sync += [position.eq(0), rows.eq(rows + 1), slot.eq(Mux(wraps, 0, slot + 1)),
                         parity.eq(parity ^ wraps)]
        with m.Else():
            m.d.sync += position.eq(position + 1)
    return reads


class AttentionEngine(wiring.Component):
    """The ``ATTENTION`` engine (see the module docstring).

    Parameters: the memory geometry (``addr_width``, ``data_width``, ``act_bytes``), ``p`` query
    slots, ``macs`` multipliers (``lanes = macs / p`` per slot, a power of two), the largest
    head (``t_max`` tokens, ``hd_max`` features), the formats of ``Q K^T`` (``qk``: a, b = the
    activations, the accumulator, out = the activations the scaled scores are requantised to)
    and of ``A V`` (``av``: a = the softmax unit's output), the ``scale`` code's format and the
    softmax unit's ``softmax`` spec. Extra port: ``mac_beat`` (a chunk entered the MACs).
    """

    def __init__(self, *, addr_width: int, data_width: int, act_bytes: int, p: int, macs: int, t_max: int,
                 hd_max: int, qk: EpilogueFormat, av: EpilogueFormat, scale: FixedFormat, softmax: SoftmaxSpec):
        self._log_bytes, self._log_act = check_widths(addr_width=addr_width, data_width=data_width,
                                                      act_bytes=act_bytes)
        act = qk.a
        if act.width > 8 * act_bytes:
            raise ValueError(f"act {act.describe()} ({act.width} bits) does not fit act_bytes = {act_bytes}")
        for what, fmt in (("qk.b", qk.b), ("qk.out", qk.out), ("av.b", av.b), ("av.out", av.out)):
            if fmt != act:
                raise ValueError(f"{what} must be the activation format {act.describe()}, not {fmt.describe()}")
        if av.a != softmax.output:
            raise ValueError(f"av.a must be the softmax output {softmax.output.describe()}, not {av.a.describe()}")
        for what, fmt in (("qk", qk), ("av", av)):
            if fmt.product_shift < 0:
                raise ValueError(f"{what}: the accumulator keeps {fmt.acc.frac} fraction bits, fewer than a "
                                 f"product's {fmt.a.frac + fmt.b.frac}; the engine sums exact products")
        if p < 1 or macs < p or macs % p:
            raise ValueError(f"macs must be a positive multiple of p = {p}, not {macs}")
        lanes = macs // p
        if lanes & (lanes - 1):
            raise ValueError(f"macs / p = {lanes} lanes per slot must be a power of two")
        if t_max < 1 or hd_max < 1:
            raise ValueError(f"t_max and hd_max must be at least 1, not {t_max} and {hd_max}")
        if softmax.n_max < t_max:
            raise ValueError(f"the softmax unit takes rows of up to {softmax.n_max}, fewer than t_max = {t_max}")
        self.addr_width, self.data_width, self.act_bytes = addr_width, data_width, act_bytes
        self.act, self.qk, self.av, self.scale, self.softmax = act, qk, av, scale, softmax
        self.p, self.macs, self.lanes, self.t_max, self.hd_max = p, macs, lanes, t_max, hd_max
        self.beat_elems = data_width // 8 // act_bytes
        self.chunks_max = -(-hd_max // lanes)  # chunks of a row
        self.words_max = -(-t_max // softmax.lanes)  # softmax beats of a score row
        self.bank_rows = -(-t_max // p)  # probability rows per bank
        self.softmax_unit = Softmax(softmax)  # elaborated inside the engine; its latency is part of the timing
        self.a_shape = signed(max(_operand_shape(act).width, _operand_shape(softmax.output).width))
        self.qk_bits = _exact_bits(_magnitude(act) ** 2 * hd_max)
        self.av_bits = _exact_bits(_magnitude(softmax.output) * _magnitude(act) * t_max)
        super().__init__(engine_members(addr_width=addr_width, data_width=data_width, read_clients=3,
                                        write_clients=1) | {"mac_beat": Out(1)})

    @property
    def check_cycles(self) -> int:
        return TensorCheck.latency

    # ------------------------------------------------------------------ hardware
    def elaborate(self, platform):
        m = Module()
        self._m = m

        def field(name):
            return desc_field(self.desc, "ATTENTION", name)

        control = m.submodules.control = EngineControl(check_cycles=TensorCheck.latency)
        m.d.comb += [control.start.eq(self.start), self.busy.eq(control.busy), self.done.eq(control.done),
                     self.error.eq(control.error)]
        self._control = control
        run = self._checks(m, control, field)

        # ---- reads: query rows in row order, key and value rows in the reordered order
        queries = m.submodules.query_requests = RowRequests(addr_width=self.addr_width)
        m.d.comb += [queries.load.eq(control.go), queries.base.eq(field("q")), queries.stride.eq(field("src_stride")),
                     queries.count.eq(run["tokens"]), queries.beats.eq(run["row_beats"])]
        wiring.connect(m, queries.req, wiring.flipped(self.reads[0].req))
        key_walk = self._step_requests(m, "key", self.reads[1], field("k"), field("src_stride"), run)
        value_walk = self._step_requests(m, "value", self.reads[2], field("v"), field("src_stride"), run)
        chunks = {name: self._chunks(m, name, self.reads[i], run["head_dim"])
                  for i, name in enumerate(("query", "key", "value"))}

        # ---- the MAC stage's walk and phases: Q K^T, wait for the softmax, A V
        qk_run, sm_wait, av_run, av_phase = (Signal(name="qk_run"), Signal(name="softmax_wait"),
                                             Signal(name="av_run"), Signal(name="av_phase"))
        rows_probed = Signal(range(self.t_max + 1), name="rows_probed")
        av_begin = Signal(name="av_begin")
        m.d.comb += av_begin.eq(sm_wait & (rows_probed == run["tokens"]))
        take = Signal(name="take")
        src_last = Signal(name="src_last")
        walk = SkewWalk(m, "mac", p=self.p, t_max=self.t_max, tokens=run["tokens"], start=control.go | av_begin,
                        step=take & src_last, word=self.softmax.lanes)
        with m.If(control.go):
            m.d.sync += [qk_run.eq(1), sm_wait.eq(0), av_run.eq(0), av_phase.eq(0)]
        with m.If(qk_run & walk.end):
            m.d.sync += [qk_run.eq(0), sm_wait.eq(1)]
        with m.If(av_begin):
            m.d.sync += [sm_wait.eq(0), av_run.eq(1), av_phase.eq(1)]
        with m.If(av_run & walk.end):
            m.d.sync += av_run.eq(0)

        rows_fed = Signal(range(self.t_max + 1), name="rows_fed")
        rows_drained = Signal(range(self.t_max + 1), name="rows_drained")
        slots = walk.slots()
        loading = Signal(name="loading")
        room = Signal(name="room")
        src_valid = Signal(name="src_valid")
        walking = Signal(name="walking")
        q_chunk, k_chunk, v_chunk = chunks["query"], chunks["key"], chunks["value"]
        m.d.comb += [
            loading.eq(~av_phase & Cat(*slots["load"]).any()),
            # slot i's new row (from key i of block b on) reuses the buffer of row (b - 2) p + i, which must
            # have been read out: rows_read >= (b - 2) p + min(key, p - 1) + 1 (always true in blocks 0 and 1)
            room.eq(Mux(av_phase, rows_drained, rows_fed) + 2 * self.p
                    >= walk.base + Mux(walk.key < self.p, walk.key, self.p - 1) + 1),
            src_valid.eq(Mux(av_phase, v_chunk.valid, k_chunk.valid)),
            src_last.eq(Mux(av_phase, v_chunk.payload.last, k_chunk.payload.last)),
            walking.eq((qk_run | av_run) & ~walk.end),
            take.eq(walking & room & src_valid & (~loading | q_chunk.valid)),
            k_chunk.ready.eq(take & ~av_phase), v_chunk.ready.eq(take & av_phase), q_chunk.ready.eq(take & loading),
            self.mac_beat.eq(take),
        ]
        chunk = Signal(range(max(2, self.chunks_max)), name="chunk")
        with m.If(control.go | av_begin):
            m.d.sync += chunk.eq(0)
        with m.Elif(take):
            m.d.sync += chunk.eq(Mux(src_last, 0, chunk + 1))

        stage1 = self._stage1(m, take, walk, slots, chunk, src_last, av_phase, q_chunk, k_chunk, v_chunk)
        rows_scored, av_rows_done = self._macs(m, stage1, av_phase, run)
        self._feeder(m, control, rows_scored, rows_fed, rows_probed, run)
        rows_out = self._writer(m, control, av_rows_done, rows_drained, run, field)

        # ---- completion and stalls
        writes = self.writes[0]
        outstanding = Signal(range(2 * self.t_max + 2), name="outstanding_writes")
        issued = writes.req.valid & writes.req.ready
        m.d.sync += outstanding.eq(outstanding + issued - writes.acked)
        m.d.comb += control.finished.eq(av_phase & ~av_run & (rows_out == run["tokens"]) & ~outstanding.any()
                                        & ~self._out_requests.pending & ~queries.pending & key_walk.end
                                        & value_walk.end)
        waiting = walking & room & ~(src_valid & (~loading | q_chunk.valid))
        m.d.comb += self.mem_stall.eq(control.running & (waiting | (writes.data.valid & ~writes.data.ready)))
        return m

    # ------------------------------------------------------------------ descriptor checks
    def _checks(self, m, control, field) -> dict:
        tokens, head_dim = field("tokens"), field("head_dim")
        address_ok = []
        for name, (base, stride) in {"q": ("q", "src_stride"), "k": ("k", "src_stride"), "v": ("v", "src_stride"),
                                     "out": ("dst", "dst_stride")}.items():
            check = m.submodules[f"check_{name}"] = TensorCheck(addr_width=self.addr_width,
                                                                align=self.data_width // 8)
            m.d.comb += [check.sample.eq(control.check), check.base.eq(field(base)), check.rows.eq(tokens),
                         check.stride.eq(field(stride)), check.row_bytes.eq(head_dim << self._log_act)]
            address_ok.append(check.ok)
        format_bad, size_bad = Signal(name="format_bad"), Signal(name="size_bad")
        t_bits, hd_bits = bits_for(self.t_max), bits_for(self.hd_max)
        run = {"tokens": Signal(range(self.t_max + 1), name="tokens"),
               "head_dim": Signal(range(self.hd_max + 1), name="head_dim"),
               "row_beats": Signal(16, name="row_beats"),
               "chunks": Signal(range(self.chunks_max + 1), name="chunks"),
               "words": Signal(range(self.words_max + 1), name="words"),
               "tail": Signal(range(self.softmax.lanes + 1), name="tail"),
               "scale": Signal(self.scale.shape(), name="scale")}
        t, hd = tokens[:t_bits], head_dim[:hd_bits]  # the values when the size checks pass
        words = ceil_div_const(t, self.softmax.lanes, self.t_max)
        beat_bytes = self.data_width // 8
        with m.If(control.check):
            m.d.sync += [format_bad.eq(self.desc[8:24].any()),
                         size_bad.eq(~tokens.any() | (tokens > self.t_max) | ~head_dim.any()
                                     | (head_dim > self.hd_max)),
                         run["tokens"].eq(t), run["head_dim"].eq(hd),
                         run["row_beats"].eq(((hd << self._log_act) + beat_bytes - 1) >> self._log_bytes),
                         run["chunks"].eq((hd + self.lanes - 1) >> (self.lanes.bit_length() - 1)),
                         run["words"].eq(words),
                         run["tail"].eq(t - (words - 1) * self.softmax.lanes),
                         run["scale"].eq(field("scale")[:self.scale.width])]
        m.d.comb += control.fault.eq(
            format_bad * ERROR["BAD_FORMAT"]
            | (~format_bad & size_bad) * ERROR["BAD_SIZE"]
            | (~format_bad & ~size_bad & ~Cat(*address_ok).all()) * ERROR["BAD_ADDRESS"])
        return run

    # ------------------------------------------------------------------ reads
    def _step_requests(self, m, name, client, base, stride, run) -> SkewWalk:
        """One request per step of the reordered order for the step's key (value) row."""
        handshake = client.req.valid & client.req.ready
        walk = SkewWalk(m, f"{name}_req", p=self.p, t_max=self.t_max, tokens=run["tokens"],
                        start=self._control.go, step=handshake)
        addr = Signal(self.addr_width, name=f"{name}_addr")
        with m.If(self._control.go):
            m.d.sync += addr.eq(base)
        with m.Elif(handshake):
            m.d.sync += addr.eq(Mux(walk.wrap, base, addr + stride))
        m.d.comb += [client.req.valid.eq(self._control.running & ~walk.end), client.req.payload.addr.eq(addr),
                     client.req.payload.beats.eq(run["row_beats"])]
        return walk

    def _chunks(self, m, name, client, head_dim):
        """The client's rows of beats as chunks of ``lanes`` activation codes (features past ``head_dim`` are 0)."""
        regroup = m.submodules[f"{name}_chunks"] = Rechunk(shape=self.act.shape(), a=self.beat_elems, b=self.lanes,
                                                            length_max=self.hd_max)
        beat = client.data
        elements = unpack_beat(beat.payload.data, container=8 * self.act_bytes, elements=self.beat_elems,
                               shape=self.act.shape())
        m.d.comb += [regroup.inp.valid.eq(beat.valid), beat.ready.eq(regroup.inp.ready),
                     regroup.inp.payload.last.eq(beat.payload.last), regroup.length.eq(head_dim)]
        for j, element in enumerate(elements):
            m.d.comb += regroup.inp.payload.data[j].eq(element)
        return regroup.out

    # ------------------------------------------------------------------ the MAC array
    def _stage1(self, m, take, walk, slots, chunk, src_last, av_phase, q_chunk, k_chunk, v_chunk) -> dict:
        """The chunk taken, its step's slot flags and the operands read for it (the query store, the
        probability banks): the stage after ``take``."""
        p, lanes, act = self.p, self.lanes, self.act
        sl = self.softmax.lanes

        def reg(name, value, shape=None):
            sig = Signal(shape if shape is not None else value.shape(), name=f"s1_{name}")
            m.d.sync += sig.eq(value)
            return sig

        s1 = {"valid": reg("valid", take), "last": reg("last", src_last), "chunk": reg("chunk", chunk),
              "key_word": reg("key_word", walk.key_word), "key_lane": reg("key_lane", walk.key_lane)}
        for flag in ("live", "load", "complete"):
            s1[flag] = [reg(f"{flag}_{i}", slots[flag][i], 1) for i in range(p)]
        # the row a slot works on sits in buffer (its block's parity): the new row's block b, the old one's b - 1
        s1["parity"] = [reg(f"parity_{i}", walk.block[0] ^ slots["old"][i], 1) for i in range(p)]
        src = Signal(data.ArrayLayout(act.shape(), lanes), name="src_chunk")
        m.d.comb += src.eq(Mux(av_phase, v_chunk.payload.data, k_chunk.payload.data))
        s1["b"] = [reg(f"b_{l}", src[l], act.shape()) for l in range(lanes)]
        s1["q"] = [reg(f"q_{l}", q_chunk.payload.data[l], act.shape()) for l in range(lanes)]

        # query store: slot i's query row, a word of `lanes` codes per chunk
        word = data.ArrayLayout(unsigned(act.width), lanes)
        s1["stored_q"], s1["prob"] = [], []
        self._prob_banks = []
        for i in range(p):
            store = m.submodules[f"query_store_{i}"] = memory.Memory(shape=word, depth=self.chunks_max, init=[])
            write, read = store.write_port(), store.read_port()
            m.d.comb += [write.en.eq(take & ~av_phase & slots["load"][i]), write.addr.eq(chunk),
                         read.en.eq(take), read.addr.eq(chunk)]
            for l in range(lanes):
                m.d.comb += write.data[l].eq(q_chunk.payload.data[l])
            s1["stored_q"].append([read.data[l].as_signed() if act.signed else read.data[l] for l in range(lanes)])
            # probability bank i: rows i, i + p, ... (row r at local row r // p), `sl` probabilities per word
            bank = m.submodules[f"prob_bank_{i}"] = memory.Memory(
                shape=data.ArrayLayout(unsigned(self.softmax.output.width), sl), depth=self.bank_rows * self.words_max,
                init=[])
            read = bank.read_port()
            local = Signal(range(max(2, self.bank_rows + 1)), name=f"prob_row_{i}")
            m.d.comb += [local.eq(walk.block - slots["old"][i]),
                         read.en.eq(take), read.addr.eq(local * self.words_max + walk.key_word)]
            s1["prob"].append(read.data)
            self._prob_banks.append(bank)
        return s1

    def _macs(self, m, s1, av_phase, run):
        """Products, the ``Q K^T`` sums and score units, the ``A V`` accumulator rows.
        Returns ``(rows_scored, av_rows_done)``."""
        p, lanes, act = self.p, self.lanes, self.act
        sl = self.softmax.lanes

        def reg(name, value, shape=None):
            sig = Signal(shape if shape is not None else value.shape(), name=f"s2_{name}")
            m.d.sync += sig.eq(value)
            return sig

        s2 = {name: reg(name, s1[name]) for name in ("valid", "last", "chunk", "key_word", "key_lane")}
        for flag in ("live", "load", "complete", "parity"):
            s2[flag] = [reg(f"{flag}_{i}", s1[flag][i], 1) for i in range(p)]
        # Each product as two registered half products (split on the B operand): behind the operand muxes
        # on the memories' outputs, a whole product was 44 cells deep, 2 more than the TPE. Their users add
        # the halves (terms of the Q K^T tree; before + high + low for A V).
        split = act.width // 2
        products = []  # per slot, per lane: (high, low), the product = (high << split) + low
        for i in range(p):
            prob = pick(s1["key_lane"], [s1["prob"][i][w] for w in range(sl)]) if sl > 1 else s1["prob"][i][0]
            row = []
            for l in range(lanes):
                query = Mux(s1["load"][i], s1["q"][l], s1["stored_q"][i][l])
                a = Signal(self.a_shape, name=f"a_{i}_{l}")
                m.d.comb += a.eq(Mux(av_phase, prob, query))
                b = s1["b"][l]
                row.append((reg(f"product_{i}_{l}_high", a * (b >> split)), reg(f"product_{i}_{l}_low", a * b[:split])))
            products.append(row)

        # ---- Q K^T: each slot's exact dot product over the chunks, then its score unit
        first_chunk = equals(s2["chunk"], 0)
        score_in = s2["valid"] & s2["last"] & ~av_phase
        totals = []
        for i in range(p):
            dot = Signal(signed(self.qk_bits), name=f"qk_sum_{i}")
            total = Signal(signed(self.qk_bits), name=f"qk_total_{i}")
            terms = [high << split for high, _ in products[i]] + [low for _, low in products[i]]
            m.d.comb += total.eq(Mux(first_chunk, 0, dot) + tree_sum(terms))
            with m.If(s2["valid"] & ~av_phase):
                m.d.sync += dot.eq(total)
            totals.append(total)
        rows_scored = self._score_units(m, score_in, s2, totals, run)

        # ---- A V: slot i's output row accumulates in its accumulator row (two rows per slot)
        av_rows_done = Signal(range(self.t_max + 1), name="av_rows_done")
        with m.If(self._control.go):
            m.d.sync += av_rows_done.eq(0)
        with m.Elif(s2["valid"] & av_phase & s2["last"] & Cat(*s2["complete"]).any()):
            m.d.sync += av_rows_done.eq(av_rows_done + 1)
        self._acc_rows = []
        acc_word = data.ArrayLayout(unsigned(self.av_bits), lanes)
        for i in range(p):
            rows = m.submodules[f"acc_rows_{i}"] = memory.Memory(shape=acc_word, depth=2 * self.chunks_max, init=[])
            write = rows.write_port()
            # read in the products' stage, written a cycle later: transparent for the next chunk of a 1-chunk row
            read = rows.read_port(transparent_for=(write,))
            m.d.comb += [read.en.eq(1), read.addr.eq(s1["parity"][i] * self.chunks_max + s1["chunk"]),
                         write.en.eq(s2["valid"] & av_phase & s2["live"][i]),
                         write.addr.eq(s2["parity"][i] * self.chunks_max + s2["chunk"])]
            for l in range(lanes):
                before = Mux(s2["load"][i], 0, read.data[l].as_signed())
                high, low = products[i][l]
                m.d.comb += write.data[l].eq(before + (high << split) + low)
            self._acc_rows.append(rows)
        return rows_scored, av_rows_done

    def _score_units(self, m, valid, s2, totals, run):
        """Per slot: fit the sum to the accumulator, times the scale code, requantise to activations, to the
        softmax input; written into the slot's score row at the key's place. Returns ``rows_scored``."""
        p, qk, sm = self.p, self.qk, self.softmax
        rnd, ovf = qk.rounding, qk.overflow
        sl = sm.lanes

        def tag(stage, name, value, shape=None):
            sig = Signal(shape if shape is not None else value.shape(), name=f"score{stage}_{name}")
            m.d.sync += sig.eq(value)
            return sig

        t = {"valid": valid, "key_word": s2["key_word"], "key_lane": s2["key_lane"],
             "complete": Cat(*s2["complete"]).any(), "live": s2["live"], "parity": s2["parity"]}
        codes = totals
        # The product with the scale is registered before its requantisation (one stage held both: the
        # deepest path of the accelerator outside its TPE).
        steps = [lambda x: fit_hw(x << qk.product_shift, qk.acc, ovf),
                 lambda x: x * run["scale"],
                 lambda x: requantize_hw(x, qk.acc.frac + self.scale.frac, qk.out, rnd, ovf),
                 lambda x: requantize_hw(x, qk.out.frac, sm.input, rnd, ovf)]
        for stage, step in enumerate(steps, start=1):
            t = {"valid": tag(stage, "valid", t["valid"]), "key_word": tag(stage, "key_word", t["key_word"]),
                 "key_lane": tag(stage, "key_lane", t["key_lane"]), "complete": tag(stage, "complete", t["complete"]),
                 "live": [tag(stage, f"live_{i}", t["live"][i], 1) for i in range(p)],
                 "parity": [tag(stage, f"parity_{i}", t["parity"][i], 1) for i in range(p)]}
            codes = [tag(stage, f"code_{i}", step(codes[i])) for i in range(p)]
        rows_scored = Signal(range(self.t_max + 1), name="rows_scored")
        with m.If(self._control.go):
            m.d.sync += rows_scored.eq(0)
        with m.Elif(t["valid"] & t["complete"]):
            m.d.sync += rows_scored.eq(rows_scored + 1)
        lane_bits = Cat(*[equals(t["key_lane"], w) for w in range(sl)]) if sl > 1 else Const(1, 1)
        self._score_rows = []
        for i in range(p):
            rows = m.submodules[f"score_rows_{i}"] = memory.Memory(
                shape=data.ArrayLayout(unsigned(sm.input.width), sl), depth=2 * self.words_max, init=[])
            write = rows.write_port(granularity=1)
            m.d.comb += [write.en.eq(Mux(t["valid"] & t["live"][i], lane_bits, 0)),
                         write.addr.eq(t["parity"][i] * self.words_max + t["key_word"])]
            for w in range(sl):
                m.d.comb += write.data[w].eq(codes[i])
            self._score_rows.append(rows)
        return rows_scored

    # ------------------------------------------------------------------ softmax
    def _feeder(self, m, control, rows_scored, rows_fed, rows_probed, run):
        """Complete score rows, in row order, through the softmax unit into the probability banks."""
        p, sm = self.p, self.softmax
        sl = sm.lanes
        unit = m.submodules.softmax = self.softmax_unit
        # ---- feed: row f from slot f % p, buffer (f // p) % 2, a word of `sl` scores per beat
        slot, parity = Signal(range(max(2, p)), name="feed_slot"), Signal(name="feed_parity")
        word = Signal(range(max(2, self.words_max)), name="feed_word")
        valid, last = Signal(name="feed_valid"), Signal(name="feed_last")
        held_slot = Signal(range(max(2, p)), name="feed_held_slot")
        issue = Signal(name="feed_issue")
        advance = Signal(name="feed_advance")
        final_word = Signal(name="feed_final_word")
        m.d.comb += [issue.eq(rows_fed < rows_scored), advance.eq(~valid | unit.inp.ready),
                     final_word.eq(word == run["words"] - 1)]
        reads = _read_out(m, p, self._score_rows, self.words_max, go=control.go, advance=advance, issue=issue,
                          final=final_word, position=word, rows=rows_fed, slot=slot, parity=parity,
                          taken=(valid, last, held_slot))
        m.d.comb += [unit.inp.valid.eq(valid), unit.inp.payload.last.eq(last)]
        if sl > 1:
            m.d.comb += unit.inp.payload.count.eq(Mux(last, run["tail"], sl))
        for w in range(sl):
            value = pick(held_slot, [r[w] for r in reads]) if p > 1 else reads[0][w]
            m.d.comb += unit.inp.payload.data[w].eq(value.as_signed())

        # ---- probabilities: row r into bank r % p at local row r // p
        bank, local = Signal(range(max(2, p)), name="prob_bank"), Signal(range(max(2, self.bank_rows)),
                                                                          name="prob_local")
        out_word = Signal(range(max(2, self.words_max)), name="prob_word")
        beat = unit.out
        m.d.comb += beat.ready.eq(1)
        for i, rows in enumerate(self._prob_banks):
            write = rows.write_port()
            m.d.comb += [write.en.eq(beat.valid & (equals(bank, i) if p > 1 else 1)),
                         write.addr.eq(local * self.words_max + out_word)]
            for w in range(sl):
                m.d.comb += write.data[w].eq(beat.payload.data[w])
        with m.If(control.go):
            m.d.sync += [bank.eq(0), local.eq(0), out_word.eq(0), rows_probed.eq(0)]
        with m.Elif(beat.valid):
            with m.If(beat.payload.last):
                wraps = equals(bank, p - 1) if p > 1 else Const(1, 1)
                m.d.sync += [out_word.eq(0), rows_probed.eq(rows_probed + 1), bank.eq(Mux(wraps, 0, bank + 1)),
                             local.eq(local + wraps)]
            with m.Else():
                m.d.sync += out_word.eq(out_word + 1)

    # ------------------------------------------------------------------ output rows
    def _writer(self, m, control, av_rows_done, rows_drained, run, field):
        """Complete accumulator rows, in row order: fit, requantise, pack into beats, write. Returns ``rows_out``
        (rows whose last beat went to the port)."""
        p, lanes, act, av = self.p, self.lanes, self.act, self.av
        requests = m.submodules.output_requests = RowRequests(addr_width=self.addr_width)
        m.d.comb += [requests.load.eq(control.go), requests.base.eq(field("dst")),
                     requests.stride.eq(field("dst_stride")), requests.count.eq(run["tokens"]),
                     requests.beats.eq(run["row_beats"])]
        wiring.connect(m, requests.req, wiring.flipped(self.writes[0].req))
        self._out_requests = requests

        slot, parity = Signal(range(max(2, p)), name="out_slot"), Signal(name="out_parity")
        chunk = Signal(range(max(2, self.chunks_max)), name="out_chunk")
        issue, final_chunk = Signal(name="out_issue"), Signal(name="out_final_chunk")
        read_valid, read_last = Signal(name="out_read_valid"), Signal(name="out_read_last")
        read_slot = Signal(range(max(2, p)), name="out_read_slot")
        held_valid, held_last = Signal(name="out_held_valid"), Signal(name="out_held_last")
        held = [Signal(act.shape(), name=f"out_held_{l}") for l in range(lanes)]
        pack = m.submodules.output_beats = Rechunk(shape=act.shape(), a=lanes, b=self.beat_elems,
                                                   length_max=self.hd_max)
        advance_held = ~held_valid | pack.inp.ready
        advance_read = ~read_valid | advance_held
        m.d.comb += [issue.eq(rows_drained < av_rows_done), final_chunk.eq(chunk == run["chunks"] - 1)]
        reads = _read_out(m, p, self._acc_rows, self.chunks_max, go=control.go, advance=advance_read, issue=issue,
                          final=final_chunk, position=chunk, rows=rows_drained, slot=slot, parity=parity,
                          taken=(read_valid, read_last, read_slot))
        with m.If(advance_held):
            m.d.sync += [held_valid.eq(read_valid), held_last.eq(read_last)]
            for l in range(lanes):
                total = pick(read_slot, [r[l] for r in reads]) if p > 1 else reads[0][l]
                acc = fit_hw(total.as_signed() << av.product_shift, av.acc, av.overflow)
                m.d.sync += held[l].eq(requantize_hw(acc, av.acc.frac, act, av.rounding, av.overflow))
        m.d.comb += [pack.inp.valid.eq(held_valid), pack.inp.payload.last.eq(held_last),
                     pack.length.eq(run["head_dim"])]
        for l in range(lanes):
            m.d.comb += pack.inp.payload.data[l].eq(held[l])

        # ---- beats: containers sign- (zero-) extended, strobes on the elements of the row
        out = self.writes[0].data
        container = 8 * self.act_bytes
        m.d.comb += [out.valid.eq(pack.out.valid), pack.out.ready.eq(out.ready)]
        for j in range(self.beat_elems):
            m.d.comb += [out.payload.data[j * container:(j + 1) * container].eq(pack.out.payload.data[j]),
                         out.payload.strb[j * self.act_bytes:(j + 1) * self.act_bytes].eq(
                             pack.out.payload.mask[j].replicate(self.act_bytes))]
        rows_out = Signal(range(self.t_max + 1), name="rows_out")
        with m.If(control.go):
            m.d.sync += rows_out.eq(0)
        with m.Elif(out.valid & out.ready & pack.out.payload.last):
            m.d.sync += rows_out.eq(rows_out + 1)
        return rows_out
