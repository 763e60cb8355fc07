"""The generated accelerator's own schedule (``kind: moevit_accel``): predicted cycles per operator.

:mod:`sim.perf.moevit` bounds a network on an abstract machine (MACs per cycle, bytes per
cycle). This model predicts what the generated accelerator does with a compiled descriptor
list: per operator, the cycles from ``start`` to ``done`` of a run of that one descriptor
(the ``CYCLES`` counter of ``npuforge run``, operator by operator), from

* the engines' sizes in the manifest (``parameters``: the TPE's rows, columns, reduction steps,
  latency and job interval, the row units' lanes, latency and row buffers, the attention
  engine's slots and lanes, the memory's data width, ``max_burst`` and reads in flight);
* the memory model of the fast harness (``MemoryTiming``: read and write latency, a beat per
  cycle and direction on each port unless ``bytes_per_cycle`` is set);
* the overlap the design has, written down engine by engine as docs/accelerator.md states it
  ("Timing in words"): the linear engine loads weight tile ``t + 1`` while tile ``t`` computes
  and writes a job's rows while the next job computes; the vector, row and im2col engines
  stream with their requests issued ahead; the attention engine steps one key row at a time.

Memory follows one rule (:class:`Channel`, for every engine): a port keeps
``max_reads`` (``max_writes``) bursts in flight and a read client its receive FIFO's beats, so a
stream of short requests is bound by the latency (Little's law), a stream of long ones by the beats
or the FIFO. The linear engine is followed job by job (its requests in the order it makes them);
the other engines are closed forms. The model does not see the DRAM model's seeded stalls.

:func:`predict` gives one :class:`Prediction` per operator (the cycles and what bounds them);
``npuforge perf`` prints them for an accelerator config, ``npuforge run`` beside the measured counters.
"""

import heapq
import math
import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Memory:
    """The DRAM behind every port, as the fast harness models it (``sim.moevit.accel_run.MemoryTiming``)."""

    read_latency: int = 24
    write_latency: int = 12
    bytes_per_cycle: float = 0.0  # per port and direction; 0: a full beat every cycle


@dataclass
class Prediction:
    """One operator: predicted cycles from ``start`` to ``done`` of its own run, and what bounds them."""

    name: str
    opcode: str
    cycles: int
    bound: str  # "compute", "weights", "reads", "writes", "latency", "checks"
    terms: dict = field(default_factory=dict)


