"""Testbench of ``kind: tpe`` engines: random and edge-case GEMM jobs against the golden model.

Host side (imported by the runner): :func:`make_vectors` builds the jobs and
their golden results, :func:`first_mismatch` compares results with them and
:func:`describe_mismatch` says in one line where they differ.
Simulator side: :func:`gemm_jobs` streams the jobs into the DUT back to back,
collects the result beats, checks the stream protocol and the documented
latency, writes the results and fails on the first wrong element.
"""

import time

import cocotb
import numpy as np

from sim.golden import tpe as golden
from sim.golden.intmath import operand_range

from .harness import BitFlips, CycleLoop, RunFiles, as_unsigned, reset, start_and_reset
from .stream import StreamSink, StreamSource

# --------------------------------------------------------------------------- host side

def _edge_jobs(rows: int, cols: int, width: int, signed: bool, k_values) -> list[tuple[str, np.ndarray, np.ndarray]]:
    lo, hi = operand_range(width, signed)
    jobs = []
    for k in k_values:
        def filled(a_value, b_value, k=k):
            return np.full((rows, k), a_value, dtype=np.int64), np.full((k, cols), b_value, dtype=np.int64)
        jobs.append((f"zeros K={k}", *filled(0, 0)))
        jobs.append((f"all max K={k}", *filled(hi, hi)))
        if signed:
            # (-2**(W-1))**2 is the largest product; max * min the most negative one.
            jobs.append((f"all min K={k}", *filled(lo, lo)))
            jobs.append((f"min x max K={k}", *filled(lo, hi)))
        else:
            jobs.append((f"max x zero K={k}", *filled(hi, 0)))
        # Extremes in a checkerboard: every PE sees both signs / both ends.
        checker_a = np.where(np.add.outer(np.arange(rows), np.arange(k)) % 2 == 0, lo, hi)
        checker_b = np.where(np.add.outer(np.arange(k), np.arange(cols)) % 3 == 0, hi, lo)
        jobs.append((f"checkerboard extremes K={k}", checker_a, checker_b))
    return jobs


def make_vectors(cfg, *, seed: int, n_random: int, valid_prob: float = 1.0,
                 ready_prob: float = 1.0, edge_cases: bool = True) -> dict:
    """Jobs for one run: edge cases (K = 1 and K = k_max) then ``n_random`` random jobs.

    Random jobs draw K from [1, k_max] (a third of them at the ends) and operands
    uniformly over the whole range. Every job carries its golden ``c``.
    """
    rng = np.random.default_rng(seed)
    width, signed = cfg.operand.width, cfg.operand.signed
    lo, hi = operand_range(width, signed)
    model = golden.for_config(cfg)

    jobs = _edge_jobs(cfg.rows, cfg.cols, width, signed, sorted({1, cfg.k_max})) if edge_cases else []
    for index in range(n_random):
        pick = rng.random()
        k = 1 if pick < 1 / 6 else cfg.k_max if pick < 1 / 3 else int(rng.integers(1, cfg.k_max + 1))
        a = rng.integers(lo, hi + 1, size=(cfg.rows, k), dtype=np.int64)
        b = rng.integers(lo, hi + 1, size=(k, cfg.cols), dtype=np.int64)
        jobs.append((f"random #{index} K={k}", a, b))

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


# --------------------------------------------------------------------------- simulator side

class OperandReadyRule:
    """Checks the documented flow control of ``operands`` in every cycle a beat is offered.

    ``operands.ready`` must be low exactly when the offered beat has ``last``
    set while an earlier job's results have not all left; any other stall
    would cost throughput, any other acceptance would overwrite results.
    Runs before the streams record this cycle's transfers.
    """

    def __init__(self, source: StreamSource, sink: StreamSink, rows: int):
        self.source, self.sink, self.rows = source, sink, rows
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
        pending = self._jobs_in > len(self.sink.transfers) // self.rows
        expected = not (beat["last"] and pending)
        ready = bool(as_unsigned(self.source.ready.value))
        if ready != expected and len(self.violations) < 10:
            self.violations.append(
                f"cycle {cycle}: operands.ready is {int(ready)} with last={beat['last']} offered and "
                f"{'a' if pending else 'no'} finished job waiting; the documented value is {int(expected)}")


