"""A client-level DRAM model and an engine driver for the accelerator's engines in Amaranth's simulator.

:class:`Memory` stands where the AXI master ports (``hw/vit/axi.py``) will be: it serves
any number of **read clients** and **write clients** of an engine (the engine view of
:class:`hw.vit.axi.ReadClientSignature` / :class:`hw.vit.axi.WriteClientSignature`) from
a byte-addressed memory (``Memory.data``, a numpy ``uint8`` array), with seeded random
timing (:class:`Timing`):

* read client: ``req`` is taken when a random ``ready`` is high; each request's beats
  follow in request order after a random latency, with random gaps, ``last`` on the
  final beat of each request; a beat on offer stays (same payload) until the engine
  takes it (back-pressure). Data is read from memory when a beat is first offered.
* write client: ``req`` and ``data`` are taken under random ``ready``; data beats are
  matched to requests in order and written with their strobes as they arrive; a random
  delay after a request's last beat, ``acked`` pulses once for it (in order, at most one
  pulse per cycle).

Every request is recorded (:attr:`Memory.requests`: kind, client, address, beats, cycle)
and checked: an address not aligned to the data width, zero beats or a request reaching
past the memory is a *problem* (:attr:`Memory.problems`), as is an engine stream that
withdraws ``valid`` or changes its payload before the handshake. :meth:`Memory.abort`
drops everything in flight (what a soft reset does at the port). ``Memory.timing`` may be
replaced between operators (e.g. an instant memory for a throughput check, then a slow one).

:class:`EngineBench` runs descriptors through an engine that follows the command
contract of ``hw/vit/engine.py`` (start/desc/busy/done/error/mem_stall), one
:meth:`~EngineBench.step` per cycle with the memory, and checks the contract on the way:
``busy`` from the cycle after ``start`` through ``done``, ``done`` for exactly one cycle,
at ``done`` nothing of the engine left in the memory (every read beat taken, every write
acknowledged). Typical use::

    bench = EngineBench(engine, Memory(1 << 16, data_width=128, reads=engine.reads,
                                       writes=engine.writes, timing=Timing.slow(), seed=1))

    async def scenario(ctx):
        result = await bench.operator(ctx, descriptors.encode("ADD", {...}))
        assert result.error == 0

    bench.simulate(scenario)
    assert bench.problems == []
"""

import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator


@dataclass(frozen=True)
class Timing:
    """The memory's random behaviour; probabilities are per cycle, ranges ``(low, high)`` inclusive."""

    read_latency: tuple[int, int] = (1, 1)  # cycles from taking a read request to its first beat on offer
    read_gap: float = 0.0  # probability that a beat due is not offered in a cycle
    req_ready: float = 1.0  # probability that a client's req.ready is high
    write_ready: float = 1.0  # probability that write data ready is high
    ack_delay: tuple[int, int] = (1, 1)  # cycles from a write request's last beat to its acked pulse

    @classmethod
    def instant(cls) -> "Timing":
        """As fast as a client-level memory can be: every ready high, one cycle of latency."""
        return cls()

    @classmethod
    def slow(cls) -> "Timing":
        """DRAM-like: long, varying latency, gaps and back-pressure everywhere."""
        return cls(read_latency=(3, 25), read_gap=0.3, req_ready=0.6, write_ready=0.6, ack_delay=(2, 30))


@dataclass(frozen=True)
class Request:
    kind: str  # "read" or "write"
    client: int
    addr: int
    beats: int
    cycle: int


class _Pin:
    """One signal of a client, resolved once (a struct field lookup per cycle is slow), set only on change."""

    def __init__(self, value):
        self.value = value.as_value() if hasattr(value, "as_value") else value
        self.last = None

    def set(self, ctx, value: int):
        if value != self.last:
            ctx.set(self.value, value)
            self.last = value

    def get(self, ctx) -> int:
        return ctx.get(self.value)


