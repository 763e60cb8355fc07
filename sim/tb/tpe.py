"""Testbench of ``kind: tpe`` engines: random and edge-case GEMM jobs against the golden model.

Host side (imported by the runner): :func:`make_vectors` builds the jobs and
their golden results, :func:`first_mismatch` compares results with them.
Simulator side: :func:`gemm_jobs` streams the jobs into the DUT back to back,
collects the result beats, checks the stream protocol and the documented
latency, writes the results and fails on the first wrong element.
"""

import time

import numpy as np

from sim.golden import tpe as golden
from sim.golden.intmath import operand_range


# --------------------------------------------------------------------------- host side

def _edge_jobs(rows: int, cols: int, width: int, signed: bool, k_values) -> list[tuple[str, np.ndarray, np.ndarray]]:
    lo, hi = operand_range(width, signed)
    jobs = []
    for k in k_values:
        full = lambda shape, v: np.full(shape, v, dtype=np.int64)  # noqa: E731
        a_shape, b_shape = (rows, k), (k, cols)
        jobs.append((f"zeros K={k}", full(a_shape, 0), full(b_shape, 0)))
        jobs.append((f"all max K={k}", full(a_shape, hi), full(b_shape, hi)))
        if signed:
            # (-2**(W-1))**2 is the largest product; max * min the most negative one.
            jobs.append((f"all min K={k}", full(a_shape, lo), full(b_shape, lo)))
            jobs.append((f"min x max K={k}", full(a_shape, lo), full(b_shape, hi)))
        else:
            jobs.append((f"max x zero K={k}", full(a_shape, hi), full(b_shape, 0)))
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
        for i, (row_e, row_g) in enumerate(zip(expected, got)):
            for j, (e, g) in enumerate(zip(row_e, row_g)):
                if e != g:
                    return {"job": index, "label": job["label"], "index": [i, j], "expected": e, "got": g}
    return None


def describe_mismatch(m: dict) -> str:
    where = f"C[{m['index'][0]}][{m['index'][1]}]" if m["index"] is not None else "result"
    return f"job {m['job']} ({m['label']}): {where} expected {m['expected']}, got {m['got']}"


# --------------------------------------------------------------------------- simulator side

try:
    import cocotb
except ImportError:  # host code above works without cocotb
    cocotb = None

if cocotb is not None:
    from .harness import BitFlips, CycleLoop, RunFiles, start_and_reset
    from .stream import StreamSink, StreamSource

    @cocotb.test()
    async def gemm_jobs(dut):
        """Stream every job back to back and compare with the golden ``C``."""
        run = RunFiles.from_env()
        manifest, vectors = run.manifest, run.vectors
        cfg, params = manifest["config"], manifest["parameters"]
        rows = cfg["rows"]
        rng = run.rng()

        source = StreamSource(dut, run.interface("operands"), rng=rng, valid_prob=vectors["flow"]["valid_prob"])
        sink = StreamSink(dut, run.interface("results"), rng=rng, ready_prob=vectors["flow"]["ready_prob"])
        for job in vectors["jobs"]:
            a, b = job["a"], job["b"]
            k = len(b)
            for step in range(k):
                source.send({"a": [row[step] for row in a], "b": b[step], "last": int(step == k - 1)})

        flips = BitFlips(dut, vectors.get("inject", []))
        await start_and_reset(dut, manifest)
        loop = CycleLoop(dut, manifest, [flips, source, sink])
        expected_beats = rows * len(vectors["jobs"])
        slowest = min(vectors["flow"]["valid_prob"], vectors["flow"]["ready_prob"])
        budget = sum(max(len(job["b"]), params["job_interval"]) + params["latency"] + rows
                     for job in vectors["jobs"])
        started = time.perf_counter()
        finished = await loop.run(lambda: len(sink.transfers) >= expected_beats,
                                  max_cycles=int(4 * budget / slowest) + 1000)
        loop_seconds = time.perf_counter() - started

        # Regroup result beats into jobs and check the stream's own framing.
        jobs, latencies, problems = [], [], list(sink.violations)
        last_operands = [t for t in source.transfers if t.beat["last"]]
        for index in range(len(sink.transfers) // rows):
            beats = sink.transfers[index * rows:(index + 1) * rows]
            jobs.append([t.beat["c"] for t in beats])
            flags = [t.beat["last"] for t in beats]
            if flags != [0] * (rows - 1) + [1]:
                problems.append(f"job {index}: result 'last' flags {flags}, expected only the final beat set")
            if index < len(last_operands):
                latencies.append(beats[0].valid_since - last_operands[index].cycle)

        results = {
            "jobs": jobs,
            "latency": latencies,
            "cycles": loop.cycle,
            "loop_seconds": loop_seconds,
            "operand_beats": len(source.transfers),
            "result_beats": len(sink.transfers),
            "protocol_errors": problems,
            "injected": flips.done,
        }
        if not finished:
            results["stopped"] = f"no further result after {loop.cycle} cycles"
        run.write_results(results)

        mismatch = first_mismatch(vectors, results)
        assert mismatch is None, describe_mismatch(mismatch)
        assert not problems, problems[0]
        wrong = [(i, lat) for i, lat in enumerate(latencies) if lat != params["latency"]]
        assert not wrong, (f"job {wrong[0][0]}: first result {wrong[0][1]} cycles after the last operand, "
                           f"documented latency is {params['latency']}")
