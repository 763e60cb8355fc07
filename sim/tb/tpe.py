"""Testbench of ``kind: tpe`` engines: random and edge-case GEMM jobs against the golden model.

One testbench serves every architecture: how a job is cut into beats comes
from the manifest (``parameters.job``, see :mod:`sim.tb.tpe_beats`), results
are regrouped by each job's expected row count.

Host side (imported by the runner): :func:`make_vectors` builds the jobs and
their golden results, :func:`first_mismatch` compares results with them,
:func:`describe_mismatch` says in one line where they differ and
:func:`summary_lines` summarises a run (cycles, latency, MAC utilisation).
Simulator side: :func:`gemm_jobs` streams the jobs into the DUT back to back,
collects the result beats, checks the stream protocol, the documented latency
and job interval, writes the results and fails on the first wrong element.

Engines whose cycles follow the data (``parameters.timing`` is
``data-dependent``: ``mac: opt3``, ``opt4c``, ``laconic``) get each job's cycles
from the cycle model :mod:`sim.golden.tpe_cycles` instead of a fixed job
interval: the cycles between consecutive jobs' first result beats (for the
first job, from its first operand beat) must equal the model's on every job at
full rate, and be at least the job's busy cycles otherwise; latency counts from
the last operand beat plus the extra cycles that beat's digits take (with
decoupled rows, ``row_queue``, at full rate: plus the cycles the model says the
rows still need, since they may run behind the input).
"""

import random
import time

import cocotb
import numpy as np

from sim.golden import tpe as golden
from sim.golden import tpe_cycles
from sim.golden.intmath import operand_range

from .harness import BitFlips, CycleLoop, RunFiles, as_unsigned, reset, start_and_reset
from .stream import StreamSink, StreamSource
from .tpe_beats import LATENCY_TO, beat_rows, operand_widths, pack_jobs, rows_per_result_beat

#: What the vectors are made of (``npuforge sim`` counts ``vectors[VECTOR_UNIT]``).
VECTOR_UNIT = "jobs"

# --------------------------------------------------------------------------- host side


def _shapes(cfg) -> tuple[list[tuple[int, int]], "callable"]:
    """Edge-case job shapes ``(rows of A, K)`` and a drawer of random ones."""
    if cfg.arch == "systolic_ws":
        # Rows of A stream, K is bounded by the array height.
        top = 2 * cfg.rows + 2
        edges = sorted({(1, 1), (cfg.rows, cfg.rows), (top, cfg.rows), (1, cfg.rows)})

        def draw(rng):
            m = 1 if rng.random() < 1 / 6 else int(rng.integers(1, top + 1))
            pick = rng.random()
            k = 1 if pick < 1 / 6 else cfg.rows if pick < 1 / 3 else int(rng.integers(1, cfg.rows + 1))
            return m, k
        return edges, draw

    rows, k_max = cfg.c_rows, cfg.k_bound

    def draw(rng):
        pick = rng.random()
        k = 1 if pick < 1 / 6 else k_max if pick < 1 / 3 else int(rng.integers(1, k_max + 1))
        return rows, k
    return sorted({(rows, 1), (rows, k_max)}), draw


def _extreme_pairs(a_format, b_format) -> list[tuple[str, int, int]]:
    """``(label, A value, B value)`` for every job of constant extremes beyond zeros and all max.

    One format: (-2**(W-1))**2 is the largest product, max * min the most negative one
    (signed); max * zero otherwise. Two formats: every other corner of the two ranges,
    so each side's extremes meet the other's, mixed signedness included.
    """
    a_lo, a_hi = operand_range(a_format.width, a_format.signed)
    b_lo, b_hi = operand_range(b_format.width, b_format.signed)
    if a_format == b_format:
        return [("all min", a_lo, a_lo), ("min x max", a_lo, a_hi)] if a_format.signed else \
            [("max x zero", a_hi, 0)]
    corners = [("all min", a_lo, b_lo), ("A min x B max", a_lo, b_hi), ("A max x B min", a_hi, b_lo)]
    return [(label, a, b) for label, a, b in corners if (a, b) != (0, 0)]


