"""On-chip operand storage of the linear engine: the A banks and the double-buffered weight tiles.

**A banks** (:class:`ABuffer`): one memory per row of the engine's M-tile (``rows`` banks).
Row ``m`` of A goes to bank ``m % rows``; its ``k``-th element to word
``(m // rows) * pitch + k // word_elems``, lane ``k % word_elems``. A word is ``beats_per_word``
memory beats (one, unless the engine takes more reduction steps per beat than a memory beat
holds), stored at the operand's width (the containers' upper bits are dropped). The loader
requests row after row and counts rows as they complete (``rows_loaded``), so the feeder can
start on an M-tile as soon as its rows are in.

**Weight tiles** (:class:`WeightBuffer`): two halves, each holding one tile of ``K`` rows of
``cols`` weights (a row per reduction step, spread over ``steps`` banks: step ``k`` in bank
``k % steps`` at word ``half * half_words + k // steps``) and, with ``bias``, one bias row in
registers. Tile ``t`` uses half ``t % 2``. The loader fills a half when it is free; the
epilogue frees it (``release``) after the last result row of its tile; with ``no_prefetch``
the next tile waits until the previous one is released too (one tile at a time).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .axi import ReadClientSignature
from .select import equals, pick
from .slices import SliceGeometry
from .slices import log2_exact as _log2


class ABuffer(wiring.Component):
    """``rows`` banks of A and their loader (a read client). See the module docstring.

    Command (sampled on ``start``): ``m_rows``, ``k``, ``src``, ``src_stride``. The loader
    requests ``ceil(k * act_bytes / beat_bytes)`` beats per row. ``rows_loaded`` counts
    finished rows; ``loaded`` is high once all ``m_rows`` are in (until the next ``start``).
    Read side: ``r_en``/``r_addr`` (a word address) -> ``r_data[i]`` (bank ``i``'s word,
    ``word_elems`` operands) in the next cycle; ``r_data`` holds while ``r_en`` is low.
    """

    def __init__(self, *, rows: int, data_width: int, addr_width: int, act_bytes: int, operand_bits: int,
                 beats_per_word: int, words: int, pitch: int):
        self.rows, self.data_width, self.act_bytes = rows, data_width, act_bytes
        self.operand_bits, self.beats_per_word, self.words, self.pitch = operand_bits, beats_per_word, words, pitch
        self.beat_elems = data_width // 8 // act_bytes
        self.word_elems = self.beat_elems * beats_per_word
        word = data.ArrayLayout(unsigned(operand_bits), self.word_elems)
        super().__init__({
            "start": In(1), "m_rows": In(32), "k": In(32), "src": In(addr_width), "src_stride": In(32),
            "read": Out(ReadClientSignature(addr_width, data_width)),
            "rows_loaded": Out(32), "loaded": Out(1),
            "r_en": In(1), "r_addr": In(range(max(2, words))),
            "r_data": Out(word).array(rows),
        })

    def elaborate(self, platform):
        m = Module()
        rows, beat_bytes = self.rows, self.data_width // 8
        banks = []
        for i in range(rows):
            mem = memory.Memory(shape=self.word_elems * self.operand_bits, depth=self.words, init=[])
            m.submodules[f"bank_{i}"] = mem
            banks.append(mem)
        granularity = self.beat_elems * self.operand_bits if self.beats_per_word > 1 else None
        writes = [bank.write_port(granularity=granularity) for bank in banks]
        for i, bank in enumerate(banks):
            port = bank.read_port()
            m.d.comb += [port.en.eq(self.r_en), port.addr.eq(self.r_addr), self.r_data[i].as_value().eq(port.data)]

        # Request side: one request per row.
        req = self.read.req
        row_beats = Signal(16, name="row_beats")
        m_rows = Signal(32, name="m_rows_q")
        next_row = Signal(32, name="next_row")
        addr = Signal.like(self.src, name="row_addr")
        stride = Signal(32, name="stride_q")
        with m.If(self.start):
            byte_count = self.k << _log2(self.act_bytes)
            m.d.sync += [row_beats.eq((byte_count + beat_bytes - 1) >> _log2(beat_bytes)),
                         m_rows.eq(self.m_rows), next_row.eq(0), addr.eq(self.src), stride.eq(self.src_stride)]
        m.d.comb += [req.valid.eq(next_row < m_rows), req.payload.addr.eq(addr), req.payload.beats.eq(row_beats)]
        with m.If(req.valid & req.ready):
            m.d.sync += [next_row.eq(next_row + 1), addr.eq(addr + stride)]

        # Data side: beats land in bank `bank`, words from `base`, lane group `group`.
        data_in = self.read.data
        bank = Signal(range(max(2, rows)), name="bank")
        base = Signal(range(max(2, self.words + 1)), name="base")
        beat = Signal(16, name="beat")
        done_rows = Signal(32, name="done_rows")
        with m.If(self.start):
            m.d.sync += [bank.eq(0), base.eq(0), beat.eq(0), done_rows.eq(0)]
        m.d.comb += data_in.ready.eq(1)
        word_addr = base + (beat >> _log2(self.beats_per_word))
        elems = [data_in.payload.data[e * 8 * self.act_bytes:e * 8 * self.act_bytes + self.operand_bits]
                 for e in range(self.beat_elems)]
        packed = Cat(*elems)
        for i, port in enumerate(writes):
            m.d.comb += [port.addr.eq(word_addr), port.data.eq(packed.replicate(self.beats_per_word))]
            hit = data_in.valid & equals(bank, i)
            if granularity is None:
                m.d.comb += port.en.eq(hit)
            else:
                group = beat[:_log2(self.beats_per_word)]
                m.d.comb += port.en.eq(Mux(hit, 1 << group, 0))
        with m.If(data_in.valid):
            with m.If(data_in.payload.last):
                m.d.sync += [beat.eq(0), done_rows.eq(done_rows + 1)]
                with m.If(bank == rows - 1):
                    m.d.sync += [bank.eq(0), base.eq(base + self.pitch)]
                with m.Else():
                    m.d.sync += bank.eq(bank + 1)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
        m.d.comb += [self.rows_loaded.eq(done_rows), self.loaded.eq(done_rows == m_rows)]
        return m


class WeightBuffer(wiring.Component):
    """Two halves of B tiles (and bias rows) and their loader (a read client).

    Command (sampled on ``start``): ``k``, ``n_cols``, ``weights`` (the B tensor's address),
    ``bias`` (weight tiles carry a bias row), ``no_prefetch``, ``rows`` and ``b_stride``.

    * Weight tiles (``rows`` low): tile ``t`` is ``k`` (+1 with ``bias``) rows of ``row_beats``
      beats of ``w_bytes`` containers at ``weights + t * tile_bytes``, one request per tile.
    * Activation rows (``rows`` high, when built with ``rows_mode``): B is a row-major tensor of
      activation containers (``V`` of attention), row ``k`` at ``weights + k * b_stride``; tile
      ``t`` row ``k`` is the slice of ``cols`` elements at ``t * cols * act_bytes`` in it (whole
      beats, or a part of one beat), one request per row; no bias.

    ``ceil(n_cols / cols)`` tiles; tile ``t`` goes to half ``t % 2``. ``ready[h]`` is high from
    half ``h``'s tile being loaded until ``fed[h]`` (a pulse: the feeder read its last beat); the
    half is reloaded only after ``release[h]`` (a pulse: its bias row was taken by the tile's
    last result row), so a tile is fed once, however late its results leave. ``tiles_done`` is high when
    every tile was loaded. Read side: ``r_en``/``r_addr`` -> ``r_data[s]`` (bank ``s``: ``cols``
    codes of ``b_bits``, sign-extended) in the next cycle; ``bias_rows[h][j]`` are the bias codes
    of half ``h``.
    """

    def __init__(self, *, cols: int, steps: int, data_width: int, addr_width: int, w_bytes: int, w_bits: int,
                 b_bits: int, bias_bits: int, half_words: int, row_beats: int, k_max: int,
                 rows_mode: bool = False, act_bytes: int = 4, act_bits: int = 24):
        self.cols, self.steps, self.data_width, self.w_bytes = cols, steps, data_width, w_bytes
        self.w_bits, self.b_bits, self.bias_bits = w_bits, b_bits, bias_bits
        self.half_words, self.row_beats, self.k_max = half_words, row_beats, k_max
        self.rows_mode, self.act_bytes, self.act_bits = rows_mode, act_bytes, act_bits
        self.slices = SliceGeometry(cols=cols, act_bytes=act_bytes, data_width=data_width)
        words = 2 * half_words
        self.words = words
        row = data.ArrayLayout(unsigned(b_bits), cols)
        super().__init__({
            "start": In(1), "k": In(32), "n_cols": In(32), "weights": In(addr_width), "bias": In(1),
            "no_prefetch": In(1), "rows": In(1), "b_stride": In(32),
            "read": Out(ReadClientSignature(addr_width, data_width)),
            "ready": Out(2), "fed": In(2), "release": In(2), "tiles_done": Out(1),
            "r_en": In(1), "r_addr": In(range(words)),
            "r_data": Out(row).array(steps),
            "bias_rows": Out(data.ArrayLayout(unsigned(max(1, bias_bits)), cols)).array(2),
        })

    def elaborate(self, platform):
        m = Module()
        steps, cols, beat_bytes = self.steps, self.cols, self.data_width // 8
        slices = self.slices
        banks = []
        for s in range(steps):
            mem = memory.Memory(shape=cols * self.b_bits, depth=self.words, init=[])
            m.submodules[f"bank_{s}"] = mem
            banks.append(mem)
        writes = [bank.write_port() for bank in banks]
        for s, bank in enumerate(banks):
            port = bank.read_port()
            m.d.comb += [port.en.eq(self.r_en), port.addr.eq(self.r_addr), self.r_data[s].as_value().eq(port.data)]
        bias_rows = [Signal(data.ArrayLayout(unsigned(max(1, self.bias_bits)), cols), name=f"bias_{h}")
                     for h in range(2)]
        for h in range(2):
            m.d.comb += self.bias_rows[h].eq(bias_rows[h])

        # The tile walk of the request side.
        k = Signal(32, name="k_q")
        has_bias = Signal(name="has_bias")
        row_mode = Signal(name="row_mode")
        one_at_a_time = Signal(name="one_at_a_time")
        n_cols = Signal(32, name="n_cols_q")
        tile_beats = Signal(32, name="tile_beats")
        b_stride = Signal(32, name="b_stride_q")
        addr = Signal.like(self.weights, name="tile_addr")
        row_addr = Signal.like(self.weights, name="row_addr")  # rows mode: the next row of the tile
        row_req = Signal(32, name="row_req")  # rows mode: rows of the tile requested
        lane = Signal(range(max(2, slices.per_beat)), name="req_lane")
        col0 = Signal(32, name="req_col0")  # first column of the next tile to request
        half = Signal(name="req_half")
        ready = Signal(2, name="ready_q")  # loaded, not yet fed
        held = Signal(2, name="held")  # loaded, not yet released (the bias row in use)
        requested = Signal(2, name="requested")  # a half whose tile is on its way
        pending = Signal(name="pending")  # requests left
        with m.If(self.start):
            rows = self.k + self.bias
            m.d.sync += [k.eq(self.k), has_bias.eq(self.bias), one_at_a_time.eq(self.no_prefetch),
                         n_cols.eq(self.n_cols), tile_beats.eq(rows * self.row_beats), addr.eq(self.weights),
                         row_addr.eq(self.weights), row_req.eq(0), lane.eq(0), b_stride.eq(self.b_stride),
                         col0.eq(0), half.eq(0), pending.eq(1), requested.eq(0),
                         row_mode.eq(self.rows if self.rows_mode else 0)]
        busy_halves = held | requested
        free = ~pick(half, [busy_halves[0], busy_halves[1]]) & (~one_at_a_time | ~busy_halves.any())
        # In rows mode a tile's rows go out back to back once its half is marked requested.
        filling = Signal(name="filling")
        m.d.comb += filling.eq(row_mode & row_req.any())
        req = self.read.req
        m.d.comb += [req.valid.eq(pending & (free | filling) & ~self.start),
                     req.payload.addr.eq(Mux(row_mode, row_addr, addr)),
                     req.payload.beats.eq(Mux(row_mode, slices.beats, tile_beats))]
        set_requested = Signal(2, name="set_requested")
        fired = req.valid & req.ready
        tile_issued = fired & (~row_mode | (row_req == k - 1))
        with m.If(fired & ~filling):
            m.d.comb += set_requested.eq(1 << half)
        with m.If(fired & row_mode):
            m.d.sync += [row_req.eq(row_req + 1), row_addr.eq(row_addr + b_stride)]
        with m.If(tile_issued):
            # The next tile: weight tiles follow each other; activation-row tiles move along the row.
            if slices.per_beat == 1:
                step = slices.slice_bytes
                next_lane = 0
            else:
                wrap = lane == slices.per_beat - 1
                step = Mux(wrap, beat_bytes, 0)
                next_lane = Mux(wrap, 0, lane + 1)
            m.d.sync += [addr.eq(Mux(row_mode, addr + step, addr + (tile_beats << _log2(beat_bytes)))),
                         row_addr.eq(addr + step), row_req.eq(0), col0.eq(col0 + cols), half.eq(~half)]
            if self.rows_mode and slices.per_beat > 1:
                m.d.sync += lane.eq(Mux(row_mode, next_lane, 0))
            with m.If(col0 + cols >= n_cols):
                m.d.sync += pending.eq(0)

        # Data side: rows assemble from the beats of a row; row k goes to bank k % steps.
        data_in = self.read.data
        m.d.comb += data_in.ready.eq(1)
        fill_half = Signal(name="fill_half")
        fill_lane = Signal(range(max(2, slices.per_beat)), name="fill_lane")
        row_index = Signal(32, name="row_index")
        bank_sel = Signal(range(max(2, steps)), name="bank_sel")
        word = Signal(range(max(2, self.words)), name="word")
        most_beats = max(self.row_beats, slices.beats if self.rows_mode else 1)
        beat = Signal(range(max(2, most_beats)), name="row_beat")
        if most_beats > 1:
            assembled = Signal(most_beats * self.data_width, name="assembled")
            whole = Cat(assembled[self.data_width:], data_in.payload.data)
        else:
            whole = data_in.payload.data
        last_beat = Mux(row_mode, slices.beats - 1, self.row_beats - 1) if self.rows_mode else self.row_beats - 1
        # A row of fewer beats than `most_beats` sits at the top of the shift register.
        weight_value = whole[(most_beats - self.row_beats) * self.data_width:]
        row_done = Signal(name="row_done")
        m.d.comb += row_done.eq(data_in.valid & (beat == last_beat))
        with m.If(self.start):
            m.d.sync += [fill_half.eq(0), fill_lane.eq(0), row_index.eq(0), bank_sel.eq(0), word.eq(0), beat.eq(0)]
        with m.If(data_in.valid):
            if most_beats > 1:
                m.d.sync += assembled.eq(Cat(assembled[self.data_width:], data_in.payload.data))
            m.d.sync += beat.eq(Mux(beat == last_beat, 0, beat + 1))
        w = 8 * self.w_bytes
        weights_row = Cat(*[_widen(weight_value[j * w:j * w + self.w_bits], self.b_bits) for j in range(cols)])
        if self.rows_mode:
            a = 8 * self.act_bytes
            act_value = whole[(most_beats - slices.beats) * self.data_width:]
            if slices.per_beat > 1:
                bits = slices.slice_bytes * 8
                act_value = pick(fill_lane, [act_value[i * bits:(i + 1) * bits] for i in range(slices.per_beat)])
            act_row = Cat(*[_widen(act_value[j * a:j * a + self.act_bits], self.b_bits) for j in range(cols)])
            row_data = Mux(row_mode, act_row, weights_row)
        else:
            row_data = weights_row
        is_weight = row_index < k
        set_ready = Signal(2, name="set_ready")
        with m.If(row_done):
            with m.If(is_weight):
                m.d.sync += row_index.eq(row_index + 1)
                if steps > 1:
                    with m.If(equals(bank_sel, steps - 1)):
                        m.d.sync += [bank_sel.eq(0), word.eq(word + 1)]
                    with m.Else():
                        m.d.sync += bank_sel.eq(bank_sel + 1)
                else:
                    m.d.sync += word.eq(word + 1)
            with m.Else():  # the bias row
                for h in range(2):
                    with m.If(equals(fill_half, h)):
                        m.d.sync += bias_rows[h].eq(Cat(*[weight_value[j * w:j * w + self.bias_bits]
                                                         for j in range(cols)]))
            tile_complete = Mux(has_bias, row_index == k, row_index == k - 1)
            with m.If(tile_complete):
                m.d.comb += set_ready.eq(1 << fill_half)
                m.d.sync += [row_index.eq(0), bank_sel.eq(0), fill_half.eq(~fill_half),
                             word.eq(Mux(fill_half, 0, self.half_words))]
                if self.rows_mode and slices.per_beat > 1:
                    m.d.sync += fill_lane.eq(Mux(equals(fill_lane, slices.per_beat - 1), 0, fill_lane + 1))
        with m.If(self.start):
            m.d.sync += [ready.eq(0), held.eq(0)]
        with m.Else():
            m.d.sync += [ready.eq((ready | set_ready) & ~self.fed), held.eq((held | set_ready) & ~self.release),
                         requested.eq((requested | set_requested) & ~set_ready)]
        m.d.comb += [self.ready.eq(ready), self.tiles_done.eq(~pending & ~requested.any())]
        # Connected last: a register that drives a port is named after the first statement that uses it.
        for s, port in enumerate(writes):
            m.d.comb += [port.addr.eq(word), port.data.eq(row_data),
                         port.en.eq(row_done & is_weight & equals(bank_sel, s))]
        return m


def _widen(code, bits: int):
    """A two's complement code sign-extended to ``bits`` bits."""
    code = Value.cast(code)
    return Cat(code, code[-1].replicate(bits - len(code))) if bits > len(code) else code[:bits]
