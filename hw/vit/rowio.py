"""Result-row slices in DRAM: the linear engine's residual reader and its output writer.

A LINEAR's output row ``m`` of weight tile ``t`` is the slice of ``cols`` elements at
``base + m * stride + t * cols * act_bytes``, ``act_bytes`` per element (the activation code,
sign-extended; zero-extended for an unsigned format). A slice is either whole memory beats
(``cols * act_bytes`` a multiple of the beat) or a part of one beat (a divisor of it): then it
sits at byte lane ``(t * cols * act_bytes) % beat_bytes`` and is written with strobes. Columns
at or past ``N`` (the last tile) are not written. Both walk the rows in the engine's order
(:class:`hw.vit.walk.RowWalk`) and skip rows past ``M``.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith.fixed import FixedFormat

from .axi import ReadClientSignature, WriteClientSignature
from .slices import SliceGeometry
from .select import pick
from .walk import RowWalk


class _SliceAddress:
    """The address of the walk's current slice: ``base + row * stride + tile offset`` (incremental)."""

    def __init__(self, m: Module, name: str, geo: SliceGeometry, walk: RowWalk, *, start, step, base, stride,
                 rows: int, addr_width: int):
        self.addr = Signal(addr_width, name=f"{name}_addr")
        self.lane = Signal(range(max(2, geo.per_beat)), name=f"{name}_lane")
        job = Signal(addr_width, name=f"{name}_job")
        tile = Signal(addr_width, name=f"{name}_tile")
        stride_q = Signal(32, name=f"{name}_stride")
        job_step = Signal(addr_width, name=f"{name}_job_step")
        with m.If(start):
            m.d.sync += [self.addr.eq(base), job.eq(base), tile.eq(base), stride_q.eq(stride),
                         job_step.eq(stride * rows), self.lane.eq(0)]
        with m.Elif(step):
            with m.If(~walk.job_end):
                m.d.sync += self.addr.eq(self.addr + stride_q)
            with m.Elif(~walk.tile_end):
                m.d.sync += [job.eq(job + job_step), self.addr.eq(job + job_step)]
            with m.Else():
                if geo.per_beat == 1:
                    advance = geo.slice_bytes
                    m.d.sync += [tile.eq(tile + advance), job.eq(tile + advance), self.addr.eq(tile + advance)]
                else:
                    wrap = self.lane == geo.per_beat - 1
                    nxt = Mux(wrap, tile + geo.beat_bytes, tile)
                    m.d.sync += [tile.eq(nxt), job.eq(nxt), self.addr.eq(nxt),
                                 self.lane.eq(Mux(wrap, 0, self.lane + 1))]


def _container(code, act: FixedFormat, act_bytes: int):
    bits = 8 * act_bytes
    if act.width == bits:
        return code.as_value()
    ext = code[-1] if act.signed else Const(0, 1)
    return Cat(code, ext.replicate(bits - act.width))


