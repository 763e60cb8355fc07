"""A Python AXI4 slave memory for Amaranth's simulator, with random stalls and an AXI rule checker.

``tests/test_vit_axi.py`` drives ``hw.vit.axi.AxiMasterPort`` against it. Each cycle the
testbench calls :meth:`AxiSlave.drive` (sets every slave-driven signal), then
:meth:`AxiSlave.watch` (samples the master, checks the rules, takes the handshakes), then
ticks. Every rule violation is appended to ``problems`` as one line naming the cycle.

Signals go through :class:`sim_pins.Pins` (``pins_inputs``/``pins_outputs`` name them), so a
cycle costs one settle. Rules checked: ``VALID`` and payload held until the handshake; no master output changes when
the slave's inputs change within a cycle (no combinational path from an input to a ``VALID``
or ``READY``); during reset every master ``VALID``/``READY`` is low; bursts INCR of 1 ..
``max_burst`` beats, aligned, inside one 4 KB page, ``AxSIZE`` = the beat, ``AxCACHE`` = 0b0011,
``AxID``/``AxLOCK``/``AxPROT``/``AxQOS`` = 0; at most ``max_reads`` / ``max_writes`` bursts
outstanding; every W burst carries ``AWLEN + 1`` beats with ``WLAST`` on the last one only;
``RREADY`` high whenever read data is due (the port's credit rule makes this hold).
"""

import random
from collections import deque
from dataclasses import dataclass

PAGE = 4096
SLVERR = 0b10


@dataclass(frozen=True)
class Stalls:
    """Probabilities that the slave is ready / offers a beat in a cycle, latencies in cycles, errors."""

    ar_ready: float = 1.0
    aw_ready: float = 1.0
    w_ready: float = 1.0
    r_valid: float = 1.0
    b_valid: float = 1.0
    read_latency: tuple[int, int] = (1, 1)    # cycles from the AR handshake to the first R beat offered
    write_latency: tuple[int, int] = (1, 1)   # cycles from a complete burst (AW and all W) to its B offered
    read_error: float = 0.0                   # a read burst answered SLVERR
    write_error: float = 0.0                  # a write burst answered SLVERR


NO_STALLS = Stalls()
RANDOM_STALLS = Stalls(ar_ready=0.6, aw_ready=0.6, w_ready=0.7, r_valid=0.7, b_valid=0.6,
                       read_latency=(1, 12), write_latency=(1, 8))

_AR = ("arvalid", "araddr", "arlen", "arsize", "arburst", "arlock", "arcache", "arprot", "arqos", "arid")
_AW = ("awvalid", "awaddr", "awlen", "awsize", "awburst", "awlock", "awcache", "awprot", "awqos", "awid")
_W = ("wvalid", "wdata", "wstrb", "wlast")
_OUTPUTS = _AR + _AW + _W + ("rready", "bready")
_INPUTS = ("arready", "awready", "wready", "rvalid", "rdata", "rlast", "rresp", "rid", "bvalid", "bresp", "bid")


