"""Cut GEMM jobs into operand beats, as the manifest's ``parameters.job`` says the engine wants them.

Two formats exist (see ``hw/tpe/interface.py``):

``k_steps``
    ``C`` has the engine's fixed ``c_rows`` rows; each beat carries
    ``steps_per_beat`` reduction steps, element ``s*R + i`` of ``a`` is
    ``A[i, k0+s]`` and element ``s*cols + j`` of ``b`` is ``B[k0+s, j]``; steps
    past ``K`` in the final beat are zeros. The job's first result beat is the
    one its last operand beat releases (``latency`` counts to it).
``rows_with_weights``
    One beat per row of ``A`` (``row = 1``, ``a[k] = A[m, k]`` for ``k < K``),
    ``last`` on the final row. The next job's ``K <= k_max`` weight rows ride
    along (``load = 1``, ``b = B[k]``), one per row beat from the job's first
    row on; the first job's weights, and any a job's rows cannot carry, go in
    beats with ``load`` only. Fields the engine must ignore (``a`` past ``K``
    or on weight-only beats, ``b`` without ``load``) carry random bits, so an
    engine that reads them fails. Each row of ``A`` releases its row of ``C``;
    ``latency`` counts from the last row beat to the last result beat.

Pure functions: the host side uses them to count beats, the cocotb test to
drive them.
"""

import math
import random

LATENCY_TO = {"k_steps": "first", "rows_with_weights": "last"}


def operand_widths(config: dict) -> tuple[int, int]:
    """Bits of an ``A`` and of a ``B`` element, from a (normalised) ``kind: tpe`` config as the manifest holds it.

    The config has ``operand`` (one format for both) or ``operand_a`` and ``operand_b``.
    """
    if "operand" in config:
        return config["operand"]["width"], config["operand"]["width"]
    return config["operand_a"]["width"], config["operand_b"]["width"]


def pack_jobs(job_format: dict, jobs: list[dict], *, width: int, b_width: int | None = None,
              rng: random.Random | None = None) -> tuple[list[dict], list[int]]:
    """The beats of ``jobs`` (each ``{"a": R x K, "b": K x cols}``) sent back to back.

    ``width`` and ``b_width`` (default: ``width``) are the bits of an ``A`` and a
    ``B`` element: the random bits of ignored fields are drawn that wide. Also
    returns, per job, how many beats it adds to the stream: those after the
    previous job's ``last`` beat up to and including its own. Back to back at
    full rate, consecutive ``last`` beats are ``max(that count, job_interval)``
    cycles apart.
    """
    rng = rng or random.Random(0)
    kind = job_format["format"]
    if kind == "k_steps":
        per_job = [_k_steps(job_format, job["a"], job["b"]) for job in jobs]
        return [beat for beats in per_job for beat in beats], [len(beats) for beats in per_job]
    if kind == "rows_with_weights":
        return _rows_with_weights(job_format, jobs, width, width if b_width is None else b_width, rng)
    raise ValueError(f"unknown job format {kind!r}")


def rows_per_result_beat(job_format: dict) -> int:
    """Rows of ``C`` one result beat carries: ``job.result_rows`` (a ``cube`` option), else 1."""
    return job_format.get("result_rows", 1)


def result_beats(job_format: dict, c) -> list[dict]:
    """The result beats of one job's ``C`` (a list of rows), as the engine sends them.

    Each beat's ``c`` is :func:`rows_per_result_beat` consecutive rows, row ``r`` of
    the beat at elements ``r*cols ..``; ``last`` is set on the final beat.
    """
    per_beat = rows_per_result_beat(job_format)
    count = len(c) // per_beat
    return [{"c": [x for row in c[n * per_beat:(n + 1) * per_beat] for x in row], "last": int(n == count - 1)}
            for n in range(count)]


def beat_rows(job_format: dict, c: list) -> list[list]:
    """The rows of ``C`` in one result beat's ``c`` (the inverse of :func:`result_beats`)."""
    per_beat = rows_per_result_beat(job_format)
    cols = len(c) // per_beat
    return [list(c[r * cols:(r + 1) * cols]) for r in range(per_beat)]


def _k_steps(job_format: dict, a, b) -> list[dict]:
    steps, rows = job_format["steps_per_beat"], job_format["c_rows"]
    if len(a) != rows:
        raise ValueError(f"this engine computes {rows} rows of C per job, the job has {len(a)}")
    k, cols = len(b), len(b[0])
    count = math.ceil(k / steps)
    beats = []
    for beat in range(count):
        ks = [beat * steps + s for s in range(steps)]
        beats.append({
            "a": [a[i][kk] if kk < k else 0 for kk in ks for i in range(rows)],
            "b": [b[kk][j] if kk < k else 0 for kk in ks for j in range(cols)],
            "last": int(beat == count - 1),
        })
    return beats


def _rows_with_weights(job_format: dict, jobs: list[dict], width: int, b_width: int, rng: random.Random):
    k_max = job_format["k_max"]
    for index, job in enumerate(jobs):
        if not 1 <= len(job["b"]) <= k_max:
            raise ValueError(f"job {index}: this engine takes 1 <= K <= {k_max}, the job has K = {len(job['b'])}")

    def junk(n, bits=width):
        return [rng.getrandbits(bits) for _ in range(n)]

    cols = len(jobs[0]["b"][0]) if jobs else 0
    beats, counts = [], []
    # The first job's weights travel alone.
    waiting = [list(row) for row in jobs[0]["b"]] if jobs else []
    for index, job in enumerate(jobs):
        before = len(beats)
        for row in waiting:  # weights the previous job's rows could not carry
            beats.append({"a": junk(k_max), "b": row, "row": 0, "load": 1, "last": 0})
        k = len(job["b"])
        ahead = [list(row) for row in jobs[index + 1]["b"]] if index + 1 < len(jobs) else []
        for m, a_row in enumerate(job["a"]):
            carried = ahead.pop(0) if ahead else None
            beats.append({"a": list(a_row) + junk(k_max - k), "b": carried or junk(cols, b_width), "row": 1,
                          "load": int(carried is not None), "last": int(m == len(job["a"]) - 1)})
        waiting = ahead
        counts.append(len(beats) - before)
    return beats, counts