def _operand_beats(job: dict):
    a, b = job["a"], job["b"]
    k = len(b)
    for step in range(k):
        yield {"a": [row[step] for row in a], "b": b[step], "last": int(step == k - 1)}


class GemmTestbench:
    """Streams jobs through a TPE and collects its results (one phase between resets)."""

    def __init__(self, dut, run: RunFiles, rng, injections=()):
        self.dut, self.run = dut, run
        params, cfg = run.manifest["parameters"], run.manifest["config"]
        self.rows, self.latency, self.interval = cfg["rows"], params["latency"], params["job_interval"]
        flow = run.vectors["flow"]
        self.source = StreamSource(dut, run.interface("operands"), rng=rng, valid_prob=flow["valid_prob"])
        self.sink = StreamSink(dut, run.interface("results"), rng=rng, ready_prob=flow["ready_prob"])
        self.rule = OperandReadyRule(self.source, self.sink, self.rows)
        self.flips = BitFlips(dut, list(injections))
        self.loop = CycleLoop(dut, run.manifest, [self.flips, self.rule, self.source, self.sink])

    async def stream(self, jobs: list[dict], *, stop_after_beats: int | None = None) -> bool:
        """Send ``jobs`` and run until all their result beats (or ``stop_after_beats``) arrived."""
        for job in jobs:
            for beat in _operand_beats(job):
                self.source.send(beat)
        wanted = self.rows * len(jobs) if stop_after_beats is None else stop_after_beats
        slowest = min(self.source.valid_prob, self.sink.ready_prob)
        budget = sum(max(len(job["b"]), self.interval) + self.latency + self.rows for job in jobs)
        return await self.loop.run(lambda: len(self.sink.transfers) >= wanted,
                                   max_cycles=int(4 * budget / slowest) + 1000)

    async def drain_quietly(self) -> None:
        """Run long enough for any stray result beat to appear."""
        await self.loop.run(lambda: False, max_cycles=self.latency + self.rows + 4)

    def collect(self, jobs: list[dict]) -> dict:
        """Regroup result beats into jobs; check framing, latency and full-rate throughput."""
        rows = self.rows
        got, latencies = [], []
        problems = list(self.sink.violations) + self.rule.violations
        last_operands = [t for t in self.source.transfers if t.beat["last"]]
        beats = self.sink.transfers
        for index in range(len(beats) // rows):
            group = beats[index * rows:(index + 1) * rows]
            got.append([t.beat["c"] for t in group])
            flags = [t.beat["last"] for t in group]
            if flags != [0] * (rows - 1) + [1]:
                problems.append(f"job {index}: result 'last' flags {flags}, expected only the final beat set")
            if index < len(last_operands):
                latencies.append(group[0].valid_since - last_operands[index].cycle)
        if len(beats) > rows * len(jobs):
            problems.append(f"{len(beats) - rows * len(jobs)} result beats more than {len(jobs)} jobs produce")
        full_rate = self.source.valid_prob == 1.0 and self.sink.ready_prob == 1.0 and not self.flips.done
        if full_rate:
            for n in range(1, len(last_operands)):
                gap = last_operands[n].cycle - last_operands[n - 1].cycle
                expected = max(len(jobs[n]["b"]), self.interval)
                if gap != expected:
                    problems.append(f"job {n}: last operand {gap} cycles after the previous job's, "
                                    f"documented max(K, job_interval) = {expected} at full rate")
                    break
        return {
            "jobs": got,
            "latency": latencies,
            "last_operand_cycles": [t.cycle for t in last_operands],
            "cycles": self.loop.cycle,
            "operand_beats": len(self.source.transfers),
            "result_beats": len(beats),
            "protocol_errors": problems,
            "injected": self.flips.done,
        }


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
    run.write_results(results)

    mismatch = first_mismatch(vectors, results)
    assert mismatch is None, describe_mismatch(mismatch)
    problems = results["protocol_errors"]
    assert not problems, problems[0]
    wrong = [(i, lat) for i, lat in enumerate(results["latency"]) if lat != params["latency"]]
    assert not wrong, (f"job {wrong[0][0]}: first result {wrong[0][1]} cycles after the last operand, "
                       f"documented latency is {params['latency']}")