class AxiSlave:
    """Memory ``base .. base + len(memory)`` behind the master interface ``axi``."""

    def __init__(self, axi, memory: bytearray, *, base: int, data_width: int, max_burst: int, max_reads: int,
                 max_writes: int, stalls: Stalls, rng: random.Random):
        self.axi, self.memory, self.base = axi, memory, base
        self.bytes = data_width // 8
        self.max_burst, self.max_reads, self.max_writes = max_burst, max_reads, max_writes
        self.stalls, self.rng = stalls, rng
        self.problems: list[str] = []
        self.reads = deque()         # accepted AR bursts: [addr, beats, next beat, ready cycle, resp]
        self.r_offer = None          # (data, last, resp) on offer, held until the handshake
        self.aws = deque()           # accepted AW bursts waiting for their W beats: (addr, beats)
        self.w_bursts = deque()      # W bursts received (ended by WLAST) waiting for their AW
        self.w_beats = []            # beats of the W burst being received
        self.bs = deque()            # write responses due: [ready cycle, resp]
        self.b_offer = None
        self.writes_outstanding = 0  # AW accepted, B not yet delivered
        self.held = {}               # channel -> payload of a VALID that has not moved
        self.counts = {"ar": 0, "aw": 0, "r": 0, "w": 0, "b": 0, "w_strobed": 0,
                       "w_bytes": 0,
                       "read_errors": 0, "write_errors": 0}
        self.first_ar = None
        self.last_r = None
        self.last_w = None

    # --- memory ------------------------------------------------------------------------------
    def read_beat(self, addr: int) -> int:
        offset = addr - self.base
        return int.from_bytes(self.memory[offset:offset + self.bytes], "little")

    def _write_beat(self, addr: int, data: int, strb: int):
        offset = addr - self.base
        raw = data.to_bytes(self.bytes, "little")
        for i in range(self.bytes):
            if strb >> i & 1:
                self.memory[offset + i] = raw[i]

    # --- per cycle ---------------------------------------------------------------------------
    def pins_inputs(self) -> dict:
        return {name: getattr(self.axi, name) for name in _INPUTS}

    def pins_outputs(self) -> dict:
        return {name: getattr(self.axi, name) for name in _OUTPUTS}

    OUTPUTS = _OUTPUTS

    def drive_reset(self, pins):
        """During reset: offer junk everywhere; nothing may move."""
        for name in ("arready", "awready", "wready", "rvalid", "bvalid", "rlast"):
            pins.set(name, 1)
        pins.set("rresp", SLVERR)
        pins.set("bresp", SLVERR)
        pins.set("rdata", -1)

    def drive_idle(self, pins):
        for name in ("arready", "awready", "wready", "rvalid", "bvalid", "rlast", "rresp", "bresp", "rdata",
                     "rid", "bid"):
            pins.set(name, 0)

    def check_reset(self, out: dict, cycle: int):
        for name in ("arvalid", "awvalid", "wvalid", "rready", "bready"):
            if out[name]:
                self.problems.append(f"cycle {cycle}: {name} high during reset")

    def drive(self, pins, cycle: int):
        s, rng = self.stalls, self.rng
        self.ready = {name: rng.random() < p for name, p in (("arready", s.ar_ready), ("awready", s.aw_ready),
                                                              ("wready", s.w_ready))}
        for name, value in self.ready.items():
            pins.set(name, value)
        if self.r_offer is None and self.reads and self.reads[0][3] <= cycle and rng.random() < s.r_valid:
            burst = self.reads[0]
            addr, beats, index, _, resp = burst
            self.r_offer = (self.read_beat(addr + index * self.bytes), int(index == beats - 1), resp)
        if self.r_offer is not None:
            data, last, resp = self.r_offer
            pins.set("rdata", data)
            pins.set("rlast", last)
            pins.set("rresp", resp)
        pins.set("rvalid", self.r_offer is not None)
        if self.b_offer is None and self.bs and self.bs[0][0] <= cycle and rng.random() < s.b_valid:
            self.b_offer = self.bs[0][1]
        if self.b_offer is not None:
            pins.set("bresp", self.b_offer)
        pins.set("bvalid", self.b_offer is not None)

    def watch(self, out: dict, before: dict, cycle: int):
        """Check the master's outputs (``out``, and ``before``: sampled before this cycle's inputs were
        applied) and take the handshakes."""
        changed = [name for name in _OUTPUTS if out[name] != before[name]]
        if changed:
            self.problems.append(f"cycle {cycle}: {', '.join(changed)} changed with the inputs (combinational path)")
        if self.reads and not out["rready"]:
            self.problems.append(f"cycle {cycle}: rready low while read data is due")
        self._hold("ar", out, _AR, cycle)
        self._hold("aw", out, _AW, cycle)
        self._hold("w", out, _W, cycle)

        if out["arvalid"] and self.ready["arready"]:
            self.held.pop("ar", None)
            self._check_burst("AR", out, "ar", cycle)
            if len(self.reads) >= self.max_reads:
                self.problems.append(f"cycle {cycle}: more than {self.max_reads} read bursts outstanding")
            lo, hi = self.stalls.read_latency
            resp = SLVERR if self.rng.random() < self.stalls.read_error else 0
            self.reads.append([out["araddr"], out["arlen"] + 1, 0, cycle + self.rng.randint(lo, hi), resp])
            self.counts["ar"] += 1
            self.first_ar = cycle if self.first_ar is None else self.first_ar

        if self.r_offer is not None and out["rready"]:
            burst = self.reads[0]
            if self.r_offer[2]:
                self.counts["read_errors"] += 1
            burst[2] += 1
            if burst[2] == burst[1]:
                self.reads.popleft()
            self.r_offer = None
            self.counts["r"] += 1
            self.last_r = cycle

        if out["awvalid"] and self.ready["awready"]:
            self.held.pop("aw", None)
            self._check_burst("AW", out, "aw", cycle)
            self.writes_outstanding += 1
            if self.writes_outstanding > self.max_writes:
                self.problems.append(f"cycle {cycle}: more than {self.max_writes} write bursts outstanding")
            self.aws.append((out["awaddr"], out["awlen"] + 1))
            self.counts["aw"] += 1
            self._match_writes(cycle)  # its W beats may all be here already

        if out["wvalid"] and self.ready["wready"]:
            self.held.pop("w", None)
            self.w_beats.append((out["wdata"], out["wstrb"]))
            self.counts["w"] += 1
            self.counts["w_strobed"] += out["wstrb"] != 0
            self.counts["w_bytes"] += bin(out["wstrb"]).count("1")
            self.last_w = cycle
            if out["wlast"]:
                self.w_bursts.append(self.w_beats)
                self.w_beats = []
            self._match_writes(cycle)

        if self.b_offer is not None and out["bready"]:
            self.counts["write_errors"] += self.b_offer != 0
            self.bs.popleft()
            self.b_offer = None
            self.writes_outstanding -= 1
            self.counts["b"] += 1

    def _hold(self, channel: str, out: dict, names, cycle: int):
        """A VALID that did not move last cycle must still be high with the same payload."""
        payload = tuple(out[n] for n in names)
        if channel in self.held and self.held[channel] != payload:
            self.problems.append(f"cycle {cycle}: {channel.upper()} VALID or payload changed before the handshake")
        if out[names[0]]:
            self.held[channel] = payload
        else:
            self.held.pop(channel, None)

    def _check_burst(self, what: str, out: dict, p: str, cycle: int):
        addr, beats = out[p + "addr"], out[p + "len"] + 1
        bad = []
        if beats > self.max_burst:
            bad.append(f"{beats} beats > max_burst {self.max_burst}")
        if addr % self.bytes:
            bad.append(f"address {addr:#x} not aligned to {self.bytes} bytes")
        if addr % PAGE + beats * self.bytes > PAGE:
            bad.append(f"{beats} beats from {addr:#x} cross a 4 KB boundary")
        if not (self.base <= addr and addr + beats * self.bytes <= self.base + len(self.memory)):
            bad.append(f"{beats} beats from {addr:#x} leave the memory")
        expected = {"size": self.bytes.bit_length() - 1, "burst": 1, "cache": 0b0011, "lock": 0, "prot": 0,
                    "qos": 0, "id": 0}
        bad += [f"{p}{k} = {out[p + k]}, not {v}" for k, v in expected.items() if out[p + k] != v]
        for b in bad:
            self.problems.append(f"cycle {cycle}: {what}: {b}")

    def _match_writes(self, cycle: int):
        """Pair W bursts with AWs in order; a W burst longer than its AWLEN + 1 is caught at once."""
        if self.aws and len(self.w_bursts) == 0 and len(self.w_beats) > self.aws[0][1]:
            self.problems.append(f"cycle {cycle}: W burst runs past AWLEN + 1 = {self.aws[0][1]} without WLAST")
        while self.aws and self.w_bursts:
            (addr, beats), w = self.aws.popleft(), self.w_bursts.popleft()
            if len(w) != beats:
                self.problems.append(f"cycle {cycle}: W burst of {len(w)} beats (WLAST) for AWLEN + 1 = {beats}")
            for i, (data, strb) in enumerate(w[:beats]):
                self._write_beat(addr + i * self.bytes, data, strb)
            lo, hi = self.stalls.write_latency
            resp = SLVERR if self.rng.random() < self.stalls.write_error else 0
            self.bs.append([cycle + self.rng.randint(lo, hi), resp])

    @property
    def quiet(self) -> bool:
        """Nothing outstanding or half-received."""
        return not (self.reads or self.r_offer or self.aws or self.w_bursts or self.w_beats or self.bs
                    or self.b_offer)