class Hardware:
    """The facts of one accelerator the model needs, read from its manifest's ``parameters``."""

    def __init__(self, params: dict, memory: Memory = Memory()):
        self.p = params
        self.memory = memory
        self.beat = params["data_width"] // 8
        self.act_bytes, self.w_bytes = params["act_bytes"], params["w_bytes"]
        self.max_reads, self.max_writes, self.max_burst = params["max_reads"], params["max_writes"], params["max_burst"]
        # Each read client's receive FIFO (hw/vit/axi.py: a burst is issued only when it has room).
        self.read_fifo = params.get("read_fifo_depth", max(2 * self.max_burst, 4))
        lin = params["linear"]
        self.rows, self.cols, self.steps = lin["rows"], lin["cols"], lin["steps"]
        self.tpe_latency, self.job_interval = lin["latency"], lin["job_interval"]
        self.epilogue_stages = lin["epilogue_latency"] + EPILOGUE_EXTRA
        # Beats per cycle a port moves: a whole beat, or the DRAM model's bytes per cycle.
        self.beat_rate = 1.0 if not memory.bytes_per_cycle else min(1.0, memory.bytes_per_cycle / self.beat)

    def beats(self, elements: int, container: int) -> int:
        return -(-elements * container // self.beat)

    def stream(self, requests: int, beats: int) -> float:
        """Cycles to read ``requests`` requests of ``beats`` beats for one client, all made at once: the time
        the last beat arrives (a :class:`Channel` of its own)."""
        channel, done = self.read_channel(), 0.0
        for _ in range(requests):
            done = channel.request(0, beats, "client")
        return done

    def read_channel(self) -> "Channel":
        return Channel(slots=self.max_reads, latency=self.memory.read_latency, max_burst=self.max_burst,
                       rate=self.beat_rate, queue=self.read_fifo)

    def write_channel(self) -> "Channel":
        return Channel(slots=self.max_writes, latency=self.memory.write_latency, max_burst=self.max_burst,
                       rate=self.beat_rate, write=True)

    def client_port(self, engine: str, what: str) -> int:
        """The port of an engine's read client (``parameters.clients``)."""
        for client in self.p["clients"]["reads"]:
            if client["engine"] == engine and client["what"] == what:
                return client["port"]
        raise ValueError(f"no read client {what!r} of engine {engine!r}")

    def write_stream(self, requests: int, beats: int) -> float:
        """Cycles to write ``requests`` requests of ``beats`` beats made at once: the last response."""
        channel, done = self.write_channel(), 0.0
        for _ in range(requests):
            done = channel.request(0, beats)
        return done


#: Cycles a burst holds its slot beyond the DRAM's latency and its beats: the address handshake, the
#: port's arbiter and the response path back to the client.
ROUND_TRIP = 2


# --- engines -----------------------------------------------------------------------------------------------

#: Cycles of each engine's descriptor checks (``EngineControl(check_cycles=...)`` in hw/vit/).
CHECKS = {"LINEAR": 4, "ADD": 4, "IM2COL": 7, "LAYERNORM": 4, "SOFTMAX": 4, "ATTENTION": 4, "GATE": 4}


class Channel:
    """One direction of one AXI port, as the DRAM model serves it: ``slots`` bursts in flight, bursts of at most
    ``max_burst`` beats, one data beat per cycle (times ``rate``) on a bus shared by every burst; a read burst's
    data starts ``latency`` cycles after its request, a write's response ``latency`` cycles after its last
    beat. A read client also has its receive FIFO of ``queue`` beats (``hw/vit/axi.py``): a burst goes out
    only when its beats fit beside those still due, so one client keeps about ``queue / max_burst`` bursts in
    flight. Requests are served in the order they are made (each engine's clients issue in order)."""

    def __init__(self, *, slots: int, latency: int, max_burst: int, rate: float, write: bool = False,
                 queue: int | None = None):
        self.free = [0.0] * slots
        self.latency, self.max_burst, self.rate, self.write, self.queue = latency, max_burst, rate, write, queue
        self.bus = 0.0
        self.due: dict = {}  # client -> [(time its beats have left the receive FIFO, beats)]

    def request(self, at: float, beats: int, client=None) -> float:
        """Make a request of ``beats`` beats at ``at`` for ``client``: the time its last beat arrives (a read) or
        its response does (a write)."""
        done = at
        due = self.due.setdefault(client, []) if self.queue and not self.write else None
        while beats > 0:
            n = min(self.max_burst, beats)
            beats -= n
            slot = heapq.heappop(self.free)
            issue = max(at, slot)
            if due is not None:  # room in the client's receive FIFO: a beat frees its place as it arrives
                issue = self._room(due, issue, n)
            begin = max(issue + (0 if self.write else self.latency), self.bus)
            self.bus = begin + n / self.rate
            done = self.bus + (self.latency if self.write else 0)
            heapq.heappush(self.free, done + (WRITE_TRIP if self.write else ROUND_TRIP))
            if due is not None:
                due.append((begin, self.bus, n))
        return done

    def _room(self, due: list, t: float, n: int) -> float:
        """The first time from ``t`` on when ``n`` beats fit in a receive FIFO with bursts ``due`` still
        arriving (``(first beat, last beat, beats)``)."""
        due[:] = [d for d in due if d[1] > t]
        while True:
            waiting = sum(b - min(b, max(0.0, (t - start) * self.rate)) for start, _, b in due)
            short = waiting + n - self.queue
            if short <= 0:
                return t
            ahead = [start for start, _, _ in due if start > t]
            flowing = any(start <= t < end for start, end, _ in due)
            t = t + short / self.rate if flowing or not ahead else min(ahead)


def _linear(hw: Hardware, op) -> tuple[float, str, dict]:
    """The linear engine, job by job: A rows, weight tiles (two halves), the TPE's jobs, the epilogue taking
    result rows (with their residual slices), the out queue and the writer (docs/accelerator.md)."""
    f, flags = op.fields, set(op.flags)
    k, n = f["k"], f["n"]
    m = op.macs // (k * n) if ("gather" in flags or "scatter" in flags) and k and n else f["m"]
    if m == 0:  # an empty expert queue ends after the checks
        return 0.0, "checks", {}
    rows, cols = hw.rows, hw.cols
    tiles, m_tiles = -(-n // cols), -(-m // rows)
    beats = -(-k // hw.steps)
    a_row = hw.beats(k, hw.act_bytes)
    slice_beats = hw.beats(cols, hw.act_bytes)
    port = [hw.read_channel(), hw.read_channel()]
    writes = hw.write_channel()
    a_port = hw.client_port("linear", "A rows")
    w_port = hw.client_port("linear", "weight tiles")
    r_port = hw.client_port("linear", "residual")
    # A rows (and for Q K^T the B^T rows, K's rows, alternating with them): one request per row, from the start.
    a_ready, bt_ready = [], []
    transposed = "b_transposed" in flags
    bt_port = hw.client_port("linear", "key rows (B^T)") if transposed else a_port
    # The residual reader runs ahead of the epilogue by its receive FIFO (the port's credits): its first slices go
    # out with the A rows, on the same port, the later ones as the epilogue takes rows.
    ahead = max(1, hw.read_fifo // slice_beats) if "residual" in flags else 0
    early = []
    for r in range(max(m, n if transposed else 0)):
        if r < m:
            a_ready.append(port[a_port].request(0, a_row, "A"))
            if len(early) < min(ahead, m * tiles):
                early.append(port[r_port].request(0, slice_beats, "residual"))
        if transposed and r < n:
            bt_ready.append(port[bt_port].request(0, a_row, "B^T"))
    for r in range(1, len(a_ready)):
        a_ready[r] = max(a_ready[r], a_ready[r - 1])
    for r in range(1, len(bt_ready)):
        bt_ready[r] = max(bt_ready[r], bt_ready[r - 1])

    def load(tile: int, at: float) -> float:
        if transposed:
            return bt_ready[min(n, (tile + 1) * cols) - 1]
        if "b_rows" in flags:
            done = at
            for _ in range(k):
                done = port[w_port].request(at, slice_beats, "B")
            return done
        return port[w_port].request(at, (k + ("bias" in flags)) * hw.beats(cols, hw.w_bytes), "B")

    half_free = [0.0, 0.0]
    queue = hw.rows * 2 + 2  # the out queue's rows
    issued = []  # per kept result row: when the writer took it from the out queue
    taken = []  # per kept result row: when the epilogue took it
    job_start = -math.inf
    job_taken = []  # per job: when the epilogue took its last row
    interval = max(beats, hw.job_interval)
    compute = 0
    for t in range(tiles):
        at = half_free[t % 2] if "no_prefetch" not in flags or t == 0 else taken[-1]
        w_ready = load(t, at + (LOAD_ISSUE if t >= 2 or ("no_prefetch" in flags and t) else 0))
        for i in range(m_tiles):
            kept = min(rows, m - i * rows)
            job = t * m_tiles + i
            start = max(job_start + interval, a_ready[min(m, (i + 1) * rows) - 1], w_ready) + FEEDER_STAGES
            if job >= 2:  # the array's two result buffers: a job's results wait for those of two jobs back
                start = max(start, job_taken[job - 2] - hw.tpe_latency - beats)
            job_start = start
            compute += beats
            end = start + beats + hw.tpe_latency
            for r in range(kept):
                ready = end + r
                if "residual" in flags:
                    index = len(taken)
                    if index < len(early):
                        ready = max(ready, early[index])
                    else:
                        at = taken[index - ahead] if index >= ahead else 0
                        ready = max(ready, port[r_port].request(at, slice_beats, "residual"))
                if len(issued) >= queue:  # the out queue is full: the epilogue holds the row
                    ready = max(ready, issued[-queue] - hw.epilogue_stages)
                take = max(ready, taken[-1] + 1 if taken else ready)
                taken.append(take)
                out = take + hw.epilogue_stages
                write_at = max(out, issued[-1] + slice_beats + WRITER_ROW if issued else out)
                issued.append(write_at)
                last_response = writes.request(write_at, slice_beats)
            job_taken.append(taken[-1])
        half_free[t % 2] = taken[-1]
    body = last_response + LINEAR_TAIL
    bound = "compute" if compute * 1.1 >= body else "memory"
    return body, bound, {"tiles": tiles, "m_tiles": m_tiles, "beats": beats, "compute": compute}


#: Register stages of the feeder (address, memory data, the beat) before a beat reaches the TPE.
FEEDER_STAGES = 3
#: Cycles from the TPE's result row to the out queue beyond the epilogue's own stages (the manifest's
#: ``linear.epilogue_latency``: shift and bias, fit, scale, requantise, GELU, score, residual): the row's
#: entry and the out queue. Fitted as 16 in all when the tiny accelerator's epilogue had 9 stages.
EPILOGUE_EXTRA = 7
#: Cycles from a weight half's release to its loader's next request.
LOAD_ISSUE = 20
#: Cycles from the last write response to ``done``.
LINEAR_TAIL = 10
#: Cycles the writer spends per row beyond its beats (it takes a row, issues its address, then its beats).
WRITER_ROW = 4
#: Cycles a write burst holds its slot beyond its beats and the response latency.
WRITE_TRIP = 4


def _add(hw: Hardware, op) -> tuple[float, str, dict]:
    rows, n = op.fields["rows"], op.fields["n"]
    b = hw.beats(n, hw.act_bytes)
    reads = hw.stream(rows, b)
    cycles = reads + 1 + hw.memory.write_latency + 2
    return cycles, "reads" if reads > rows * b + hw.memory.read_latency else "beats", {"reads": round(reads)}


def _rows(hw: Hardware, op, unit: str) -> tuple[float, str, dict]:
    rows, n = op.fields["rows"], op.fields["n"]
    spec = hw.p["rows"][unit]
    lanes, latency, banks = spec["lanes"], spec["latency"], spec["banks"]
    e = hw.beat // hw.act_bytes
    per_row = max(-(-n // e), -(-n // lanes))  # a row's beats in (and out), at the slower of beat and lanes
    # A row buffer holds a row from its first beat in, through the unit's latency, to its last beat out of
    # the unit (lanes per cycle); rows follow each other at the larger of that over the buffers and a row.
    paced = max(per_row, (per_row + latency + -(-n // lanes)) / banks)
    reads = hw.stream(rows, hw.beats(n, hw.act_bytes))
    params = hw.stream(1, hw.beats(2 * n, spec["params_bytes"])) + -(-n // lanes) if unit == "layernorm" else 0
    body = max(params + (rows - 1) * paced, reads) + per_row + latency
    cycles = body + per_row + 2 + hw.memory.write_latency
    bound = "unit" if rows * paced >= reads else "reads"
    return cycles, bound, {"per_row": per_row, "paced": paced, "reads": round(reads), "params": round(params)}


def _im2col(hw: Hardware, op) -> tuple[float, str, dict]:
    f = op.fields
    c, h, w, patch = f["channels"], f["height"], f["width"], f["patch"]
    seg = patch * hw.act_bytes
    # One write request per segment (a patch's row of one channel): whole beats, or one strobed beat.
    segments, seg_beats = c * h * (w // patch), max(1, seg // hw.beat)
    writes = hw.write_stream(segments, seg_beats)
    reads = hw.stream(c * h, -(-w // hw.beat))
    # The gearbox cuts image beats into write beats as they arrive: the slower of the two streams, then the
    # last image row's segments.
    cycles = max(writes, reads) + (w // patch) * seg_beats + 2
    return cycles, "writes" if writes >= reads else "reads", {"writes": round(writes), "reads": round(reads)}


def _gate(hw: Hardware, op) -> tuple[float, str, dict]:
    rows, n = op.fields["rows"], op.fields["n"]
    moe = hw.p["moe"]
    unit = moe["gate"]
    # Each token's logits pass the gate's softmax like a row through a row unit (its row buffers hold a row for
    # its input, the unit's latency and its output), then its top_k pushes, one per cycle.
    per_row = -(-n // unit["lanes"])
    paced = max(per_row + moe["top_k"], (per_row + unit["latency"]) / unit["banks"])
    reads = hw.stream(rows, hw.beats(n, hw.act_bytes))
    cycles = max(reads, rows * paced) + unit["latency"] + per_row + moe["top_k"]
    return cycles, "reads" if reads > rows * paced else "unit", {"paced": paced, "reads": round(reads)}


def _attention(hw: Hardware, op) -> tuple[float, str, dict]:
    att = hw.p["attention"]
    t, hd = op.fields["tokens"], op.fields["head_dim"]
    p, lanes = att["p"], att["lanes"]
    limit = t + p - 1
    steps = limit // p * t + limit % p
    row = hw.beats(hd, hw.act_bytes)
    per_step = max(-(-hd // lanes), row)
    # Each matmul steps one key (value) row at a time, one request per step: chunks or the rows' latency.
    matmul = max(steps * per_step, hw.stream(steps, row))
    softmax = hw.p["rows"]["softmax"]["latency"]
    cycles = 2 * matmul + softmax + row + hw.memory.write_latency
    return cycles, "compute" if matmul == steps * per_step else "reads", {"steps": steps, "per_step": per_step,
                                                                          "matmul": round(matmul)}


_ENGINES = {"LINEAR": _linear, "ADD": _add, "IM2COL": _im2col, "GATE": _gate, "ATTENTION": _attention,
            "LAYERNORM": lambda hw, op: _rows(hw, op, "layernorm"),
            "SOFTMAX": lambda hw, op: _rows(hw, op, "softmax")}


def operator_kind(name: str) -> str:
    """The kind of a compiled operator, its name without the block, head and chunk: ``blocks.3.expert7.fc2`` ->
    ``expert.fc2``; ``blocks.0.qk.h1{0:64}[0:129]`` -> ``qk``; ``embed.patch_embed`` -> ``patch_embed``;
    ``head.seg`` -> ``head``."""
    parts = re.sub(r"[\[{].*$", "", name).split(".")
    if parts[-1].startswith("h") and parts[-1][1:].isdigit():
        parts = parts[:-1]
    if ".expert" in name:
        return f"expert.{parts[-1]}"
    if name.startswith("head."):
        return "head"
    return parts[-1]


def fetch_cycles(hw: Hardware) -> int:
    """Cycles from ``start`` until the engine starts, in a run of one descriptor: the descriptor's fetch (the
    read latency and its beats) and the processor's request and dispatch stages."""
    return hw.memory.read_latency + 64 // hw.beat + FETCH_STAGES


#: The descriptor processor's stages around a fetch (request, gather, queue, dispatch).
FETCH_STAGES = 8
#: Cycles from the engine's ``done`` to the run's end (the processor pops ``END``, the CSR sees it).
END_STAGES = 3


def predict(params: dict, ops, memory: Memory = Memory()) -> list[Prediction]:
    """Per operator of ``ops`` (``sim.moevit.compiler.Op``: opcode, fields, flags, MACs), the predicted
    ``CYCLES`` of a run of that one descriptor (and ``END``) on the accelerator of manifest ``params``."""
    hw = Hardware(params, memory)
    fetch = fetch_cycles(hw)
    # The END descriptor is fetched right behind the operator's: a short operator waits for it.
    end_fetch = 2 * fetch - FETCH_STAGES - 1
    out = []
    for op in ops:
        engine = _ENGINES.get(op.opcode)
        if engine is None:
            raise ValueError(f"no timing model for opcode {op.opcode!r}")
        body, bound, terms = engine(hw, op)
        busy = CHECKS[op.opcode] + body
        cycles = END_STAGES + max(fetch + busy, end_fetch + CHECKS[op.opcode] + 2)
        out.append(Prediction(op.name, op.opcode, math.ceil(cycles), bound, terms))
    return out