def _edge_jobs(shapes, cols: int, a_format, b_format) -> list[tuple[str, np.ndarray, np.ndarray]]:
    a_lo, a_hi = operand_range(a_format.width, a_format.signed)
    b_lo, b_hi = operand_range(b_format.width, b_format.signed)
    jobs = []
    for rows, k in shapes:
        tag = f"{rows}x{k}" if len(shapes) > 2 else f"K={k}"

        def filled(a_value, b_value, rows=rows, k=k):
            return np.full((rows, k), a_value, dtype=np.int64), np.full((k, cols), b_value, dtype=np.int64)
        jobs.append((f"zeros {tag}", *filled(0, 0)))
        jobs.append((f"all max {tag}", *filled(a_hi, b_hi)))
        jobs += [(f"{label} {tag}", *filled(a, b)) for label, a, b in _extreme_pairs(a_format, b_format)]
        # Extremes in a checkerboard: every PE sees both signs / both ends.
        checker_a = np.where(np.add.outer(np.arange(rows), np.arange(k)) % 2 == 0, a_lo, a_hi)
        checker_b = np.where(np.add.outer(np.arange(k), np.arange(cols)) % 3 == 0, b_hi, b_lo)
        jobs.append((f"checkerboard extremes {tag}", checker_a, checker_b))
    return jobs


def _densest(width: int, signed: bool, mac: str) -> tuple[int, int]:
    """The most negative and the most positive operand with the most nonzero digits (or terms)."""
    lo, hi = operand_range(width, signed)
    values = np.arange(lo, hi + 1)
    count = (tpe_cycles.effectual_term_count if mac == "laconic" else tpe_cycles.nonzero_digits)(
        values, operand_width=width, signed=signed)
    densest = values[count == count.max()]
    return int(densest.min()), int(densest.max())


