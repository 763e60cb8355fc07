"""The accelerator's AXI4 master port (``hw/vit/axi.py``) in Amaranth's simulator, plus Verilog checks.

A Python AXI slave memory (``tests/axi_slave.py``) with seeded random stalls on every
channel, random latencies and optional error responses checks the AXI rules every cycle.
Read clients check every beat against the memory and the ``last`` flags; write clients
check at each ``acked`` pulse that the request is in memory, and at the end the whole
memory is compared with the expected one (so nothing else was written). Then: abort in
the middle of traffic and normal traffic after it, sticky errors and ``clear``, full
bandwidth without stalls, zero clients on a side, parameter errors, flat port names and
Verilator lint of the converted port; and (``rtl``) the converted port against
cocotbext-axi's ``AxiRam`` in cocotb on Verilator.
"""

import json
import os
import random
import re
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from axi_slave import NO_STALLS, PAGE, RANDOM_STALLS, AxiSlave, Stalls
from conftest import BUILD_ROOT
from sim_pins import Pins

from hw.vit.axi import (
    AXI4_SIGNALS,
    AXI4LITE_SIGNALS,
    Axi4LiteSignature,
    Axi4Signature,
    AxiMasterPort,
    ReadClientSignature,
    WriteClientSignature,
    connect_flat,
    flat_members,
    read_data_layout,
    read_request_layout,
    write_data_layout,
    write_request_layout,
)

MEMORY_BYTES = 256 * 1024
READ_REGION = (0, 128 * 1024)          # read clients read here; nothing writes it
WRITE_REGIONS = ((128 * 1024, 192 * 1024), (192 * 1024, 256 * 1024))  # phase 1, phase 2 (after an abort)


@dataclass(frozen=True)
class Config:
    data_width: int
    reads: int
    writes: int
    max_burst: int = 16
    max_reads: int = 4
    max_writes: int = 4
    read_fifo_depth: int | None = None
    addr_width: int = 32
    base: int = 0

    @property
    def bytes(self) -> int:
        return self.data_width // 8

    def build(self) -> AxiMasterPort:
        return AxiMasterPort(addr_width=self.addr_width, data_width=self.data_width, read_clients=self.reads,
                             write_clients=self.writes, max_burst=self.max_burst, max_reads=self.max_reads,
                             max_writes=self.max_writes, read_fifo_depth=self.read_fifo_depth)

    def __str__(self):
        default = Config(self.data_width, self.reads, self.writes)
        extra = "".join(f"_{short}{getattr(self, name)}" for short, name in
                        (("mb", "max_burst"), ("or", "max_reads"), ("ow", "max_writes"))
                        if getattr(self, name) != getattr(default, name))
        return f"d{self.data_width}_r{self.reads}w{self.writes}{extra}"


CONFIGS = [
    Config(64, 1, 1),
    Config(128, 2, 2),
    Config(256, 3, 3),
    Config(64, 3, 2, max_burst=4, max_reads=2, max_writes=1, read_fifo_depth=5),
    Config(128, 1, 3, max_burst=1, max_reads=1, max_writes=2),
    Config(256, 2, 1, max_burst=256, max_reads=3, max_writes=3, addr_width=40, base=0x80_0000_0000),
]


# --- clients -----------------------------------------------------------------------------------------

class Client:
    """What both client kinds share: the name prefix of their pins and the request stream."""

    def __init__(self, name, iface, cfg: Config, slave: AxiSlave, rng, problems, *, valid_prob=0.7):
        self.name, self.iface = name, iface
        self.cfg, self.slave, self.rng, self.problems = cfg, slave, rng, problems
        self.valid_prob = valid_prob
        self.pending = deque()    # (addr, beats) not yet taken by the port
        self.offer = False        # a request is on offer (held until taken)

    def offer_request(self, pins):
        n = self.name
        self.offer = bool(self.pending) and (self.offer or self.rng.random() < self.valid_prob)
        pins.set(n + "req_valid", self.offer)
        if self.offer:
            addr, beats = self.pending[0]
            pins.set(n + "req_payload", addr | beats << self.cfg.addr_width)

    def request_taken(self, out):
        """The request the port took this cycle, if any."""
        if self.offer and out[self.name + "req_ready"]:
            self.offer = False
            return self.pending.popleft()
        return None


