"""AXI4 / AXI4-Lite signatures and the accelerator's AXI4 master port with its read and write clients.

The contract (docs/accelerator.md, "AXI behaviour" and "Internal interfaces"):

* Signatures name their members exactly like the AXI signals (``awaddr``, ``rvalid``, ...),
  with directions as seen from the master. :func:`flat_members` and :func:`connect_flat`
  turn them into top-level ports named ``<prefix>_<signal>`` (``m_axi0_awaddr``), the names
  cocotbext-axi and Vivado's interface inference expect.
* :class:`AxiMasterPort` serves engines through streams: a read client sends
  ``{addr, beats}`` requests and receives the beats in request order with ``last`` on each
  request's final beat; a write client sends requests and, separately, exactly their data
  beats, and sees an ``acked`` pulse when a request's last write response arrived. The port
  cuts requests into INCR bursts of at most ``max_burst`` beats that never cross 4 KB and
  shares the AXI channels among the clients round-robin, one burst at a time.
"""

import operator
from typing import NamedTuple

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, ResetSignal, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import Flow, In, Out

from hw.arith.tree import balanced
from hw.mem.skid import Skid

from .select import equals

#: AxBURST INCR, AxCACHE "normal, bufferable" (0b0011), xRESP OKAY.
BURST_INCR = 0b01
CACHE_NORMAL_BUFFERABLE = 0b0011
RESP_OKAY = 0b00
#: AXI bursts never cross a 4 KB address boundary.
PAGE_BYTES = 4096
#: Request lengths are 16-bit beat counts.
BEATS_WIDTH = 16


class AxiSignal(NamedTuple):
    """One AXI signal: its name, its width (an int, or ``"addr"``/``"data"``/``"strb"``/``"id"``) and its
    flow as seen from the master."""

    name: str
    width: int | str
    flow: Flow


def _channel(prefix: str, *signals) -> list[AxiSignal]:
    return [AxiSignal(prefix + name, width, flow) for name, width, flow in signals]


#: The AXI4 signals in the order of the specification, directions as seen from the master.
AXI4_SIGNALS: list[AxiSignal] = [
    *_channel("aw", ("id", "id", Out), ("addr", "addr", Out), ("len", 8, Out), ("size", 3, Out),
              ("burst", 2, Out), ("lock", 1, Out), ("cache", 4, Out), ("prot", 3, Out), ("qos", 4, Out),
              ("valid", 1, Out), ("ready", 1, In)),
    *_channel("w", ("data", "data", Out), ("strb", "strb", Out), ("last", 1, Out), ("valid", 1, Out),
              ("ready", 1, In)),
    *_channel("b", ("id", "id", In), ("resp", 2, In), ("valid", 1, In), ("ready", 1, Out)),
    *_channel("ar", ("id", "id", Out), ("addr", "addr", Out), ("len", 8, Out), ("size", 3, Out),
              ("burst", 2, Out), ("lock", 1, Out), ("cache", 4, Out), ("prot", 3, Out), ("qos", 4, Out),
              ("valid", 1, Out), ("ready", 1, In)),
    *_channel("r", ("id", "id", In), ("data", "data", In), ("resp", 2, In), ("last", 1, In), ("valid", 1, In),
              ("ready", 1, Out)),
]

#: The AXI4-Lite signals, directions as seen from the master.
AXI4LITE_SIGNALS: list[AxiSignal] = [
    *_channel("aw", ("addr", "addr", Out), ("prot", 3, Out), ("valid", 1, Out), ("ready", 1, In)),
    *_channel("w", ("data", "data", Out), ("strb", "strb", Out), ("valid", 1, Out), ("ready", 1, In)),
    *_channel("b", ("resp", 2, In), ("valid", 1, In), ("ready", 1, Out)),
    *_channel("ar", ("addr", "addr", Out), ("prot", 3, Out), ("valid", 1, Out), ("ready", 1, In)),
    *_channel("r", ("data", "data", In), ("resp", 2, In), ("valid", 1, In), ("ready", 1, Out)),
]