class RowReader(wiring.Component):
    """Reads the slices of a LINEAR's residual tensor in the engine's row order (one read client).

    Command on ``start``: ``m_rows``, ``n_cols``, ``base``, ``stride``. ``rows`` is a stream of
    ``cols`` activation codes per kept row.
    """

    def __init__(self, *, rows: int, cols: int, act: FixedFormat, act_bytes: int, data_width: int, addr_width: int):
        self.geo = SliceGeometry(cols=cols, act_bytes=act_bytes, data_width=data_width)
        self.r, self.act, self.addr_width = rows, act, addr_width
        super().__init__({
            "start": In(1), "m_rows": In(32), "n_cols": In(32), "base": In(addr_width), "stride": In(32),
            "enable": In(1),
            "read": Out(ReadClientSignature(addr_width, data_width)),
            "rows": Out(stream.Signature(data.ArrayLayout(act.shape(), cols))),
        })

    def elaborate(self, platform):
        m = Module()
        geo, cols = self.geo, self.geo.cols
        req = self.read.req
        m_rows, n_cols = Signal(32, name="m_rows_q"), Signal(32, name="n_cols_q")
        with m.If(self.start):
            m.d.sync += [m_rows.eq(self.m_rows), n_cols.eq(self.n_cols)]
        step = Signal(name="req_step")
        walk = RowWalk(m, "req", rows=self.r, cols=cols, m_rows=m_rows, n_cols=n_cols, start=self.start, step=step)
        address = _SliceAddress(m, "req", geo, walk, start=self.start, step=step, base=self.base,
                                stride=self.stride, rows=self.r, addr_width=self.addr_width)
        active = Signal(name="active")
        with m.If(self.start):
            m.d.sync += active.eq(self.enable)
        live = active & ~walk.done & ~self.start
        m.d.comb += [req.valid.eq(live & walk.keep), req.payload.addr.eq(address.addr),
                     req.payload.beats.eq(geo.beats),
                     step.eq(live & (~walk.keep | req.ready))]

        # Data: rows arrive in request order; the lane follows the tile, which changes every m_rows rows.
        d = self.read.data
        lane = Signal(range(max(2, geo.per_beat)), name="data_lane")
        row_count = Signal(32, name="data_rows")
        with m.If(self.start):
            m.d.sync += [lane.eq(0), row_count.eq(0)]
        out = self.rows
        if geo.beats > 1:
            held = Signal((geo.beats - 1) * geo.beat_bytes * 8, name="held")
            beat = Signal(range(geo.beats), name="data_beat")
            whole = Cat(held, d.payload.data)
            final = beat == geo.beats - 1
            m.d.comb += [out.valid.eq(d.valid & final), d.ready.eq(~final | out.ready)]
            with m.If(d.valid & d.ready):
                m.d.sync += [held.eq(Cat(held[geo.beat_bytes * 8:], d.payload.data)) if geo.beats > 2
                             else held.eq(d.payload.data), beat.eq(Mux(final, 0, beat + 1))]
        else:
            bits = geo.slice_bytes * 8
            whole = pick(lane, [d.payload.data[i * bits:(i + 1) * bits] for i in range(geo.per_beat)]) \
                if geo.per_beat > 1 else d.payload.data
            m.d.comb += [out.valid.eq(d.valid), d.ready.eq(out.ready)]
        bits = 8 * geo.act_bytes
        for j in range(cols):
            code = whole[j * bits:j * bits + self.act.width]
            m.d.comb += out.payload[j].eq(code.as_signed() if self.act.signed else code)
        with m.If(out.valid & out.ready):
            with m.If(row_count == m_rows - 1):
                m.d.sync += [row_count.eq(0), lane.eq(Mux(lane == geo.per_beat - 1, 0, lane + 1))]
            with m.Else():
                m.d.sync += row_count.eq(row_count + 1)
        return m


