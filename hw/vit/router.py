"""The mixture of experts' route table: one on-chip token queue per expert, and the walks that read it.

``GATE`` (:mod:`hw.vit.gate`) fills the table; the linear engine's ``gather`` and ``scatter``
flags (:mod:`hw.vit.linear`) read it. Queue ``e`` holds, in token order, one entry per token
that chose expert ``e``: the token's index, its gate score, and ``first`` (``e`` is the lowest
expert the token chose: the expert whose output starts the token's sum rather than adding to it).

Capacity: every queue has room for ``tokens`` entries (a token chooses an expert at most once),
so no routing of at most ``tokens`` tokens can overflow a queue; ``GATE`` refuses more rows.
Entry ``slot`` of queue ``e`` is at word ``e * 2**slot_bits + slot`` of one memory with one
write port (the gate) and one synchronous read port per reader.
"""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for, ceil_log2

from hw.arith.fixed import FixedFormat

from .select import equals, pick


def entry_layout(tokens: int, score: FixedFormat) -> data.StructLayout:
    """One queue entry: ``token`` (its row), ``score`` (its gate score code), ``first`` (lowest chosen expert)."""
    return data.StructLayout({"token": unsigned(bits_for(max(1, tokens - 1))), "score": score.shape(), "first": 1})


def push_layout(experts: int, tokens: int, score: FixedFormat) -> data.StructLayout:
    """A write into the table: the ``expert`` whose queue gets ``entry``."""
    return data.StructLayout({"expert": unsigned(bits_for(max(1, experts - 1))),
                              "entry": entry_layout(tokens, score)})


def queue_read_signature(experts: int, tokens: int, score: FixedFormat) -> wiring.Signature:
    """A reader's port (reader's view): ``en``, ``expert``, ``slot`` -> ``data`` (the entry) in the next cycle."""
    return wiring.Signature({"en": Out(1), "expert": Out(bits_for(max(1, experts - 1))),
                             "slot": Out(bits_for(max(1, tokens - 1))), "data": In(entry_layout(tokens, score))})