class ReadClient(Client):
    """An engine's read side: offers requests (random gaps), takes data (random back-pressure), checks it."""

    def __init__(self, name, iface, cfg, slave, rng, problems, *, valid_prob=0.7, ready_prob=0.7):
        super().__init__(name, iface, cfg, slave, rng, problems, valid_prob=valid_prob)
        self.ready_prob = ready_prob
        self.expected = deque()
        self.ready = False
        self.beats = self.requests_done = 0
        self.last_beat_cycle = None

    def pins_inputs(self):
        i, n = self.iface, self.name
        return {n + "req_valid": i.req.valid, n + "req_payload": i.req.payload, n + "data_ready": i.data.ready}

    def pins_outputs(self):
        i, n = self.iface, self.name
        return {n + "req_ready": i.req.ready, n + "data_valid": i.data.valid, n + "data_payload": i.data.payload}

    def add(self, addr, beats):
        self.pending.append((addr, beats))

    def reset(self):
        self.pending.clear()
        self.expected.clear()
        self.offer = False

    @property
    def done(self) -> bool:
        return not self.pending and not self.expected

    def drive(self, pins):
        self.offer_request(pins)
        self.ready = self.rng.random() < self.ready_prob
        pins.set(self.name + "data_ready", self.ready)

    def watch(self, out, cycle):
        n = self.name
        taken = self.request_taken(out)
        if taken:
            addr, beats = taken
            self.expected.extend((addr + i * self.cfg.bytes, i == beats - 1) for i in range(beats))
        if self.ready and out[n + "data_valid"]:
            value = out[n + "data_payload"]
            data, last = value & ((1 << self.cfg.data_width) - 1), value >> self.cfg.data_width
            if not self.expected:
                self.problems.append(f"cycle {cycle}: a read beat nobody asked for")
                return
            addr, want_last = self.expected.popleft()
            if data != self.slave.read_beat(addr):
                self.problems.append(f"cycle {cycle}: read beat of {addr:#x} is {data:#x}, "
                                     f"memory holds {self.slave.read_beat(addr):#x}")
            if last != want_last:
                self.problems.append(f"cycle {cycle}: read beat of {addr:#x} has last={last}")
            self.beats += 1
            self.requests_done += last
            self.last_beat_cycle = cycle


class WriteClient(Client):
    """An engine's write side: requests and their data beats on two streams; checks each ``acked``."""

    def __init__(self, name, iface, cfg, slave, rng, problems, *, valid_prob=0.7):
        super().__init__(name, iface, cfg, slave, rng, problems, valid_prob=valid_prob)
        self.beats, self.unacked = deque(), deque()
        self.data_offer = False
        self.consumed = self.acks = 0
        self.accepted_cycle = None

    def pins_inputs(self):
        i, n = self.iface, self.name
        return {n + "req_valid": i.req.valid, n + "req_payload": i.req.payload, n + "data_valid": i.data.valid,
                n + "data_payload": i.data.payload}

    def pins_outputs(self):
        i, n = self.iface, self.name
        return {n + "req_ready": i.req.ready, n + "data_ready": i.data.ready, n + "acked": i.acked}

    def add(self, addr, data: list[tuple[int, int]]):
        """A request of these beats; with no beats, a zero-beat request (the port drops it: no ``acked``)."""
        self.pending.append((addr, len(data)))
        self.beats.extend(data)
        if data:
            self.unacked.append((addr, data))

    def reset(self):
        self.pending.clear()
        self.beats.clear()
        self.unacked.clear()
        self.offer = self.data_offer = False

    @property
    def done(self) -> bool:
        return not self.pending and not self.beats and not self.unacked

    def drive(self, pins):
        n = self.name
        self.offer_request(pins)
        self.data_offer = bool(self.beats) and (self.data_offer or self.rng.random() < self.valid_prob)
        pins.set(n + "data_valid", self.data_offer)
        if self.data_offer:
            data, strb = self.beats[0]
            pins.set(n + "data_payload", data | strb << self.cfg.data_width)

    def watch(self, out, cycle):
        n = self.name
        if self.request_taken(out) and self.accepted_cycle is None:
            self.accepted_cycle = cycle
        if self.data_offer and out[n + "data_ready"]:
            self.beats.popleft()
            self.data_offer = False
            self.consumed += 1
        if out[n + "acked"]:
            if not self.unacked:
                self.problems.append(f"cycle {cycle}: acked without a request waiting for it")
                return
            addr, data = self.unacked.popleft()
            self.acks += 1
            for i, (value, strb) in enumerate(data):
                held = self.slave.read_beat(addr + i * self.cfg.bytes)
                mask = _strobe_mask(strb, self.cfg.bytes)
                if held & mask != value & mask:
                    self.problems.append(f"cycle {cycle}: acked, but beat {i} of the request at {addr:#x} "
                                         "is not in memory")
                    break


def _strobe_mask(strb: int, nbytes: int) -> int:
    return sum(0xFF << 8 * i for i in range(nbytes) if strb >> i & 1)


def apply_write(memory: bytearray, base: int, addr: int, data, nbytes: int):
    for i, (value, strb) in enumerate(data):
        raw = value.to_bytes(nbytes, "little")
        offset = addr - base + i * nbytes
        for b in range(nbytes):
            if strb >> b & 1:
                memory[offset + b] = raw[b]


# --- requests -----------------------------------------------------------------------------------------

def request_lengths(cfg: Config, rng) -> list[int]:
    """1, max_burst, max_burst + 1, 2 max_burst + 1, random, short; at most 150 beats (simulation time)."""
    mb = cfg.max_burst
    lengths = [1, mb, mb + 1, 2 * mb + 1, rng.randint(1, 3 * mb + 5), rng.randint(1, 4)]
    return [min(n, 150) for n in lengths]