def _check_int(field: str, value, low: int, high: int | None = None, *, power_of_two=False):
    """One-line ``ValueError`` naming ``field``, its value and what is allowed."""
    allowed = f"an integer >= {low}" if high is None else f"an integer {low} .. {high}"
    if power_of_two:
        allowed = f"a power of two {low} .. {high}"
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if ok and power_of_two:
        ok = value & (value - 1) == 0
    if not ok:
        raise ValueError(f"{field}: {value!r} is not allowed; expected {allowed}")


def _members(signals: list[AxiSignal], widths: dict[str, int]) -> dict[str, wiring.Member]:
    return {s.name: s.flow(widths.get(s.width, s.width)) for s in signals}


class Axi4Signature(wiring.Signature):
    """An AXI4 interface seen from the master: ``Out`` members are driven by the master.

    ``addr_width`` address bits, ``data_width`` data bits (a power of two, 8 .. 1024),
    ``id_width`` bits of ``awid``/``bid``/``arid``/``rid``.
    """

    def __init__(self, *, addr_width: int, data_width: int, id_width: int):
        _check_int("addr_width", addr_width, 1, 64)
        _check_int("data_width", data_width, 8, 1024, power_of_two=True)
        _check_int("id_width", id_width, 1, 32)
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        super().__init__(_members(AXI4_SIGNALS, {"addr": addr_width, "data": data_width,
                                                 "strb": data_width // 8, "id": id_width}))

    def __eq__(self, other):
        return (type(other) is type(self) and (self.addr_width, self.data_width, self.id_width)
                == (other.addr_width, other.data_width, other.id_width))

    def __repr__(self):
        return (f"Axi4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width})")


class Axi4LiteSignature(wiring.Signature):
    """An AXI4-Lite interface seen from the master (32- or 64-bit data)."""

    def __init__(self, *, addr_width: int, data_width: int = 32):
        _check_int("addr_width", addr_width, 1, 64)
        if data_width not in (32, 64):
            raise ValueError(f"data_width: {data_width!r} is not allowed; AXI4-Lite data is 32 or 64 bits")
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__(_members(AXI4LITE_SIGNALS, {"addr": addr_width, "data": data_width,
                                                     "strb": data_width // 8}))

    def __eq__(self, other):
        return (type(other) is type(self)
                and (self.addr_width, self.data_width) == (other.addr_width, other.data_width))

    def __repr__(self):
        return f"Axi4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"


def flat_members(prefix: str, signature: wiring.Signature) -> dict[str, wiring.Member]:
    """``{f"{prefix}_{name}": member}`` for every member of ``signature`` (a flipped one for a slave).

    Put these into a top component's signature and its Verilog ports are named
    ``m_axi0_awaddr`` etc.; :func:`connect_flat` wires them to a nested interface.
    """
    flat = {}
    for name, member in signature.members.items():
        if not member.is_port:
            raise TypeError(f"flat_members: member {name!r} of {signature!r} is not a port")
        flat[f"{prefix}_{name}"] = member
    return flat


def connect_flat(m: Module, prefix: str, flat_owner, nested) -> None:
    """Wire every member of the interface ``nested`` to ``flat_owner``'s ``f"{prefix}_{name}"``.

    ``Out`` members of ``nested.signature`` (driven by ``nested``) drive the flat port; ``In``
    members are driven from it. So it works for the master side (``port.axi``) and for a
    slave whose signature is flipped (``csr.bus``) alike.
    """
    for name, member in nested.signature.members.items():
        inner, outer = getattr(nested, name), getattr(flat_owner, f"{prefix}_{name}")
        if member.flow == Out:
            m.d.comb += outer.eq(inner)
        else:
            m.d.comb += inner.eq(outer)


# --- client interfaces ----------------------------------------------------------------------------

def read_request_layout(addr_width: int) -> data.StructLayout:
    """A request: read (or write) ``beats`` data beats from the aligned byte address ``addr``."""
    return data.StructLayout({"addr": addr_width, "beats": BEATS_WIDTH})


def read_data_layout(data_width: int) -> data.StructLayout:
    """A read beat; ``last`` marks the final beat of a request."""
    return data.StructLayout({"data": data_width, "last": 1})


def write_request_layout(addr_width: int) -> data.StructLayout:
    """Same fields as a read request."""
    return read_request_layout(addr_width)


def write_data_layout(data_width: int) -> data.StructLayout:
    """A write beat with its byte strobes (bit ``i`` enables byte ``i`` of ``data``)."""
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


class ReadClientSignature(wiring.Signature):
    """An engine's read client, seen from the engine: it sends ``req`` and takes ``data``."""

    def __init__(self, addr_width: int, data_width: int):
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "req": Out(stream.Signature(read_request_layout(addr_width))),
            "data": In(stream.Signature(read_data_layout(data_width))),
        })

    def __eq__(self, other):
        return (type(other) is type(self)
                and (self.addr_width, self.data_width) == (other.addr_width, other.data_width))


class WriteClientSignature(wiring.Signature):
    """An engine's write client, seen from the engine: it sends ``req`` and ``data``; ``acked`` pulses
    (one cycle) when the last write response of one of its requests arrived, in request order."""

    def __init__(self, addr_width: int, data_width: int):
        self.addr_width, self.data_width = addr_width, data_width
        super().__init__({
            "req": Out(stream.Signature(write_request_layout(addr_width))),
            "data": Out(stream.Signature(write_data_layout(data_width))),
            "acked": In(1),
        })

    def __eq__(self, other):
        return (type(other) is type(self)
                and (self.addr_width, self.data_width) == (other.addr_width, other.data_width))


def burst_layout(addr_width: int) -> data.StructLayout:
    """A burst cut from a request: AXI ``addr`` and ``len`` (beats - 1); ``final`` on a request's last burst."""
    return data.StructLayout({"addr": addr_width, "len": 8, "final": 1})


# --- building blocks --------------------------------------------------------------------------------

class BurstSplitter(wiring.Component):
    """Cuts requests ``{addr, beats}`` into INCR bursts of at most ``max_burst`` beats within 4 KB pages.

    One burst per cycle while ``burst.ready`` is high (also across requests: requests wait in
    a two-entry queue, so ``req.ready`` is a register). ``burst.valid`` and its payload are
    registers. A request of zero beats is dropped. ``busy`` is high while a request or a
    burst is held. Reset (``ResetInserter``) drops everything held.

    Timing: the state keeps the next burst's cap (``min(max_burst, beats to the page end)``)
    precomputed, so emitting a burst is a compare of ``left`` with the cap plus adders that
    do not wait for it.
    """

    def __init__(self, *, addr_width: int, data_width: int, max_burst: int):
        self.addr_width, self.data_width, self.max_burst = addr_width, data_width, max_burst
        super().__init__({
            "req": In(stream.Signature(read_request_layout(addr_width))),
            "burst": Out(stream.Signature(burst_layout(addr_width))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        beat_bytes = self.data_width // 8
        size = beat_bytes.bit_length() - 1
        page = PAGE_BYTES // beat_bytes            # beats per 4 KB page
        cap_max = min(self.max_burst, page)

        layout = read_request_layout(self.addr_width)
        m.submodules.queue = queue = SyncFIFO(width=layout.size, depth=2)
        head = layout(queue.r_data)
        m.d.comb += [
            queue.w_data.eq(self.req.payload),
            queue.w_en.eq(self.req.valid),
            self.req.ready.eq(queue.w_rdy),
        ]

        def capped(beats):
            return Mux(beats < cap_max, beats, cap_max)

        active = Signal()                          # a request is being cut
        addr = Signal(self.addr_width)             # the next burst's address
        left_m1 = Signal(BEATS_WIDTH)              # beats left in the request, minus one
        to_page = Signal(range(page + 1))          # beats from addr to the page end
        cap = Signal(range(cap_max + 1))           # min(max_burst, to_page): the next burst unless the request ends
        last = left_m1 < cap                       # the next burst ends the request
        emit = active & (~self.burst.valid | self.burst.ready)
        take = queue.r_rdy & (~active | (emit & last))
        m.d.comb += queue.r_en.eq(take)

        with m.If(emit):
            page_end = to_page <= cap_max          # this burst runs to the page end
            next_to_page = Mux(page_end, page, to_page - cap_max)
            m.d.sync += [
                self.burst.valid.eq(1),
                self.burst.payload.addr.eq(addr),
                self.burst.payload.len.eq(Mux(last, left_m1, cap - 1)),
                self.burst.payload.final.eq(last),
                addr.eq(addr + (cap << size)),
                left_m1.eq(left_m1 - cap),
                to_page.eq(next_to_page),
                cap.eq(Mux(page_end, cap_max, capped(to_page - cap_max))),
            ]
            with m.If(last):
                m.d.sync += active.eq(0)
        with m.Elif(self.burst.ready):
            m.d.sync += self.burst.valid.eq(0)

        with m.If(take):
            head_to_page = page - head.addr[size:12]
            m.d.sync += [
                active.eq(head.beats.any()),
                addr.eq(head.addr),
                left_m1.eq(head.beats - 1),
                to_page.eq(head_to_page),
                cap.eq(capped(head_to_page)),
            ]
        m.d.comb += self.busy.eq(active | queue.r_rdy | self.burst.valid)
        return m


class RoundRobin(wiring.Component):
    """Grants one of ``count`` requests, the first at or after the one following the last taken grant.

    ``grant`` (one-hot, zero without requests) and ``index`` depend on ``requests`` and a
    register only; ``take`` says the grant was used this cycle and moves the pointer.
    """

    def __init__(self, count: int):
        self.count = count
        super().__init__({"requests": In(count), "take": In(1), "grant": Out(count), "index": Out(index_width(count))})

    def elaborate(self, platform):
        m = Module()
        if self.count == 1:
            m.d.comb += self.grant.eq(self.requests)
            return m
        last = Signal(index_width(self.count), init=self.count - 1, name="last")
        with m.Switch(last):
            for previous in range(self.count):
                # The last index takes the values no client has too (a complete case for the lint).
                with (m.Default() if previous == self.count - 1 else m.Case(previous)):
                    for k in range(1, self.count + 1):
                        candidate = (previous + k) % self.count
                        with (m.If if k == 1 else m.Elif)(self.requests[candidate]):
                            m.d.comb += [self.grant.eq(1 << candidate), self.index.eq(candidate)]
        with m.If(self.take):
            m.d.sync += last.eq(self.index)
        return m


def index_width(count: int) -> int:
    """Bits of a client index: at least one (zero-width signals make Verilator warn)."""
    return max(1, (count - 1).bit_length())


def _queue(m: Module, name: str, layout: data.StructLayout, depth: int):
    """A ``SyncFIFO`` of ``layout`` entries: registered level (so ``w_rdy``/``r_rdy`` are registers),
    first-word fall-through from a small LUT memory. Returns ``(fifo, write view, read view)``.
    """
    fifo = SyncFIFO(width=layout.size, depth=depth)
    m.submodules[name] = fifo
    return fifo, layout(fifo.w_data), layout(fifo.r_data)


def _one_hot_mux(selects, values):
    """OR of ``values[i]`` where ``selects[i]``: a shallow mux when at most one select is high."""
    return balanced(operator.or_, [Mux(s, v, 0) for s, v in zip(selects, values)])


# --- the master port ---------------------------------------------------------------------------------

class AxiMasterPort(wiring.Component):
    """An AXI4 master serving ``read_clients`` read and ``write_clients`` write clients.

    Members
    -------
    axi : Out(Axi4Signature)
        The AXI4 master. INCR bursts, one ID (0), ``AxSIZE`` = the data width, ``AxCACHE`` =
        0b0011, ``AxLOCK``/``AxPROT``/``AxQOS`` = 0. Every ``VALID``/``READY`` output is a
        register or a FIFO's registered state, and low while ``rst`` is high (the first
        reset cycle too, when the registers still hold the work before): none depends
        combinationally on an AXI input.
    reads[c] : In(ReadClientSignature)
        Requests are cut into bursts; a burst is issued only when the client's receive FIFO
        (``read_fifo_depth`` beats) has room for it counting beats still due, so ``rready``
        is always high. Beats arrive in request order, ``last`` on each request's last beat.
    writes[c] : In(WriteClientSignature)
        The W channel carries bursts in address order; each burst's beats are taken from
        its client's ``data`` stream (not before the burst is chosen; possibly before its AW
        handshake). ``acked`` pulses when a request's last ``B`` has arrived.
    drain : In(1)
        The abort of a soft reset (not named ``abort``: Verilator's lint flags that name as a
        C++ word). High for one or more cycles: refuse and drop queued requests, flush the
        read FIFOs, discard read data still due, finish the write bursts already chosen with
        zero strobes (taking no client data) and wait for their responses, until ``idle``.
        No ``acked`` pulses while draining.
    idle : Out(1)
        Nothing in flight on AXI, nothing queued, not draining (data waiting in a client's
        read FIFO does not count).
    clear : In(1)
        Clears ``read_error`` and ``write_error``.
    read_error, write_error : Out(1)
        Sticky: an ``RRESP``/``BRESP`` other than OKAY arrived.
    read_beat, write_bytes : Out
        Registered counter feeds: the cycle after an R beat moved, ``read_beat`` is high; the
        cycle after a W beat moved, ``write_bytes`` is its number of strobed bytes.

    Limits: at most ``max_reads`` read bursts and ``max_writes`` write bursts are chosen and
    not yet answered (so at most that many outstanding on AXI).
    """

    def __init__(self, *, addr_width: int, data_width: int, id_width: int = 1, read_clients: int,
                 write_clients: int, max_burst: int = 16, max_reads: int = 4, max_writes: int = 4,
                 read_fifo_depth: int | None = None):
        _check_int("addr_width", addr_width, 12, 64)
        _check_int("data_width", data_width, 8, 1024, power_of_two=True)
        _check_int("id_width", id_width, 1, 32)
        _check_int("read_clients", read_clients, 0, 64)
        _check_int("write_clients", write_clients, 0, 64)
        _check_int("max_burst", max_burst, 1, 256)
        _check_int("max_reads", max_reads, 1, 256)
        _check_int("max_writes", max_writes, 1, 256)
        if read_fifo_depth is None:
            read_fifo_depth = max(2 * max_burst, 4)
        # SyncFIFOBuffered takes a write whenever it holds fewer than `depth` entries only from depth 3 on.
        _check_int("read_fifo_depth", read_fifo_depth, max(max_burst, 3))
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        self.read_clients, self.write_clients = read_clients, write_clients
        self.max_burst, self.max_reads, self.max_writes = max_burst, max_reads, max_writes
        self.read_fifo_depth = read_fifo_depth
        self.beat_bytes = data_width // 8
        super().__init__({
            "axi": Out(Axi4Signature(addr_width=addr_width, data_width=data_width, id_width=id_width)),
            "reads": In(ReadClientSignature(addr_width, data_width)).array(read_clients),
            "writes": In(WriteClientSignature(addr_width, data_width)).array(write_clients),
            "drain": In(1),
            "idle": Out(1),
            "clear": In(1),
            "read_error": Out(1),
            "write_error": Out(1),
            "read_beat": Out(1),
            "write_bytes": Out(range(self.beat_bytes + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        axi = self.axi
        size = self.beat_bytes.bit_length() - 1
        m.d.comb += [
            axi.awid.eq(0), axi.awsize.eq(size), axi.awburst.eq(BURST_INCR), axi.awlock.eq(0),
            axi.awcache.eq(CACHE_NORMAL_BUFFERABLE), axi.awprot.eq(0), axi.awqos.eq(0),
            axi.arid.eq(0), axi.arsize.eq(size), axi.arburst.eq(BURST_INCR), axi.arlock.eq(0),
            axi.arcache.eq(CACHE_NORMAL_BUFFERABLE), axi.arprot.eq(0), axi.arqos.eq(0),
        ]
        draining = Signal()
        flush = Signal()
        running = Signal(name="running")  # not in reset: the VALID/READY outputs are gated with it
        m.d.comb += running.eq(~ResetSignal())
        m.d.comb += flush.eq(self.drain | draining)
        busy = [self._read_side(m, flush, running), self._write_side(m, flush, running)]
        any_busy = Signal()
        m.d.comb += any_busy.eq(balanced(operator.or_, busy))
        with m.If(self.drain):
            m.d.sync += draining.eq(1)
        with m.Elif(~any_busy):
            m.d.sync += draining.eq(0)
        m.d.comb += self.idle.eq(~any_busy & ~draining)
        return m

    def _splitters(self, m: Module, kind: str, clients, flush):
        """One burst splitter per client (dropped by ``flush``); requests refused while flushing."""
        splitters = []
        for c, client in enumerate(clients):
            splitter = BurstSplitter(addr_width=self.addr_width, data_width=self.data_width,
                                     max_burst=self.max_burst)
            m.submodules[f"{kind}_split_{c}"] = ResetInserter(flush)(splitter)
            m.d.comb += [
                splitter.req.payload.eq(client.req.payload),
                splitter.req.valid.eq(client.req.valid & ~flush),
                client.req.ready.eq(splitter.req.ready & ~flush),
            ]
            splitters.append(splitter)
        return splitters

    def _arbiter(self, m: Module, kind: str, splitters, eligible, gate):
        """Round-robin choice among ``eligible`` bursts when ``gate``; returns (taken, index, burst).

        The chosen splitter sees ``burst.ready``; ``burst`` is its payload (a one-hot mux)."""
        m.submodules[f"{kind}_arbiter"] = arbiter = RoundRobin(len(splitters))
        taken = Signal(name=f"{kind}_taken")
        m.d.comb += [
            arbiter.requests.eq(Cat(eligible)),
            taken.eq(gate & arbiter.requests.any()),
            arbiter.take.eq(taken),
        ]
        for c, splitter in enumerate(splitters):
            m.d.comb += splitter.burst.ready.eq(gate & arbiter.grant[c])
        burst = burst_layout(self.addr_width)(
            _one_hot_mux(arbiter.grant, [s.burst.payload.as_value() for s in splitters]))
        return taken, arbiter.index, burst

    def _read_side(self, m: Module, flush, running):
        """Splitters, credits, AR queue, R routing into the clients' FIFOs; returns 'busy'."""
        axi, clients, n = self.axi, self.reads, self.read_clients
        if n == 0:
            m.d.comb += [axi.arvalid.eq(0), axi.rready.eq(0)]
            return Const(0)
        depth = self.read_fifo_depth
        splitters = self._splitters(m, "read", clients, flush)

        # Credits: receive-FIFO room not yet promised to a chosen burst.
        space = [Signal(range(depth + 1), init=depth, name=f"read_space_{c}") for c in range(n)]
        eligible = [s.burst.valid & (room > s.burst.payload.len) for s, room in zip(splitters, space)]

        ar_layout = data.StructLayout({"addr": self.addr_width, "len": 8})
        owner_layout = data.StructLayout({"client": index_width(n), "final": 1})
        arq, arq_in, arq_out = _queue(m, "ar_queue", ar_layout, 2)
        owners, owner_in, owner_out = _queue(m, "read_owners", owner_layout, self.max_reads)
        taken, index, burst = self._arbiter(m, "read", splitters, eligible, arq.w_rdy & owners.w_rdy & ~flush)
        m.d.comb += [
            arq.w_en.eq(taken), arq_in.addr.eq(burst.addr), arq_in.len.eq(burst.len),
            owners.w_en.eq(taken), owner_in.client.eq(index), owner_in.final.eq(burst.final),
            axi.arvalid.eq(arq.r_rdy & running), axi.araddr.eq(arq_out.addr), axi.arlen.eq(arq_out.len),
            arq.r_en.eq(axi.arready & running),
        ]

        # R: always ready (credits guarantee room); one register stage, then into the owner's FIFO.
        r_ready = Signal(name="r_ready")
        m.d.sync += r_ready.eq(1)
        m.d.comb += axi.rready.eq(r_ready & running)
        beat = Signal(read_data_layout(self.data_width))
        r_valid = Signal(name="r_valid")
        r_resp = Signal(2, name="r_resp")
        m.d.sync += r_valid.eq(axi.rvalid & axi.rready)
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += [beat.data.eq(axi.rdata), beat.last.eq(axi.rlast), r_resp.eq(axi.rresp)]
        m.d.comb += [owners.r_en.eq(r_valid & beat.last), self.read_beat.eq(r_valid)]
        with m.If(self.clear):
            m.d.sync += self.read_error.eq(0)
        with m.If(r_valid & r_resp.any()):  # not OKAY (0b00)
            m.d.sync += self.read_error.eq(1)

        layout = read_data_layout(self.data_width)
        for c, client in enumerate(clients):
            fifo = SyncFIFOBuffered(width=layout.size, depth=depth)
            m.submodules[f"read_fifo_{c}"] = ResetInserter(flush)(fifo)
            fifo_in = layout(fifo.w_data)
            # A skid after the FIFO: the client's `ready` may be a deep path (an engine's back-pressure), and
            # the FIFO's level, the credits and the arbiter would add to it. The skid's two beats are outside
            # the credits (a beat leaves the FIFO only when the skid has room for it).
            skid = m.submodules[f"read_skid_{c}"] = ResetInserter(flush)(Skid(layout))
            popped = Signal(name=f"read_popped_{c}")
            m.d.comb += [
                fifo.w_en.eq(r_valid & equals(owner_out.client, c)),  # flush resets the FIFO: beats are dropped
                fifo_in.data.eq(beat.data),
                fifo_in.last.eq(beat.last & owner_out.final),
                skid.i.valid.eq(fifo.r_rdy & ~flush),
                skid.i.payload.eq(fifo.r_data),
                fifo.r_en.eq(skid.i.ready & ~flush),
                popped.eq(skid.i.valid & skid.i.ready),
                client.data.valid.eq(skid.o.valid & ~flush),
                client.data.payload.eq(skid.o.payload),
                skid.o.ready.eq(client.data.ready & ~flush),
            ]
            # Both outcomes from registers, in parallel with the arbiter; its grant only selects.
            chosen = space[c] + popped - splitters[c].burst.payload.len - 1
            with m.If(flush):
                m.d.sync += space[c].eq(depth)
            with m.Elif(splitters[c].burst.ready):
                m.d.sync += space[c].eq(chosen)
            with m.Else():
                m.d.sync += space[c].eq(space[c] + popped)
        return balanced(operator.or_, [s.busy for s in splitters] + [arq.r_rdy, owners.r_rdy, r_valid])

    def _write_side(self, m: Module, flush, running):
        """Splitters, AW queue, W beat engine in AW order, B bookkeeping; returns 'busy'."""
        axi, clients, n = self.axi, self.writes, self.write_clients
        if n == 0:
            m.d.comb += [axi.awvalid.eq(0), axi.wvalid.eq(0), axi.bready.eq(0)]
            return Const(0)
        splitters = self._splitters(m, "write", clients, flush)

        aw_layout = data.StructLayout({"addr": self.addr_width, "len": 8})
        order_layout = data.StructLayout({"client": index_width(n), "len": 8})
        resp_layout = data.StructLayout({"client": index_width(n), "final": 1})
        awq, awq_in, awq_out = _queue(m, "aw_queue", aw_layout, 2)
        order, order_in, order_out = _queue(m, "w_order", order_layout, self.max_writes)
        resps, resp_in, resp_out = _queue(m, "b_order", resp_layout, self.max_writes)
        taken, index, burst = self._arbiter(m, "write", splitters, [s.burst.valid for s in splitters],
                                            awq.w_rdy & order.w_rdy & resps.w_rdy & ~flush)
        m.d.comb += [
            awq.w_en.eq(taken), awq_in.addr.eq(burst.addr), awq_in.len.eq(burst.len),
            order.w_en.eq(taken), order_in.client.eq(index), order_in.len.eq(burst.len),
            resps.w_en.eq(taken), resp_in.client.eq(index), resp_in.final.eq(burst.final),
            axi.awvalid.eq(awq.r_rdy & running), axi.awaddr.eq(awq_out.addr), axi.awlen.eq(awq_out.len),
            awq.r_en.eq(axi.awready & running),
        ]

        # W: the head of `order` names the burst whose beats go next; beats pass through a
        # two-entry queue so no client sees AXI's WREADY combinationally.
        w_layout = data.StructLayout({"data": self.data_width, "strb": self.beat_bytes, "last": 1})
        wq, wq_in, wq_out = _queue(m, "w_queue", w_layout, 2)
        count = Signal(8, name="w_beat")
        selects = [equals(order_out.client, c) for c in range(n)]
        source_valid = balanced(operator.or_, [s & client.data.valid for s, client in zip(selects, clients)])
        source = write_data_layout(self.data_width)(
            _one_hot_mux(selects, [client.data.payload.as_value() for client in clients]))
        can_move = order.r_rdy & wq.w_rdy
        move = can_move & (flush | source_valid)
        last = count == order_out.len
        m.d.comb += [
            wq.w_en.eq(move),
            wq_in.data.eq(Mux(flush, 0, source.data)),
            wq_in.strb.eq(Mux(flush, 0, source.strb)),
            wq_in.last.eq(last),
            order.r_en.eq(move & last),
            axi.wvalid.eq(wq.r_rdy & running), axi.wdata.eq(wq_out.data), axi.wstrb.eq(wq_out.strb),
            axi.wlast.eq(wq_out.last),
            wq.r_en.eq(axi.wready & running),
        ]
        for select, client in zip(selects, clients):
            m.d.comb += client.data.ready.eq(can_move & select & ~flush)
        with m.If(move):
            m.d.sync += count.eq(Mux(last, 0, count + 1))
        moved_bytes = balanced(operator.add, list(wq_out.strb))
        m.d.sync += self.write_bytes.eq(Mux(axi.wvalid & axi.wready, moved_bytes, 0))

        # B: always ready (a response only answers a burst we chose); one register stage.
        b_ready = Signal(name="b_ready")
        m.d.sync += b_ready.eq(1)
        m.d.comb += axi.bready.eq(b_ready & running)
        b_valid = Signal(name="b_valid")
        b_resp = Signal(2, name="b_resp")
        m.d.sync += [b_valid.eq(axi.bvalid & axi.bready), b_resp.eq(axi.bresp)]
        m.d.comb += resps.r_en.eq(b_valid)
        for c, client in enumerate(clients):
            m.d.sync += client.acked.eq(b_valid & resp_out.final & equals(resp_out.client, c) & ~flush)
        with m.If(self.clear):
            m.d.sync += self.write_error.eq(0)
        with m.If(b_valid & b_resp.any()):  # not OKAY (0b00)
            m.d.sync += self.write_error.eq(1)
        return balanced(operator.or_, [s.busy for s in splitters]
                        + [awq.r_rdy, order.r_rdy, resps.r_rdy, wq.r_rdy, b_valid])