class _Req:
    """The engine side of a request stream: ``valid`` and the packed ``{addr, beats}`` payload."""

    def __init__(self, req):
        self.valid, self.ready, self.payload = _Pin(req.valid), _Pin(req.ready), _Pin(req.payload)
        self.addr_bits = len(req.payload.addr)
        self.held = None  # (addr, beats) of a request on offer that did not move


@dataclass
class _Read:
    req: _Req
    valid: _Pin
    ready: _Pin
    payload: _Pin  # {data, last}
    data_bits: int
    queue: deque = field(default_factory=deque)  # [addr, beats, next beat, due cycle]
    offer: int | None = None  # the packed payload on offer


@dataclass
class _Write:
    req: _Req
    valid: _Pin
    ready: _Pin
    payload: _Pin  # {data, strb}
    acked: _Pin
    data_bits: int
    requests: deque = field(default_factory=deque)  # [addr, beats, beats written]
    beats: deque = field(default_factory=deque)  # (data, strb) not yet matched to a request
    acks: deque = field(default_factory=deque)  # due cycles of acked pulses
    data_held: tuple | None = None


class Memory:
    """The DRAM model (see the module docstring). ``reads`` / ``writes`` are the engine's client arrays."""

    def __init__(self, size: int, *, data_width: int, reads=(), writes=(), timing: Timing = Timing(), seed: int = 0):
        self.data = np.zeros(size, dtype=np.uint8)
        self.bytes = data_width // 8
        self.timing = timing
        self.rng = random.Random(seed)
        self.cycle = 0
        self.requests: list[Request] = []
        self.problems: list[str] = []
        self.read_beats = self.write_beats = 0
        self._reads = [_Read(_Req(c.req), _Pin(c.data.valid), _Pin(c.data.ready), _Pin(c.data.payload),
                             len(c.data.payload.data)) for c in reads]
        self._writes = [_Write(_Req(c.req), _Pin(c.data.valid), _Pin(c.data.ready), _Pin(c.data.payload),
                               _Pin(c.acked), len(c.data.payload.data)) for c in writes]

    # ---------------------------------------------------------------- state
    def quiet(self) -> bool:
        """Nothing in flight: every request served, every read beat taken, every write acknowledged."""
        return (all(not r.queue and r.offer is None for r in self._reads)
                and all(not w.requests and not w.beats and not w.acks for w in self._writes))

    def abort(self):
        """Drop every request, beat and acknowledgement in flight (a soft reset at the port)."""
        for r in self._reads:
            r.queue.clear()
            r.offer = r.req.held = None
        for w in self._writes:
            w.requests.clear()
            w.beats.clear()
            w.acks.clear()
            w.req.held = w.data_held = None

    def requests_since(self, cycle: int) -> list[Request]:
        return [r for r in self.requests if r.cycle >= cycle]

    # ---------------------------------------------------------------- one cycle
    def step(self, ctx):
        """One clock cycle: drive the memory side, sample the engine side, update. Call once before each tick."""
        t, rng, cycle = self.timing, self.rng, self.cycle
        # 1. drive everything the memory drives (the engine's readies may depend on it)
        for r in self._reads:
            r.req.ready.set(ctx, int(rng.random() < t.req_ready))
            if r.offer is None and r.queue and r.queue[0][3] <= cycle and rng.random() >= t.read_gap:
                addr, beats, beat, _ = r.queue[0]
                r.offer = self._load(addr + beat * self.bytes) | int(beat == beats - 1) << r.data_bits
            r.valid.set(ctx, int(r.offer is not None))
            if r.offer is not None:
                r.payload.set(ctx, r.offer)
        for w in self._writes:
            w.req.ready.set(ctx, int(rng.random() < t.req_ready))
            w.ready.set(ctx, int(rng.random() < t.write_ready))
            w.acked.set(ctx, int(bool(w.acks) and w.acks[0] <= cycle))
        # 2. sample the engine and 3. update
        for i, r in enumerate(self._reads):
            request = self._sample_req(ctx, r.req, f"read client {i} req")
            if request is not None and r.req.ready.last:
                self._record("read", i, *request)
                r.queue.append([request[0], request[1], 0, cycle + rng.randint(*t.read_latency)])
                r.req.held = None
            if r.offer is not None and r.ready.get(ctx):
                self.read_beats += 1
                head = r.queue[0]
                head[2] += 1
                if head[2] == head[1]:
                    r.queue.popleft()
                r.offer = None
        for i, w in enumerate(self._writes):
            request = self._sample_req(ctx, w.req, f"write client {i} req")
            if request is not None and w.req.ready.last:
                self._record("write", i, *request)
                w.requests.append([request[0], request[1], 0])
                w.req.held = None
            if w.valid.get(ctx):
                packed = w.payload.get(ctx)
                beat = (packed & ((1 << w.data_bits) - 1), packed >> w.data_bits)
                if w.data_held is not None and w.data_held != beat:
                    self.problems.append(f"cycle {cycle}: write client {i} data changed before the handshake")
                if w.ready.last:
                    w.beats.append(beat)
                    self.write_beats += 1
                    w.data_held = None
                else:
                    w.data_held = beat
            elif w.data_held is not None:
                self.problems.append(f"cycle {cycle}: write client {i} data valid withdrawn")
                w.data_held = None
            if w.acked.last:
                w.acks.popleft()
            self._match(w)
        self.cycle += 1

    def _sample_req(self, ctx, req: _Req, what: str):
        """``(addr, beats)`` of the request on offer (checking the stream rules), or None."""
        if not req.valid.get(ctx):
            if req.held is not None:
                self.problems.append(f"cycle {self.cycle}: {what} valid withdrawn")
            req.held = None
            return None
        packed = req.payload.get(ctx)
        request = (packed & ((1 << req.addr_bits) - 1), packed >> req.addr_bits)
        if req.held is not None and req.held != request:
            self.problems.append(f"cycle {self.cycle}: {what} changed before the handshake")
        req.held = request
        return request

    def _record(self, kind: str, client: int, addr: int, beats: int):
        self.requests.append(Request(kind, client, addr, beats, self.cycle))
        if addr % self.bytes:
            self.problems.append(f"cycle {self.cycle}: {kind} client {client}: address {addr:#x} not aligned "
                                 f"to {self.bytes} bytes")
        if beats == 0:
            self.problems.append(f"cycle {self.cycle}: {kind} client {client}: a request of 0 beats")
        if addr + beats * self.bytes > self.data.size:
            self.problems.append(f"cycle {self.cycle}: {kind} client {client}: {beats} beats at {addr:#x} reach "
                                 f"past the memory ({self.data.size:#x} bytes)")

    def _load(self, addr: int) -> int:
        if addr + self.bytes > self.data.size:
            return 0
        return int.from_bytes(self.data[addr:addr + self.bytes].tobytes(), "little")

    def _match(self, w: _Write):
        """Write the beats that have their request; schedule the ack of each finished request."""
        while w.requests and w.beats:
            head = w.requests[0]
            data, strb = w.beats.popleft()
            addr = head[0] + head[2] * self.bytes
            if addr + self.bytes <= self.data.size:
                raw = np.frombuffer(data.to_bytes(self.bytes, "little"), dtype=np.uint8)
                mask = np.array([(strb >> b) & 1 for b in range(self.bytes)], dtype=bool)
                self.data[addr:addr + self.bytes][mask] = raw[mask]
            head[2] += 1
            if head[2] == head[1]:
                w.requests.popleft()
                due = self.cycle + self.rng.randint(*self.timing.ack_delay)
                w.acks.append(max(due, w.acks[-1] + 1) if w.acks else due)