def read_requests(cfg: Config, rng, count: int) -> list[tuple[int, int]]:
    """Random lengths (1, max_burst, max_burst + 1, ...), a third placed across a 4 KB boundary."""
    lo, hi = READ_REGION
    requests = []
    for n in range(count):
        beats = request_lengths(cfg, rng)[n % 6] if n < 6 else rng.choice(request_lengths(cfg, rng))
        if beats > 1 and rng.random() < 0.35:
            boundary = rng.randrange(lo // PAGE + 1, hi // PAGE) * PAGE
            addr = boundary - rng.randint(1, beats - 1) * cfg.bytes
        else:
            addr = lo + rng.randrange((hi - lo) // cfg.bytes - beats) * cfg.bytes
        if lo <= addr and addr + beats * cfg.bytes <= hi:
            requests.append((cfg.base + addr, beats))
        if n == 2:
            requests.append((cfg.base + addr, 0))  # dropped by the port: no beats, no last
    return requests


def write_requests(cfg: Config, rng, count: int, region, client: int, clients: int, *, strobes=True):
    """Non-overlapping requests in the client's share of ``region``; data with random strobes."""
    share = (region[1] - region[0]) // clients // cfg.bytes * cfg.bytes
    cursor, end = region[0] + client * share, region[0] + (client + 1) * share
    full = (1 << cfg.bytes) - 1
    requests = []
    for n in range(count):
        beats = request_lengths(cfg, rng)[n % 6] if n < 6 else rng.choice(request_lengths(cfg, rng))
        if beats > 1 and rng.random() < 0.35:  # end the gap just before a page boundary: the request crosses it
            cursor = (cursor // PAGE + 1) * PAGE - rng.randint(1, beats - 1) * cfg.bytes
        else:
            cursor += rng.randint(0, 3) * cfg.bytes
        if cursor + beats * cfg.bytes > end:
            break
        data = []
        for _ in range(beats):
            r = rng.random()
            strb = full if r < 0.5 or not strobes else (0 if r < 0.6 else rng.getrandbits(cfg.bytes))
            if not strobes:
                strb = full if r < 0.7 else rng.getrandbits(cfg.bytes) | 1
            data.append((rng.getrandbits(cfg.data_width), strb))
        requests.append((cfg.base + cursor, data))
        cursor += beats * cfg.bytes
        if n == 2:
            requests.append((cfg.base + cursor, []))  # dropped by the port: no beats, no acked
    return requests


# --- the bench ------------------------------------------------------------------------------------------

class Bench:
    """The port, the slave, the clients and one cycle of all of them."""

    STATUS = ("idle", "read_error", "write_error", "read_beat", "write_bytes")

    def __init__(self, cfg: Config, stalls: Stalls, seed: int, *, valid_prob=0.7, ready_prob=0.7):
        self.cfg = cfg
        self.dut = dut = cfg.build()
        self.rng = random.Random(seed)
        self.initial = bytearray(self.rng.getrandbits(8) for _ in range(MEMORY_BYTES))
        self.slave = AxiSlave(dut.axi, bytearray(self.initial), base=cfg.base, data_width=cfg.data_width,
                              max_burst=cfg.max_burst, max_reads=cfg.max_reads, max_writes=cfg.max_writes,
                              stalls=stalls, rng=random.Random(seed + 1))
        self.problems = self.slave.problems
        self.readers = [ReadClient(f"r{c}_", dut.reads[c], cfg, self.slave, random.Random(seed + 10 + c),
                                   self.problems, valid_prob=valid_prob, ready_prob=ready_prob)
                        for c in range(cfg.reads)]
        self.writers = [WriteClient(f"w{c}_", dut.writes[c], cfg, self.slave, random.Random(seed + 20 + c),
                                    self.problems, valid_prob=valid_prob) for c in range(cfg.writes)]
        inputs = {**self.slave.pins_inputs(), "drain": dut.drain, "clear": dut.clear}
        outputs = {**self.slave.pins_outputs(), **{name: getattr(dut, name) for name in self.STATUS}}
        for client in self.clients:
            inputs.update(client.pins_inputs())
            outputs.update(client.pins_outputs())
        self.pins = Pins(inputs, outputs)
        self.out = {}                            # the outputs of the last cycle stepped
        self.cycle = 0
        self.drain = self.clear = 0
        self.read_beats = self.write_bytes = 0   # the port's counter feeds, summed

    @property
    def clients(self):
        return self.readers + self.writers

    @property
    def clients_done(self) -> bool:
        return all(c.done for c in self.clients)

    async def reset(self, ctx, cd, cycles=4):
        ctx.set(cd.rst, 1)
        self.slave.drive_reset(self.pins)
        self.pins.flush(ctx)
        for _ in range(cycles):
            self.slave.check_reset(self.pins.read(ctx), self.cycle)
            await ctx.tick()
            self.slave.check_reset(self.pins.read(ctx), self.cycle)
            self.cycle += 1
        ctx.set(cd.rst, 0)
        self.slave.drive_idle(self.pins)
        self.pins.flush(ctx)

    async def step(self, ctx):
        slave, pins = self.slave, self.pins
        before = pins.read(ctx, slave.OUTPUTS)
        slave.drive(pins, self.cycle)
        for client in self.clients:
            client.drive(pins)
        pins.set("drain", self.drain)
        pins.set("clear", self.clear)
        pins.flush(ctx)
        self.out = out = pins.read(ctx)
        slave.watch(out, before, self.cycle)
        for client in self.clients:
            client.watch(out, self.cycle)
        self.read_beats += out["read_beat"]
        self.write_bytes += out["write_bytes"]
        if out["read_error"] and not slave.counts["read_errors"]:
            self.problems.append(f"cycle {self.cycle}: read_error without an error response")
        if out["write_error"] and not slave.counts["write_errors"]:
            self.problems.append(f"cycle {self.cycle}: write_error without an error response")
        await ctx.tick()
        self.cycle += 1

    async def run_until(self, ctx, condition, limit: int, what: str):
        for _ in range(limit):
            if condition():
                return True
            await self.step(ctx)
        self.problems.append(f"{what}: not reached within {limit} cycles (cycle {self.cycle})")
        return False

    def budget(self) -> int:
        """Cycles enough for the queued traffic under random stalls (a bug that hangs fails fast)."""
        beats = (sum(b for r in self.readers for _, b in r.pending) + sum(len(r.expected) for r in self.readers)
                 + sum(len(w.beats) for w in self.writers))
        return 20 * beats + 1000

    def traffic_done(self):
        """All clients done and the port idle (as of the last cycle stepped)."""
        return lambda: self.clients_done and self.out.get("idle", 0)

    def simulate(self, scenario):
        top = Module()
        top.domains.sync = cd = self.cd = ClockDomain("sync")
        top.submodules.dut = self.dut

        async def bench(ctx):
            await self.reset(ctx, cd)
            await scenario(self, ctx)

        sim = Simulator(top)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return self

    def check_counters(self):
        assert self.read_beats == self.slave.counts["r"], "read_beat pulses != R beats"
        assert self.write_bytes == self.slave.counts["w_bytes"], "write_bytes sum != strobed bytes of W beats"


def load_traffic(bench: Bench, rng, *, reads_per_client: int, writes_per_client: int, region, strobes=True):
    """Queue random requests on every client; returns the expected memory after the writes."""
    cfg = bench.cfg
    expected = bytearray(bench.slave.memory)
    for c, reader in enumerate(bench.readers):
        for addr, beats in read_requests(cfg, rng, reads_per_client):
            reader.add(addr, beats)
    for c, writer in enumerate(bench.writers):
        for addr, data in write_requests(cfg, rng, writes_per_client, region, c, cfg.writes, strobes=strobes):
            writer.add(addr, data)
            apply_write(expected, cfg.base, addr, data, cfg.bytes)
    return expected


# --- random traffic --------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_random_traffic_under_random_stalls(cfg):
    """Every read returns the memory in request order; every write lands with its strobes; acks count."""
    seed = sum(map(ord, str(cfg)))
    counts = {}

    async def scenario(bench, ctx):
        rng = random.Random(seed)
        long_bursts = cfg.max_burst > 16  # requests of up to 150 beats: fewer of them
        counts["expected"] = load_traffic(bench, rng, reads_per_client=3 if long_bursts else 10,
                                          writes_per_client=3 if long_bursts else 8, region=WRITE_REGIONS[0])
        counts["requests"] = ([sum(1 for _, b in r.pending if b) for r in bench.readers],
                              [sum(1 for _, b in w.pending if b) for w in bench.writers])
        await bench.run_until(ctx, bench.traffic_done(), bench.budget(), "all traffic done")
        for _ in range(5):  # nothing moves once idle
            await bench.step(ctx)

    bench = Bench(cfg, RANDOM_STALLS, seed, valid_prob=0.7, ready_prob=0.6).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    assert bench.slave.quiet
    reads, writes = counts["requests"]
    assert [r.requests_done for r in bench.readers] == reads
    assert [w.acks for w in bench.writers] == writes
    assert bench.slave.memory == counts["expected"]
    bench.check_counters()
    assert sum(writes) == 0 or bench.slave.counts["aw"] >= sum(writes)


# --- abort ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cfg,abort_cycles", [(CONFIGS[1], 1), (CONFIGS[2], 3), (CONFIGS[3], 2)],
                         ids=lambda v: str(v))
def test_abort_mid_traffic_then_normal_traffic(cfg, abort_cycles):
    """Abort drains (reads discarded, chosen write bursts finished with zero strobes, no client data taken),
    ``idle`` means the AXI side is quiet, and traffic after it is exact."""
    seed = 1000 + sum(map(ord, str(cfg)))
    facts = {}

    async def scenario(bench, ctx):
        rng = random.Random(seed)
        load_traffic(bench, rng, reads_per_client=10, writes_per_client=8, region=WRITE_REGIONS[0], strobes=False)
        await bench.run_until(ctx, lambda: bench.slave.counts["r"] > 60 and bench.slave.counts["w"] > 30,
                              bench.budget(), "traffic under way")
        facts["in_flight"] = len(bench.slave.reads) + bench.slave.writes_outstanding
        for client in bench.clients:  # the engines are soft-reset with the abort
            client.reset()
        moving = [name for client in bench.clients for name in client.pins_outputs() if name[-5:] != "yload"]
        drained = 0
        while drained < abort_cycles or not bench.out["idle"]:
            bench.drain = int(drained < abort_cycles)
            await bench.step(ctx)
            drained += 1
            for name in moving:
                if bench.out[name] and not bench.out["idle"]:
                    bench.problems.append(f"cycle {bench.cycle - 1}: {name} high while draining")
            if drained > 5000:
                bench.problems.append("abort: idle never came")
                return
        facts["drain_cycles"] = drained
        facts["quiet_at_idle"] = bench.slave.quiet
        # Every W beat with a strobe carried client data (the test's client beats all have one).
        facts["strobed_vs_consumed"] = (bench.slave.counts["w_strobed"], sum(w.consumed for w in bench.writers))
        # Phase 2: fresh engines, fresh requests in another write region.
        before = bytearray(bench.slave.memory)
        expected = load_traffic(bench, rng, reads_per_client=6, writes_per_client=5, region=WRITE_REGIONS[1])
        facts["phase2"] = ([sum(1 for _, b in r.pending if b) for r in bench.readers],
                           [sum(1 for _, b in w.pending if b) for w in bench.writers],
                           [r.requests_done for r in bench.readers], [w.acks for w in bench.writers])
        await bench.run_until(ctx, bench.traffic_done(), bench.budget(), "phase 2 traffic done")
        facts["phase2_done"] = ([r.requests_done for r in bench.readers], [w.acks for w in bench.writers])
        # Phase 1 spans may hold old or new bytes; everything else must be exactly as expected.
        lo, hi = WRITE_REGIONS[0]
        facts["memory_ok"] = (bench.slave.memory[:lo] == expected[:lo] and bench.slave.memory[hi:] == expected[hi:]
                              and bench.slave.memory[lo:hi] == before[lo:hi])

    bench = Bench(cfg, RANDOM_STALLS, seed).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    assert facts["in_flight"] > 0, "the abort should hit traffic in flight"
    assert facts["quiet_at_idle"]
    strobed, consumed = facts["strobed_vs_consumed"]
    assert strobed == consumed
    reads, writes, reads_before, acks_before = facts["phase2"]
    assert facts["phase2_done"] == ([a + b for a, b in zip(reads, reads_before)],
                                    [a + b for a, b in zip(writes, acks_before)])
    assert facts["memory_ok"]
    bench.check_counters()


@pytest.mark.parametrize("cfg", [CONFIGS[1]], ids=str)
def test_reset_mid_traffic_holds_valid_and_ready_low(cfg):
    """``rst`` rising while bursts are queued (VALID high on AR, AW or W): every VALID and READY output is
    low from the first reset cycle on -- before the registers behind them are cleared -- and after the
    reset the port is idle and moves nothing."""
    seed = 2000 + sum(map(ord, str(cfg)))
    facts = {}

    async def scenario(bench, ctx):
        rng = random.Random(seed)
        load_traffic(bench, rng, reads_per_client=10, writes_per_client=8, region=WRITE_REGIONS[0], strobes=False)
        await bench.run_until(ctx, lambda: bench.slave.counts["r"] > 20 and any(
            bench.pins.read(ctx)[name] for name in ("arvalid", "awvalid", "wvalid")), bench.budget(),
            "a burst queued")
        facts["offered"] = {name for name in ("arvalid", "awvalid", "wvalid") if bench.pins.read(ctx)[name]}
        for client in bench.clients:
            client.reset()
        await bench.reset(ctx, bench.cd)
        for client in bench.clients:  # nothing to ask for
            client.drive(bench.pins)
        bench.pins.flush(ctx)
        for _ in range(8):
            out = bench.pins.read(ctx)
            facts.setdefault("after", []).append((out["idle"], *(out[n] for n in ("arvalid", "awvalid", "wvalid"))))
            await ctx.tick()

    bench = Bench(cfg, RANDOM_STALLS, seed).simulate(scenario)
    assert facts["offered"], "the reset should hit a queued burst"
    assert not bench.problems, bench.problems[:10]
    assert all(after == (1, 0, 0, 0) for after in facts["after"]), facts["after"]


# --- errors ---------------------------------------------------------------------------------------------

def test_error_responses_set_sticky_errors_until_clear():
    cfg = Config(128, 2, 2)
    facts = {}

    async def scenario(bench, ctx):
        rng = random.Random(5)
        load_traffic(bench, rng, reads_per_client=4, writes_per_client=4, region=WRITE_REGIONS[0])
        await bench.run_until(ctx, bench.traffic_done(), bench.budget(), "error traffic done")
        facts["errors_seen"] = bench.slave.counts["read_errors"], bench.slave.counts["write_errors"]
        facts["flags"] = bench.out["read_error"], bench.out["write_error"]
        bench.clear = 1
        await bench.step(ctx)
        bench.clear = 0
        await bench.step(ctx)
        facts["after_clear"] = bench.out["read_error"], bench.out["write_error"]
        bench.slave.stalls = replace(bench.slave.stalls, read_error=0.0, write_error=0.0)
        bench.slave.counts["read_errors"] = bench.slave.counts["write_errors"] = 0  # later flags need new errors
        expected = load_traffic(bench, rng, reads_per_client=3, writes_per_client=3, region=WRITE_REGIONS[1])
        await bench.run_until(ctx, bench.traffic_done(), bench.budget(), "clean traffic done")
        facts["clean"] = bench.out["read_error"], bench.out["write_error"], bench.slave.memory == expected

    stalls = replace(RANDOM_STALLS, read_error=0.3, write_error=0.3)
    bench = Bench(cfg, stalls, 77).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    read_errors, write_errors = facts["errors_seen"]
    assert read_errors > 0 and write_errors > 0
    assert facts["flags"] == (1, 1)
    assert facts["after_clear"] == (0, 0)
    assert facts["clean"] == (0, 0, True)


# --- bandwidth ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data_width", [64, 128, 256])
def test_full_bandwidth_without_stalls(data_width):
    """No stalls: N read beats reach the client in about N cycles, N write beats leave in about N cycles."""
    cfg = Config(data_width, 1, 1)
    beats = 256
    facts = {}

    async def scenario(bench, ctx):
        rng = random.Random(9)
        reader, writer = bench.readers[0], bench.writers[0]
        reader.add(cfg.base + 3 * PAGE - 5 * cfg.bytes, beats)        # crosses 4 KB boundaries too
        data = [(rng.getrandbits(cfg.data_width), (1 << cfg.bytes) - 1) for _ in range(beats)]
        writer.add(cfg.base + WRITE_REGIONS[0][0] + 7 * cfg.bytes, data)
        start = bench.cycle
        await bench.run_until(ctx, lambda: reader.done, 4 * beats, "reads done")
        facts["read"] = reader.last_beat_cycle - start + 1
        await bench.run_until(ctx, bench.traffic_done(), 4 * beats, "writes done")
        facts["write"] = bench.slave.last_w - writer.accepted_cycle + 1

    bench = Bench(cfg, NO_STALLS, 3, valid_prob=1.0, ready_prob=1.0).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    # Overhead: request queue, splitter, arbiter, AR queue, slave latency, R stage, receive FIFO.
    assert facts["read"] <= beats + 10, facts
    # Reads and writes share nothing: the write burst streams at the same time.
    assert facts["write"] <= beats + 6, facts


@pytest.mark.parametrize("kind", ["one_request", "one_beat_requests"])
def test_a_short_burst_every_cycle(kind):
    """max_burst = 1 (or one-beat requests): a new AR and a new AW every cycle when nothing stalls."""
    cfg = Config(64, 1, 1, max_burst=1 if kind == "one_request" else 16, max_reads=8, max_writes=8,
                 read_fifo_depth=16)
    n = 64
    facts = {}

    async def scenario(bench, ctx):
        reader, writer = bench.readers[0], bench.writers[0]
        wbase = cfg.base + WRITE_REGIONS[0][0]
        if kind == "one_request":
            reader.add(cfg.base + 64, n)
            writer.add(wbase, [(i, 0xFF) for i in range(n)])
        else:
            for i in range(n):
                reader.add(cfg.base + 8 * i, 1)
                writer.add(wbase + 8 * i, [(i, 0xFF)])
        ar, aw = [], []
        while not bench.traffic_done()() and bench.cycle < 20 * n:
            await bench.step(ctx)
            if bench.out["arvalid"] and bench.slave.ready["arready"]:
                ar.append(bench.cycle)
            if bench.out["awvalid"] and bench.slave.ready["awready"]:
                aw.append(bench.cycle)
        facts["ar"], facts["aw"] = ar, aw

    bench = Bench(cfg, NO_STALLS, 4, valid_prob=1.0, ready_prob=1.0).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    assert len(facts["ar"]) == len(facts["aw"]) == n
    assert facts["ar"][-1] - facts["ar"][0] == n - 1, "one AR per cycle"
    assert facts["aw"][-1] - facts["aw"][0] == n - 1, "one AW per cycle"


def test_round_robin_takes_turns():
    """Three clients with long requests and no stalls: bursts go c0, c1, c2, c0, ... (no client starves)."""
    cfg = Config(64, 3, 3, max_burst=4)
    facts = {}
    regions = [cfg.base + c * 8 * PAGE for c in range(3)]

    async def scenario(bench, ctx):
        for c in range(3):
            bench.readers[c].add(regions[c], 40)
            bench.writers[c].add(WRITE_REGIONS[0][0] + regions[c], [(c, 0xFF)] * 40)
        ar, aw = [], []
        while not bench.traffic_done()() and bench.cycle < 2000:
            await bench.step(ctx)
            if bench.out["arvalid"] and bench.slave.ready["arready"]:
                ar.append(bench.out["araddr"] // (8 * PAGE))
            if bench.out["awvalid"] and bench.slave.ready["awready"]:
                aw.append((bench.out["awaddr"] - WRITE_REGIONS[0][0]) // (8 * PAGE))
        facts["ar"], facts["aw"] = ar, aw

    bench = Bench(cfg, NO_STALLS, 5, valid_prob=1.0, ready_prob=1.0).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    for order in (facts["ar"], facts["aw"]):
        assert len(order) == 30
        assert all(len(set(order[i:i + 3])) == 3 for i in range(0, 30, 3)), order


def test_a_slow_reader_blocks_nobody():
    """Reader 0 takes a beat now and then, reader 1 always: the R channel keeps streaming (reader 1 is not
    held up behind reader 0), and reader 0's receive FIFO never overflows (a burst waits for its credit)."""
    cfg = Config(128, 2, 0, max_burst=8, max_reads=4)
    facts = {}

    async def scenario(bench, ctx):
        slow, fast = bench.readers
        slow.ready_prob = 0.04
        for i in range(4):
            slow.add(cfg.base + i * PAGE, 3 * cfg.max_burst)
        for i in range(6):
            fast.add(cfg.base + (16 + i) * PAGE + 16, 40)
        await bench.run_until(ctx, lambda: fast.done, 1000, "fast reader done")
        facts["fast"] = fast.last_beat_cycle - 4  # after the 4 reset cycles
        facts["r_beats_then"] = bench.slave.counts["r"]
        facts["slow_beats_then"] = slow.beats
        slow.ready_prob = 1.0
        await bench.run_until(ctx, bench.traffic_done(), bench.budget(), "slow reader done")

    bench = Bench(cfg, NO_STALLS, 6, valid_prob=1.0, ready_prob=1.0).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    # The R channel moved a beat nearly every cycle (the slow reader's FIFO-full beats included).
    assert facts["r_beats_then"] >= facts["fast"] - 10, facts
    assert facts["slow_beats_then"] < 4 * 3 * cfg.max_burst // 2, facts
    assert [r.requests_done for r in bench.readers] == [4, 6]


# --- zero clients, parameters, signatures ------------------------------------------------------------------

@pytest.mark.parametrize("reads,writes", [(0, 2), (2, 0)])
def test_one_sided_port(reads, writes):
    cfg = Config(64, reads, writes)
    facts = {}

    async def scenario(bench, ctx):
        facts["expected"] = load_traffic(bench, random.Random(6), reads_per_client=5, writes_per_client=5,
                                         region=WRITE_REGIONS[0])
        await bench.run_until(ctx, bench.traffic_done(), bench.budget(), "traffic done")
        facts["silent"] = [bench.out[name] for name in (("awvalid", "wvalid", "bready") if not writes
                                                        else ("arvalid", "rready"))]

    bench = Bench(cfg, RANDOM_STALLS, 8).simulate(scenario)
    assert not bench.problems, bench.problems[:10]
    assert bench.slave.memory == facts["expected"]
    assert facts["silent"] == [0] * len(facts["silent"])
    assert bench.slave.counts["r"] == sum(r.beats for r in bench.readers)


@pytest.mark.parametrize("kwargs,message", [
    ({"data_width": 48}, "data_width: 48 is not allowed; expected a power of two 8 .. 1024"),
    ({"addr_width": 8}, "addr_width: 8 is not allowed; expected an integer 12 .. 64"),
    ({"max_burst": 0}, "max_burst: 0 is not allowed; expected an integer 1 .. 256"),
    ({"max_burst": 257}, "max_burst: 257 is not allowed; expected an integer 1 .. 256"),
    ({"max_reads": 0}, "max_reads: 0 is not allowed; expected an integer 1 .. 256"),
    ({"read_clients": -1}, "read_clients: -1 is not allowed; expected an integer 0 .. 64"),
    ({"read_fifo_depth": 8}, "read_fifo_depth: 8 is not allowed; expected an integer >= 16"),
])
def test_bad_parameters_name_the_field(kwargs, message):
    args = {"addr_width": 32, "data_width": 64, "read_clients": 1, "write_clients": 1, **kwargs}
    with pytest.raises(ValueError) as error:
        AxiMasterPort(**args)
    assert str(error.value) == message


AXI4_NAMES = ("awid awaddr awlen awsize awburst awlock awcache awprot awqos awvalid awready wdata wstrb wlast wvalid "
              "wready bid bresp bvalid bready arid araddr arlen arsize arburst arlock arcache arprot arqos arvalid "
              "arready rid rdata rresp rlast rvalid rready").split()
AXI4LITE_NAMES = ("awaddr awprot awvalid awready wdata wstrb wvalid wready bresp bvalid bready araddr arprot arvalid "
                  "arready rdata rresp rvalid rready").split()


def test_signal_lists_and_signatures():
    assert [s.name for s in AXI4_SIGNALS] == AXI4_NAMES
    assert [s.name for s in AXI4LITE_SIGNALS] == AXI4LITE_NAMES
    sig = Axi4Signature(addr_width=40, data_width=256, id_width=3)
    widths = {name: Shape.cast(m.shape).width for name, m in sig.members.items()}
    assert (widths["awaddr"], widths["wdata"], widths["wstrb"], widths["rid"], widths["arlen"]) == (40, 256, 32, 3, 8)
    inputs = {name for name, m in sig.members.items() if m.flow == In}
    assert inputs == {"awready", "wready", "bid", "bresp", "bvalid", "arready", "rid", "rdata", "rresp", "rlast",
                      "rvalid"}
    lite = Axi4LiteSignature(addr_width=12)
    assert {name for name, m in lite.members.items() if m.flow == In} == {
        "awready", "wready", "bresp", "bvalid", "arready", "rdata", "rresp", "rvalid"}
    assert Shape.cast(lite.members["wstrb"].shape).width == 4
    with pytest.raises(ValueError, match="data_width: 16 is not allowed; AXI4-Lite data is 32 or 64 bits"):
        Axi4LiteSignature(addr_width=12, data_width=16)
    assert list(read_request_layout(32)._fields) == ["addr", "beats"] and read_request_layout(32).size == 48
    assert write_request_layout(20) == read_request_layout(20)
    assert read_data_layout(128).size == 129 and write_data_layout(128).size == 144
    port = Config(128, 2, 1).build()
    assert port.signature.members["reads"] == In(ReadClientSignature(32, 128)).array(2)
    assert port.signature.members["writes"] == In(WriteClientSignature(32, 128)).array(1)
    assert flat_members("m_axi0", sig)["m_axi0_rdata"] == In(256)


class _Top(wiring.Component):
    """The port behind flat ``m_axi`` ports, plus an AXI4-Lite slave pass-through (flat ``s_axil`` in, flat
    ``m_axil`` out) to check :func:`connect_flat` on a flipped signature. Client ports stay nested."""

    def __init__(self, cfg: Config, prefix="m_axi0"):
        self.cfg, self.prefix = cfg, prefix
        self.port = cfg.build()
        lite = Axi4LiteSignature(addr_width=12)
        super().__init__({
            **flat_members(prefix, self.port.axi.signature),
            **flat_members("s_axil", lite.flip()),
            **flat_members("m_axil", lite),
            **{name: member for name, member in self.port.signature.members.items() if name != "axi"},
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.port = port = self.port
        connect_flat(m, self.prefix, self, port.axi)
        # A flipped nested interface (what a CSR block's bus looks like) between two flat sides.
        bus = Axi4LiteSignature(addr_width=12).flip().create()
        connect_flat(m, "s_axil", self, bus)
        connect_flat(m, "m_axil", self, wiring.flipped(bus))
        for c in range(self.cfg.reads):
            wiring.connect(m, wiring.flipped(self.reads[c]), port.reads[c])
        for c in range(self.cfg.writes):
            wiring.connect(m, wiring.flipped(self.writes[c]), port.writes[c])
        m.d.comb += [port.drain.eq(self.drain), port.clear.eq(self.clear), self.idle.eq(port.idle),
                     self.read_error.eq(port.read_error), self.write_error.eq(port.write_error),
                     self.read_beat.eq(port.read_beat), self.write_bytes.eq(port.write_bytes)]
        return m


def _ports(text: str, module: str) -> dict[str, str]:
    """``name -> input|output`` of ``module`` in Yosys' Verilog."""
    body = text.split(f"module {module}(")[1].split("endmodule")[0]
    return dict((name, d) for d, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[[^]]*\]\s*)?"
                                                     r"(\w+);", body, re.M))


def test_flat_ports_convert_with_axi_names_and_lint_clean(tmp_path):
    from gen.lint import lint

    cfg = Config(256, 2, 2, addr_width=40)
    text = verilog.convert(_Top(cfg), name="axi_top", emit_src=False)
    ports = _ports(text, "axi_top")
    for s in AXI4_SIGNALS:
        assert ports.get(f"m_axi0_{s.name}") == ("output" if s.flow == Out else "input"), s.name
    for s in AXI4LITE_SIGNALS:
        assert ports.get(f"s_axil_{s.name}") == ("input" if s.flow == Out else "output"), s.name
        assert ports.get(f"m_axil_{s.name}") == ("output" if s.flow == Out else "input"), s.name
    assert re.search(r"assign m_axil_awaddr = s_axil_awaddr;", text)
    assert re.search(r"assign s_axil_rdata = m_axil_rdata;", text)
    assert "/work" not in text and "\\src" not in text
    path = tmp_path / "axi_top.v"
    path.write_text(text)
    assert lint(path, "axi_top") == []


def test_one_sided_ports_convert_lint_clean(tmp_path):
    from gen.lint import lint

    for reads, writes in [(0, 1), (1, 0)]:
        text = verilog.convert(_Top(Config(64, reads, writes)), name="axi_top", emit_src=False)
        path = tmp_path / f"axi_top_{reads}{writes}.v"
        path.write_text(text)
        assert lint(path, "axi_top") == []


# --- cocotb + cocotbext-axi AxiRam ------------------------------------------------------------------------

RTL_CONFIG = Config(128, 2, 2, max_burst=8, max_reads=3, max_writes=3)


@pytest.mark.rtl
def test_against_cocotbext_axi_ram(tmp_path):
    """The converted port behind flat ``m_axi`` ports passes a real AXI model with random pauses."""
    from sim.runner import build_verilog, run_cocotb_module

    cfg = RTL_CONFIG
    text = verilog.convert(_Top(cfg, prefix="m_axi"), name="axi_top", emit_src=False)
    (tmp_path / "axi_top.v").write_text(text)
    rng = random.Random(11)
    stimulus = {"addr_width": cfg.addr_width, "data_width": cfg.data_width,
                "reads": [read_requests(cfg, rng, 16) for _ in range(cfg.reads)],
                "writes": [[(addr, data) for addr, data in
                            write_requests(cfg, rng, 12, WRITE_REGIONS[0], c, cfg.writes)] for c in range(cfg.writes)],
                "max_burst": cfg.max_burst, "memory": MEMORY_BYTES, "seed": 12,
                "results": str(tmp_path / "results.json")}
    (tmp_path / "stimulus.json").write_text(json.dumps(stimulus))
    sim_dir = build_verilog(tmp_path / "axi_top.v", "axi_top", tmp_path / "sim", build_root=BUILD_ROOT)
    here = Path(__file__).resolve().parent
    env = {"PYTHONPATH": os.pathsep.join([str(here.parent), str(here), os.environ.get("PYTHONPATH", "")]),
           "AXI_STIMULUS": str(tmp_path / "stimulus.json")}
    tests, failed = run_cocotb_module("vit_axi_cocotb", "axi_top", sim_dir, tmp_path, env)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["problems"] == [], (results["problems"][:10], tmp_path / "sim.log")
    assert (tests, failed) == (1, 0), tmp_path / "sim.log"
    assert results["read_beats"] == sum(b for c in stimulus["reads"] for _, b in c)
    assert results["acks"] == [sum(1 for _, data in c if data) for c in stimulus["writes"]]
    assert results["pauses"] > 100