class RouteTable(wiring.Component):
    """``experts`` queues of up to ``tokens`` entries, ``readers`` read ports.

    ``clear`` (a pulse) empties every queue. ``push`` (always ready) appends its entry to queue
    ``expert``; ``counts[e]`` is the number of entries of queue ``e`` (from the cycle after the
    push). ``reads[i]``: see :func:`queue_read_signature` (the data holds while ``en`` is low).
    """

    def __init__(self, *, experts: int, tokens: int, score: FixedFormat, readers: int):
        if experts < 1 or tokens < 1:
            raise ValueError(f"a route table needs experts and tokens, not {experts} and {tokens}")
        self.experts, self.tokens, self.score = experts, tokens, score
        self.slot_bits = max(1, ceil_log2(tokens))
        self.entry = entry_layout(tokens, score)
        super().__init__({
            "clear": In(1),
            "push": In(stream.Signature(push_layout(experts, tokens, score))),
            "counts": Out(data.ArrayLayout(unsigned(bits_for(tokens)), experts)),
            "reads": In(queue_read_signature(experts, tokens, score)).array(readers),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self.experts << self.slot_bits
        mem = m.submodules.queues = memory.Memory(shape=self.entry, depth=depth, init=[])
        write = mem.write_port()
        push = self.push
        count = Signal(self.counts[0].shape(), name="push_count")
        m.d.comb += [push.ready.eq(1), count.eq(pick(push.payload.expert, [self.counts[e] for e in range(self.experts)])),
                     write.en.eq(push.valid), write.data.eq(push.payload.entry),
                     write.addr.eq((push.payload.expert << self.slot_bits) | count[:self.slot_bits])]
        for e in range(self.experts):
            with m.If(self.clear):
                m.d.sync += self.counts[e].eq(0)
            with m.Elif(push.valid & equals(push.payload.expert, e)):
                m.d.sync += self.counts[e].eq(self.counts[e] + 1)
        for i, reader in enumerate(self.reads):
            port = mem.read_port()
            m.d.comb += [port.en.eq(reader.en), port.addr.eq((reader.expert << self.slot_bits) | reader.slot),
                         reader.data.eq(port.data)]
        return m


def row_layout(addr_width: int, score: FixedFormat) -> data.StructLayout:
    """One row of a queue walk: the row's byte ``addr``, its ``score`` and ``accumulate`` (not its first expert)."""
    return data.StructLayout({"addr": unsigned(addr_width), "score": score.shape(), "accumulate": 1})


class QueueRows(wiring.Component):
    """The entries ``first .. first+count-1`` of queue ``expert``, ``repeats`` times over, as a stream of rows.

    Command on ``start``: ``expert``, ``first``, ``count``, ``repeats`` (passes; 0 gives nothing), ``base``
    and ``stride``: row ``addr`` is ``base + token * stride``. ``rows`` offers one entry per
    cycle while its consumer takes them (a table read, an address stage, a FIFO of ``depth``).
    """

    def __init__(self, *, experts: int, tokens: int, score: FixedFormat, addr_width: int, depth: int = 4):
        self.experts, self.tokens, self.score, self.addr_width, self.depth = experts, tokens, score, addr_width, depth
        self.layout = row_layout(addr_width, score)
        super().__init__({
            "start": In(1), "expert": In(bits_for(max(1, experts - 1))), "first": In(bits_for(max(1, tokens - 1))),
            "count": In(bits_for(tokens)),
            "repeats": In(32), "base": In(addr_width), "stride": In(32),
            "table": Out(queue_read_signature(experts, tokens, score)),
            "rows": Out(stream.Signature(self.layout)),
        })

    def elaborate(self, platform):
        m = Module()
        fifo = m.submodules.fifo = SyncFIFOBuffered(width=self.layout.size, depth=self.depth)
        expert, count = Signal.like(self.expert, name="expert_q"), Signal.like(self.count, name="count_q")
        repeats, passes = Signal(32, name="repeats_q"), Signal(32, name="passes")
        base, stride = Signal(self.addr_width, name="base_q"), Signal(32, name="stride_q")
        slot = Signal(self.table.slot.shape(), name="slot")
        first, last = Signal.like(slot, name="first_q"), Signal(len(slot) + 1, name="last_q")
        with m.If(self.start):
            m.d.sync += [expert.eq(self.expert), count.eq(self.count), repeats.eq(self.repeats), passes.eq(0),
                         base.eq(self.base), stride.eq(self.stride), slot.eq(self.first), first.eq(self.first),
                         last.eq(self.first + self.count - 1)]
        # Stage 1: the table read; stage 2: the address; then the FIFO. Issue only with room for all in flight.
        s1, s2 = Signal(name="s1_valid"), Signal(name="s2_valid")
        s2_row = Signal(self.layout, name="s2_row")
        more = (passes < repeats) & count.any() & ~self.start
        issue = Signal(name="issue")
        m.d.comb += [issue.eq(more & (fifo.level + s1 + s2 < self.depth)),
                     self.table.en.eq(issue), self.table.expert.eq(expert), self.table.slot.eq(slot)]
        with m.If(issue):
            with m.If(slot == last):
                m.d.sync += [slot.eq(first), passes.eq(passes + 1)]
            with m.Else():
                m.d.sync += slot.eq(slot + 1)
        entry = self.table.data
        m.d.sync += [s1.eq(issue & ~self.start), s2.eq(s1 & ~self.start)]
        with m.If(s1):
            m.d.sync += [s2_row.addr.eq(base + entry.token * stride), s2_row.score.eq(entry.score),
                         s2_row.accumulate.eq(~entry.first)]
        m.d.comb += [fifo.w_en.eq(s2 & ~self.start), fifo.w_data.eq(s2_row.as_value()),
                     self.rows.valid.eq(fifo.r_rdy), self.rows.payload.as_value().eq(fifo.r_data),
                     fifo.r_en.eq(self.rows.ready)]
        return m


def redirect_requests(m: Module, inner, outer, rows, enable) -> None:
    """Connect an engine's client ``inner`` to the port-side client ``outer`` (both engine views, read or
    write clients), adding each row's address of the ``rows`` stream to the requests' addresses while
    ``enable`` is high (one row per request); otherwise a plain connection (``rows`` untouched)."""
    ireq, oreq = inner.req, outer.req
    paired = ireq.valid & rows.valid
    m.d.comb += [
        oreq.valid.eq(Mux(enable, paired, ireq.valid)),
        oreq.payload.beats.eq(ireq.payload.beats),
        oreq.payload.addr.eq(Mux(enable, ireq.payload.addr + rows.payload.addr, ireq.payload.addr)),
        ireq.ready.eq(oreq.ready & (~enable | rows.valid)),
        rows.ready.eq(enable & paired & oreq.ready),
    ]
    for name in ("data", "acked"):
        if name not in inner.signature.members:
            continue
        if name == "acked":
            m.d.comb += inner.acked.eq(outer.acked)
        elif inner.signature.members["data"].flow == Out:  # write data: engine to port
            m.d.comb += [outer.data.valid.eq(inner.data.valid), outer.data.payload.eq(inner.data.payload),
                         inner.data.ready.eq(outer.data.ready)]
        else:  # read data: port to engine
            m.d.comb += [inner.data.valid.eq(outer.data.valid), inner.data.payload.eq(outer.data.payload),
                         outer.data.ready.eq(inner.data.ready)]