def _sparse_edge_jobs(cfg, rng) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Jobs for digit-serial engines: every digit nonzero, every digit zero, one busy row or column.

    Each operand's cost (nonzero EN-T digits, or effectual terms) sets the
    cycles; these jobs take the most and the fewest cycles per beat, and make
    one row (or, for ``laconic``, one column) the slowest so the lockstep
    maximum is checked. These options take one format for ``A`` and ``B`` (``operand``).
    """
    width, signed, rows, cols, k = cfg.operand.width, cfg.operand.signed, cfg.rows, cfg.cols, cfg.k_bound
    lo, hi = operand_range(width, signed)
    low, high = _densest(width, signed, cfg.mac)
    dense_a = np.where(np.add.outer(np.arange(rows), np.arange(k)) % 2 == 0, high, low)
    dense_b = np.where(np.add.outer(np.arange(k), np.arange(cols)) % 2 == 0, low, high)
    small_a = rng.integers(lo, hi + 1, size=(rows, k))
    small_b = rng.integers(lo, hi + 1, size=(k, cols))
    power = 1 << (width - 2)  # one nonzero digit or term
    one_row = np.full((rows, k), power)
    one_row[rows - 1] = high
    one_col = np.full((k, cols), power)
    one_col[:, cols - 1] = low
    jobs = [
        ("all digits nonzero", dense_a, dense_b),
        ("A all digits nonzero, B random", dense_a, small_b),
        ("all digits zero, B dense", np.zeros((rows, k), dtype=np.int64), dense_b),
        ("A dense, B zero", dense_a, np.zeros((k, cols), dtype=np.int64)),
        ("one nonzero digit each", np.full((rows, k), power), np.full((k, cols), power)),
        ("slowest row last", one_row, small_b),
        ("slowest column last", small_a, one_col),
        ("one beat, dense", dense_a[:, :1], dense_b[:1]),
        ("one beat, zero", np.zeros((rows, 1), dtype=np.int64), small_b[:1]),
    ]
    if cfg.mac != "laconic":
        # Decoupled rows (row_queue): one dense row and the others idle fills the queue (the idle rows run
        # ahead as far as it lets them); rows that take turns being the slow one drain it and refill it.
        lone = np.zeros((rows, k), dtype=np.int64)
        lone[0] = high
        turns = np.full((rows, k), power)
        turns[np.arange(k) % rows, np.arange(k)] = high
        jobs += [("one dense row, the others zero", lone, small_b), ("rows take turns being slowest", turns, small_b)]
    return [(f"{label} K={a.shape[1]}", a, b) for label, a, b in jobs]


def make_vectors(cfg, *, seed: int, n_random: int, valid_prob: float = 1.0,
                 ready_prob: float = 1.0, edge_cases: bool = True, k: int | None = None) -> dict:
    """Jobs for one run: edge cases (shortest and longest K) then ``n_random`` random jobs.

    Random jobs draw K (and, for ``systolic_ws``, the rows of A) with a third
    of them at the ends, and operands uniformly over the whole range of their
    format (``A``'s and ``B``'s). Every job carries its golden ``c``.

    ``k`` (``npuforge sim --k``): no edge cases, and every random job has that ``K``
    (``systolic_ws``: and ``rows`` rows of ``A``), so at full rate the run is jobs of
    one shape back to back and the summary's MAC utilisation is that of the shape.
    Raises ``ValueError`` unless ``1 <= k <=`` the config's longest ``K``.
    """
    rng = np.random.default_rng(seed)
    a_lo, a_hi = operand_range(cfg.a_format.width, cfg.a_format.signed)
    b_lo, b_hi = operand_range(cfg.b_format.width, cfg.b_format.signed)
    model = golden.for_config(cfg)
    edges, draw = _shapes(cfg)
    if k is not None:
        if not 1 <= k <= cfg.k_bound:
            raise ValueError(f"got {k}; allowed: 1 to {cfg.k_bound} (the longest K of {cfg.name})")
        edge_cases = False
        shape = (cfg.rows if cfg.arch == "systolic_ws" else cfg.c_rows, k)

        def draw(rng):
            return shape

    jobs = _edge_jobs(edges, cfg.cols, cfg.a_format, cfg.b_format) if edge_cases else []
    if edge_cases and cfg.mac in tpe_cycles.DATA_DEPENDENT:
        jobs += _sparse_edge_jobs(cfg, rng)
    for index in range(n_random):
        rows, k = draw(rng)
        a = rng.integers(a_lo, a_hi + 1, size=(rows, k), dtype=np.int64)
        b = rng.integers(b_lo, b_hi + 1, size=(k, cfg.cols), dtype=np.int64)
        label = f"random #{index} {rows}x{k}" if cfg.arch == "systolic_ws" else f"random #{index} K={k}"
        jobs.append((label, a, b))

    return {
        "kind": "tpe",
        "seed": seed,
        "flow": {"valid_prob": valid_prob, "ready_prob": ready_prob},
        "jobs": [{"label": label, "a": a.tolist(), "b": b.tolist(), "c": model(a, b).tolist()}
                 for label, a, b in jobs],
    }


def first_mismatch(vectors: dict, results: dict) -> dict | None:
    """The first wrong or missing result element, or None if every job matches."""
    got_jobs = results.get("jobs", [])
    for index, job in enumerate(vectors["jobs"]):
        if index >= len(got_jobs):
            return {"job": index, "label": job["label"], "index": None, "expected": "a result",
                    "got": f"nothing ({results.get('stopped', 'simulation ended')})"}
        expected, got = job["c"], got_jobs[index]
        if [len(row) for row in got] != [len(row) for row in expected]:
            return {"job": index, "label": job["label"], "index": None,
                    "expected": f"{len(expected)}x{len(expected[0])} elements",
                    "got": f"rows of lengths {[len(row) for row in got]}"}
        for i, (row_e, row_g) in enumerate(zip(expected, got, strict=True)):
            for j, (e, g) in enumerate(zip(row_e, row_g, strict=True)):
                if e != g:
                    return {"job": index, "label": job["label"], "index": [i, j], "expected": e, "got": g}
    return None


def describe_mismatch(m: dict) -> str:
    where = f"C[{m['index'][0]}][{m['index'][1]}]" if m["index"] is not None else "result"
    return f"job {m['job']} ({m['label']}): {where} expected {m['expected']}, got {m['got']}"


def useful_macs(vectors: dict) -> int:
    """Multiply-accumulates the jobs need: rows of A x K x columns of B, padding not counted."""
    return sum(len(job["a"]) * len(job["b"]) * len(job["b"][0]) for job in vectors["jobs"])


def summary_lines(manifest: dict, vectors: dict, results: dict, seconds: float) -> list[str]:
    """What ``npuforge sim`` prints about a run beyond pass/fail."""
    if not results:
        return []
    params = manifest["parameters"]
    cycles = results.get("cycles") or 0
    latency = sorted(set(results.get("latency", [])))
    lines = [
        f"cycles   {cycles} simulated, {seconds:.2f} s wall; {results.get('operand_beats')} operand beats in, "
        f"{results.get('result_beats')} result beats out; latency {', '.join(map(str, latency)) or '-'} cycles "
        f"(documented {params['latency']})",
        f"rate     job interval {params['job_interval']} cycles (a job occupies "
        + ("at least that; its digits set the rest, see timing" if params.get("timing") == "data-dependent" else
           f"max(its beats, {params['job_interval']}) back to back") + f"); {params['mac_units']} MAC units",
    ]
    if cycles:
        macs = useful_macs(vectors)
        lines.append(f"util     {macs} useful MACs / ({params['mac_units']} MAC units x {cycles} cycles) "
                     f"= {macs / (params['mac_units'] * cycles):.1%}")
    if results.get("job_cycles"):
        measured, model = results["job_cycles"], results.get("job_cycles_model", [])
        lines.append(f"timing   data-dependent: {sum(measured)} job cycles measured, {sum(model)} from the cycle "
                     f"model {params.get('cycle_model')} over {len(measured)} jobs")
    return lines


# --------------------------------------------------------------------------- simulator side

class OperandReadyRule:
    """Checks ``operands.ready`` in every cycle a beat is offered, for ``hold_last_until_drained`` engines.

    ``operands.ready`` must be low exactly when the offered beat has ``last``
    set while an earlier job's results have not all left; any other stall
    would cost throughput, any other acceptance would overwrite results.
    Runs before the streams record this cycle's transfers.
    """

    def __init__(self, source: StreamSource, sink: StreamSink, beats_per_job: int):
        self.source, self.sink, self.beats_per_job = source, sink, beats_per_job
        self.violations: list[str] = []
        self._jobs_in = 0
        self._counted = 0

    def drive(self, cycle: int) -> None:
        pass

    def sample(self, cycle: int) -> None:
        for transfer in self.source.transfers[self._counted:]:
            self._jobs_in += transfer.beat["last"]
        self._counted = len(self.source.transfers)
        beat = self.source.offered
        if beat is None:
            return
        pending = self._jobs_in > len(self.sink.transfers) // self.beats_per_job
        expected = not (beat["last"] and pending)
        ready = bool(as_unsigned(self.source.ready.value))
        if ready != expected and len(self.violations) < 10:
            self.violations.append(
                f"cycle {cycle}: operands.ready is {int(ready)} with last={beat['last']} offered and "
                f"{'a' if pending else 'no'} finished job waiting; the documented value is {int(expected)}")


class GemmTestbench:
    """Streams jobs through a TPE and collects its results (one phase between resets)."""

    def __init__(self, dut, run: RunFiles, rng: random.Random, injections=()):
        self.dut, self.run = dut, run
        self.params = params = run.manifest["parameters"]
        self.job_format = params["job"]
        self.width, self.b_width = operand_widths(run.manifest["config"])
        self.latency, self.interval = params["latency"], params["job_interval"]
        flow = run.vectors["flow"]
        self.source = StreamSource(dut, run.interface("operands"), rng=rng, valid_prob=flow["valid_prob"])
        self.sink = StreamSink(dut, run.interface("results"), rng=rng, ready_prob=flow["ready_prob"])
        self.junk = random.Random(rng.getrandbits(32))  # bits in fields the engine must ignore
        self.job_beats: list[int] = []  # per job, the beats it adds to the stream (see pack_jobs)
        self.data_dependent = params.get("timing") == "data-dependent"
        self.timing: list[dict] = []  # per job, the cycle model's figures (data-dependent engines)
        agents = [BitFlips(dut, list(injections))]
        self.flips = agents[0]
        self.rule = None
        if params["flow_control"] == "hold_last_until_drained":
            self.rule = OperandReadyRule(self.source, self.sink,
                                         self.job_format["c_rows"] // rows_per_result_beat(self.job_format))
            agents.append(self.rule)
        self.loop = CycleLoop(dut, run.manifest, agents + [self.source, self.sink])

    async def stream(self, jobs: list[dict], *, stop_after_beats: int | None = None) -> bool:
        """Send ``jobs`` and run until all their result beats (or ``stop_after_beats``) arrived."""
        beats, self.job_beats = pack_jobs(self.job_format, jobs, width=self.width, b_width=self.b_width,
                                          rng=self.junk)
        for beat in beats:
            self.source.send(beat)
        wanted = sum(map(self.result_beats_of, jobs)) if stop_after_beats is None else stop_after_beats
        slowest = min(self.source.valid_prob, self.sink.ready_prob)
        if self.data_dependent:
            self.timing = stream_timing(self.run.manifest, jobs)
            occupied = [timing["back_to_back"] for timing in self.timing]
        else:
            occupied = [max(count, self.interval) for count in self.job_beats]
        budget = sum(cycles + self.latency + self.result_beats_of(job) for cycles, job in zip(occupied, jobs,
                                                                                              strict=True))
        return await self.loop.run(lambda: len(self.sink.transfers) >= wanted,
                                   max_cycles=int(4 * budget / slowest) + 1000)

    def result_beats_of(self, job: dict) -> int:
        """Result beats the engine sends for ``job`` (rows of ``C`` / rows per result beat)."""
        return len(job["c"]) // rows_per_result_beat(self.job_format)

    async def drain_quietly(self) -> None:
        """Run long enough for any stray result beat to appear."""
        await self.loop.run(lambda: False, max_cycles=self.latency + 2 * self.job_format.get("c_rows", 1) + 4)

    def collect(self, jobs: list[dict]) -> dict:
        """Regroup result beats into jobs; check framing, latency and full-rate throughput."""
        got, latencies, firsts = [], [], []
        source_full = self.source.valid_prob == 1.0
        sink_full = self.sink.ready_prob == 1.0 and not self.flips.done
        # Decoupled rows: a job's capture depends on how far the rows ran apart, so its latency is the
        # modelled one only when both sides run at full rate; otherwise it is at least the documented one.
        decoupled = bool(self.run.manifest["config"].get("row_queue"))
        exact_latency = sink_full and (source_full or not decoupled)
        problems = list(self.sink.violations) + (self.rule.violations if self.rule else [])
        last_operands = [t for t in self.source.transfers if t.beat["last"]]
        beats = self.sink.transfers
        to_last = LATENCY_TO[self.job_format["format"]] == "last"
        start = 0
        for index, job in enumerate(jobs):
            count = self.result_beats_of(job)
            group = beats[start:start + count]
            if len(group) < count:
                break
            start += count
            got.append([row for t in group for row in beat_rows(self.job_format, t.beat["c"])])
            flags = [t.beat["last"] for t in group]
            if flags != [0] * (count - 1) + [1]:
                problems.append(f"job {index}: result 'last' flags {flags}, expected only the final beat set")
            firsts.append(group[0].valid_since)
            if index < len(last_operands):
                released = group[-1] if to_last else group[0]
                extra = 0
                if self.data_dependent:
                    timing = self.timing[index]
                    extra = timing["extra_full_rate"] if exact_latency else timing["last_beat"] - 1
                latencies.append(released.valid_since - last_operands[index].cycle - extra)
        if len(beats) > start:
            problems.append(f"{len(beats) - start} result beats more than {len(jobs)} jobs produce")
        measured = []
        if self.data_dependent:
            measured, timing_problems = self._job_cycles(firsts, exact=source_full and sink_full)
            problems += timing_problems
        elif source_full and sink_full:
            for n in range(1, len(last_operands)):
                gap = last_operands[n].cycle - last_operands[n - 1].cycle
                expected = max(self.job_beats[n], self.interval)
                if gap != expected:
                    problems.append(f"job {n}: last operand {gap} cycles after the previous job's, "
                                    f"documented max(beats, job_interval) = {expected} at full rate")
                    break
        return {
            "jobs": got,
            "latency": latencies,
            "job_beats": self.job_beats,
            # With the sink always ready (or an engine that never lets results wait
            # inside it) every job's latency is exactly the documented one; under
            # backpressure a stalled engine may take longer, never less.
            "latency_exact": exact_latency or self.params["flow_control"] == "hold_last_until_drained",
            "last_operand_cycles": [t.cycle for t in last_operands],
            "job_cycles": measured,
            "job_cycles_model": [timing["back_to_back"] for timing in self.timing[:len(measured)]],
            "cycles": self.loop.cycle,
            "operand_beats": len(self.source.transfers),
            "result_beats": len(beats),
            "protocol_errors": problems,
            "injected": self.flips.done,
        }


    def _job_cycles(self, firsts: list[int], *, exact: bool) -> tuple[list[int], list[str]]:
        """Each job's cycles from the result timing, against the cycle model.

        A job's results are captured in the cycle before its first result beat
        is valid. Job 0: from the transfer of its first operand beat to its
        capture; job ``n``: from job ``n - 1``'s capture to its own. At full
        rate each equals the model's back-to-back cycles, under gaps or
        backpressure it is at least the job's busy cycles.
        """
        if not firsts or not self.source.transfers:
            return [], []
        measured = [firsts[0] - 1 - self.source.transfers[0].cycle]
        measured += [firsts[n] - firsts[n - 1] for n in range(1, len(firsts))]
        for n, (cycles, timing) in enumerate(zip(measured, self.timing, strict=False)):
            expected = timing["back_to_back"]
            if cycles != expected if exact else cycles < timing["busy"]:
                rule = "the cycle model gives" if exact else "at least the busy cycles of the model,"
                return measured, [f"job {n}: took {cycles} cycles, {rule} {expected if exact else timing['busy']} "
                                  f"(beats {timing['beats']})"]
        return measured, []


def stream_timing(manifest: dict, jobs: list[dict]) -> list[dict]:
    """The cycle model's figures for each job of a stream on a data-dependent engine (``sim.golden.tpe_cycles``).

    ``beats``: cycles per beat (lockstep), or the busiest row's cycles per beat
    (decoupled rows, ``row_queue``); ``busy``: the fewest cycles the job can
    take (see :class:`~sim.golden.tpe_cycles.JobTiming`); ``back_to_back``: the
    cycles from the previous job's capture to this one's at full rate (the
    first job: from its first operand beat); ``last_beat``: the most cycles a
    row spends on the last beat, what the latency counts beyond its first cycle
    at least; ``extra_full_rate``: what it counts beyond it at full rate.
    """
    config = manifest["config"]
    model = {"arch": config["arch"], "mac": config["mac"], "operand_width": config["operand"]["width"],
             "signed": config["operand"]["signed"], "rows": config["rows"], "row_queue": config.get("row_queue", 0)}
    latency = manifest["parameters"]["latency"]
    timings = tpe_cycles.capture_cycles([(job["a"], job["b"]) for job in jobs], **model)
    figures, previous = [], 0  # the first job counts from its first operand beat, cycle 0
    for job, timing in zip(jobs, timings, strict=True):
        if model["row_queue"]:
            beats = tpe_cycles.row_beat_cycles(job["a"], job["b"], mac=model["mac"],
                                               operand_width=model["operand_width"], signed=model["signed"]).max(axis=0)
        else:
            beats = tpe_cycles.beat_cycles(job["a"], job["b"], mac=model["mac"], operand_width=model["operand_width"],
                                           signed=model["signed"])
        figures.append({
            "beats": beats.tolist(),
            "busy": timing.busy,
            "back_to_back": timing.capture - previous,
            "last_beat": timing.last_beat,
            "extra_full_rate": timing.capture + 1 - timing.last_accept - latency,
        })
        previous = timing.capture
    return figures


def latency_problems(results: dict, latency: int) -> list[str]:
    exact = results.get("latency_exact", True)
    for index, value in enumerate(results.get("latency", [])):
        if value != latency if exact else value < latency:
            rule = "" if exact else "at least "
            return [f"job {index}: released result {value} cycles after the last operand beat, "
                    f"documented latency is {rule}{latency}"]
    return []


@cocotb.test()
async def gemm_jobs(dut):
    """Stream every job back to back and compare with the golden ``C``.

    If the vectors have ``abandon`` (``{"jobs": [...], "after_result_beats": n}``),
    those jobs are streamed first and the design is reset once ``n`` of their
    result beats have left: nothing of them may come out after the reset.
    """
    run = RunFiles.from_env()
    vectors, params = run.vectors, run.manifest["parameters"]
    rng = run.rng()
    await start_and_reset(dut, run.manifest)

    abandon = vectors.get("abandon")
    if abandon:
        first = GemmTestbench(dut, run, rng)
        await first.stream(abandon["jobs"], stop_after_beats=abandon["after_result_beats"])
        await reset(dut, run.manifest)  # mid-job: results pending, beats in flight

    bench = GemmTestbench(dut, run, rng, vectors.get("inject", []))
    started = time.perf_counter()
    finished = await bench.stream(vectors["jobs"])
    loop_seconds = time.perf_counter() - started
    cycles = bench.loop.cycle
    await bench.drain_quietly()

    results = bench.collect(vectors["jobs"])
    results["cycles"], results["loop_seconds"] = cycles, loop_seconds
    if not finished:
        results["stopped"] = f"no further result after {cycles} cycles"
    results["protocol_errors"] += latency_problems(results, params["latency"])
    run.write_results(results)

    mismatch = first_mismatch(vectors, results)
    assert mismatch is None, describe_mismatch(mismatch)
    problems = results["protocol_errors"]
    assert not problems, problems[0]