class RowWriter(wiring.Component):
    """Writes the epilogue's rows as slices of the output tensor (one write client).

    Command on ``start``: ``m_rows``, ``n_cols``, ``base``, ``stride``. Takes one row per
    ``rows`` beat (kept rows only, in the engine's order). ``idle`` is high once every row
    of the operator was written and acknowledged.
    """

    def __init__(self, *, rows: int, cols: int, act: FixedFormat, act_bytes: int, data_width: int, addr_width: int):
        self.geo = SliceGeometry(cols=cols, act_bytes=act_bytes, data_width=data_width)
        self.r, self.act, self.addr_width, self.data_width = rows, act, addr_width, data_width
        super().__init__({
            "start": In(1), "m_rows": In(32), "n_cols": In(32), "base": In(addr_width), "stride": In(32),
            "rows": In(stream.Signature(data.ArrayLayout(act.shape(), cols))),
            "write": Out(WriteClientSignature(addr_width, data_width)),
            "idle": Out(1), "waiting": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        geo, cols, ab = self.geo, self.geo.cols, self.geo.act_bytes
        m_rows, n_cols = Signal(32, name="m_rows_q"), Signal(32, name="n_cols_q")
        with m.If(self.start):
            m.d.sync += [m_rows.eq(self.m_rows), n_cols.eq(self.n_cols)]
        step = Signal(name="step")
        walk = RowWalk(m, "out", rows=self.r, cols=cols, m_rows=m_rows, n_cols=n_cols, start=self.start, step=step)
        address = _SliceAddress(m, "out", geo, walk, start=self.start, step=step, base=self.base,
                                stride=self.stride, rows=self.r, addr_width=self.addr_width)
        # Rows past M never come: step over them.
        skip = ~walk.done & ~walk.keep & ~self.start

        # The row being written: its data (containers), its strobes, what is left of it.
        row_bits = geo.slice_bytes * 8
        held = Signal(row_bits, name="held_row")
        strobes = Signal(geo.slice_bytes, name="held_strb")
        lane = Signal.like(address.lane, name="held_lane")
        full = Signal(name="full")
        req_sent = Signal(name="req_sent")
        data_done = Signal(name="data_done")
        beat = Signal(range(max(2, geo.beats)), name="beat")
        req, wdata = self.write.req, self.write.data

        valid_cols = Signal(range(cols + 1), name="valid_cols")
        remaining = n_cols - walk.col0
        m.d.comb += valid_cols.eq(Mux(remaining >= cols, cols, remaining))
        take = Signal(name="take")
        finishing = Signal(name="finishing")
        last_beat = beat == geo.beats - 1
        data_sent = wdata.valid & wdata.ready
        m.d.comb += finishing.eq(full & (req_sent | req.ready) & (data_done | (data_sent & last_beat)))
        m.d.comb += [take.eq(self.rows.valid & walk.keep & ~walk.done & (~full | finishing) & ~self.start),
                     self.rows.ready.eq(take), step.eq(take | skip)]
        with m.If(take):
            m.d.sync += [full.eq(1), req_sent.eq(0), data_done.eq(0), beat.eq(0), lane.eq(address.lane),
                         held.eq(Cat(*[_container(self.rows.payload[j], self.act, ab) for j in range(cols)])),
                         strobes.eq(Cat(*[Mux(j < valid_cols, Const((1 << ab) - 1, ab), 0) for j in range(cols)]))]
        with m.Elif(finishing):
            m.d.sync += full.eq(0)
        # Request: the slice's address and beats; sent once per row.
        addr_q = Signal(self.addr_width, name="held_addr")
        with m.If(take):
            m.d.sync += addr_q.eq(address.addr)
        m.d.comb += [req.valid.eq(full & ~req_sent), req.payload.addr.eq(addr_q), req.payload.beats.eq(geo.beats)]
        with m.If(req.valid & req.ready & ~finishing):
            m.d.sync += req_sent.eq(1)
        # Data beats.
        bb = geo.beat_bytes
        if geo.beats > 1:
            m.d.comb += [wdata.payload.data.eq(pick(beat, [held[i * bb * 8:(i + 1) * bb * 8] for i in range(geo.beats)])),
                         wdata.payload.strb.eq(pick(beat, [strobes[i * bb:(i + 1) * bb] for i in range(geo.beats)]))]
        elif geo.per_beat > 1:
            # The slice sits at its lane; the other lanes carry copies that the strobes leave unwritten.
            m.d.comb += [wdata.payload.data.eq(held.replicate(geo.per_beat)),
                         wdata.payload.strb.eq(pick(lane, [Cat(Const(0, i * geo.slice_bytes), strobes)
                                                           for i in range(geo.per_beat)]))]
        else:
            m.d.comb += [wdata.payload.data.eq(held), wdata.payload.strb.eq(strobes)]
        m.d.comb += wdata.valid.eq(full & ~data_done)
        with m.If(data_sent & ~last_beat):
            m.d.sync += beat.eq(beat + 1)
        with m.If(data_sent & last_beat & ~finishing):
            m.d.sync += data_done.eq(1)

        # Acknowledgements.
        issued = Signal(32, name="issued")
        acked = Signal(32, name="acked")
        with m.If(self.start):
            m.d.sync += [issued.eq(0), acked.eq(0)]
        with m.Else():
            with m.If(req.valid & req.ready):
                m.d.sync += issued.eq(issued + 1)
            with m.If(self.write.acked):
                m.d.sync += acked.eq(acked + 1)
        m.d.comb += [self.idle.eq(walk.done & ~full & (issued == acked)),
                     self.waiting.eq(full & ((req.valid & ~req.ready) | (wdata.valid & ~wdata.ready)))]
        return m