@dataclass
class Operator:
    """What :meth:`EngineBench.operator` observed of one operator."""

    error: int | None  # None: stopped by a reset (or the budget) before done
    cycles: int  # done came this many cycles after the start cycle (or the cycles run before the reset)
    mem_stall: int  # cycles with mem_stall high
    requests: list  # the memory requests it made


class EngineBench:
    """An engine, its :class:`Memory` and a clock: runs operators and checks the command contract."""

    def __init__(self, engine, memory: Memory):
        self.engine, self.memory = engine, memory
        self.top = Module()
        self.top.domains.sync = self.domain = ClockDomain("sync")
        self.top.submodules.engine = engine
        self.problems = memory.problems
        self.cycle = 0
        self._busy_expected = False
        self._start = _Pin(engine.start)

    def simulate(self, scenario, *, vcd: str | None = None):
        """Run ``async scenario(ctx)`` (a testbench) to its end."""
        sim = Simulator(self.top)
        sim.add_clock(1e-8)
        sim.add_testbench(scenario)
        if vcd:
            with sim.write_vcd(vcd):
                sim.run()
        else:
            sim.run()

    async def step(self, ctx, *, start: bool = False) -> dict:
        """One cycle: the memory, the engine's command outputs (checked), then the clock edge."""
        e = self.engine
        self._start.set(ctx, int(start))
        self.memory.step(ctx)
        out = {"busy": ctx.get(e.busy), "done": ctx.get(e.done), "error": ctx.get(e.error),
               "mem_stall": ctx.get(e.mem_stall)}
        if out["busy"] != self._busy_expected:
            self.problems.append(f"cycle {self.cycle}: busy = {out['busy']}, expected {int(self._busy_expected)}")
        if out["done"] and not out["busy"]:
            self.problems.append(f"cycle {self.cycle}: done without busy")
        if out["mem_stall"] and not out["busy"]:
            self.problems.append(f"cycle {self.cycle}: mem_stall while idle")
        if start:
            self._busy_expected = True
        if out["done"]:
            self._busy_expected = False
        await ctx.tick()
        self.cycle += 1
        return out

    async def idle(self, ctx, cycles: int):
        for _ in range(cycles):
            await self.step(ctx)

    async def reset(self, ctx):
        """One cycle of reset of the engine; the memory drops what is in flight (as the ports do)."""
        ctx.set(self.domain.rst, 1)
        self.memory.abort()
        await ctx.tick()
        ctx.set(self.domain.rst, 0)
        self.cycle += 1
        self._busy_expected = False

    async def operator(self, ctx, desc: bytes, *, budget: int = 100_000, reset_after: int | None = None) -> Operator:
        """Start the operator of descriptor ``desc`` and run until ``done`` (or ``reset_after`` cycles, then
        a reset). A missing ``done`` within ``budget`` cycles is a problem."""
        ctx.set(self.engine.desc, int.from_bytes(desc, "little"))
        first_request = len(self.memory.requests)
        began = self.cycle
        await self.step(ctx, start=True)
        stalls = 0
        for cycle in range(1, budget + 1):
            if reset_after is not None and cycle > reset_after:
                await self.reset(ctx)
                return Operator(None, cycle, stalls, self.memory.requests[first_request:])
            out = await self.step(ctx)
            stalls += out["mem_stall"]
            if out["done"]:
                if not self.memory.quiet():
                    self.problems.append(f"cycle {self.cycle - 1}: done with memory traffic still in flight")
                return Operator(out["error"], self.cycle - 1 - began, stalls, self.memory.requests[first_request:])
        self.problems.append(f"no done within {budget} cycles of the start at cycle {began}")
        return Operator(None, budget, stalls, self.memory.requests[first_request:])


def check_refused(outcomes, check_cycles: int):
    """Each ``(code, what, memory before, memory after, Operator)`` of a refused descriptor: it ended with
    ``code`` ``check_cycles + 1`` cycles after its start, with no memory request and the memory unchanged."""
    for code, what, before, after, op in outcomes:
        assert op.error == code, what
        assert op.cycles == check_cycles + 1, what
        assert op.requests == [], what
        assert np.array_equal(before, after), what
