"""Cut a GEMM job into operand beats, as the manifest's ``parameters.job`` says the engine wants them.

Two formats exist (see ``hw/tpe/interface.py``):

``k_steps``
    ``C`` has the engine's fixed ``c_rows`` rows; each beat carries
    ``steps_per_beat`` reduction steps, element ``s*R + i`` of ``a`` is
    ``A[i, k0+s]`` and element ``s*cols + j`` of ``b`` is ``B[k0+s, j]``; steps
    past ``K`` in the final beat are zeros. The job's first result beat is the
    one its last operand beat releases (``latency`` counts to it).
``weights_then_rows``
    ``K <= k_max`` weight beats (``load = 1``, ``b = B[k]``), then one beat per
    row of ``A`` (``load = 0``, ``a[k] = A[m, k]`` for ``k < K``), ``last`` on the
    final row. Fields the engine must ignore (``a`` past ``K``, ``a`` on weight
    beats, ``b`` on row beats) carry random bits, so an engine that reads them
    fails. Each row of ``A`` releases its row of ``C``; ``latency`` counts from
    the last row beat to the last result beat.

Pure functions: the host side uses them to count beats, the cocotb test to
drive them.
"""

import math
import random

LATENCY_TO = {"k_steps": "first", "weights_then_rows": "last"}


def beats_per_job(job_format: dict, a_rows: int, k: int) -> int:
    """Operand beats of one job with ``a_rows`` rows of ``A`` and reduction length ``k``."""
    if job_format["format"] == "k_steps":
        return math.ceil(k / job_format["steps_per_beat"])
    if job_format["format"] == "weights_then_rows":
        return k + a_rows
    raise ValueError(f"unknown job format {job_format['format']!r}")


def operand_beats(job_format: dict, a: list[list[int]], b: list[list[int]], *, width: int,
                  rng: random.Random | None = None) -> list[dict]:
    """The beats of the job ``A @ B`` (``a`` is ``R x K``, ``b`` is ``K x cols``)."""
    rng = rng or random.Random(0)
    k, cols = len(b), len(b[0])
    if job_format["format"] == "k_steps":
        steps, rows = job_format["steps_per_beat"], job_format["c_rows"]
        if len(a) != rows:
            raise ValueError(f"this engine computes {rows} rows of C per job, the job has {len(a)}")
        beats = []
        count = beats_per_job(job_format, rows, k)
        for beat in range(count):
            ks = [beat * steps + s for s in range(steps)]
            beats.append({
                "a": [a[i][kk] if kk < k else 0 for kk in ks for i in range(rows)],
                "b": [b[kk][j] if kk < k else 0 for kk in ks for j in range(cols)],
                "last": int(beat == count - 1),
            })
        return beats
    if job_format["format"] == "weights_then_rows":
        k_max = job_format["k_max"]
        if not 1 <= k <= k_max:
            raise ValueError(f"this engine takes 1 <= K <= {k_max}, the job has K = {k}")

        def junk(n):
            return [rng.getrandbits(width) for _ in range(n)]

        beats = [{"a": junk(k_max), "b": list(b[kk]), "load": 1, "last": 0} for kk in range(k)]
        for m, row in enumerate(a):
            beats.append({"a": list(row) + junk(k_max - k), "b": junk(cols), "load": 0,
                          "last": int(m == len(a) - 1)})
        return beats
    raise ValueError(f"unknown job format {job_format['format']!r}")
