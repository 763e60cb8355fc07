"""The ``gemm`` fault-campaign workload of ``kind: tpe``: random GEMM jobs streamed back to back.

Each job multiplies a random ``A`` (the engine's ``c_rows`` rows, or ``rows``
rows for ``systolic_ws``, by ``K``) with a random ``B`` (``K`` x ``cols``),
operands uniform over the whole range of their format (``A``'s and ``B``'s). The operand beats are cut as
``sim.tb.tpe_beats`` says the engine wants them; the expected result beats
are the golden model's rows of ``C``, ``last`` on each job's final row.
"""

import random

import numpy as np

from gen.errors import ConfigError
from sim.fault.workload import Workload
from sim.golden import tpe as golden
from sim.golden.intmath import operand_range

from .payload import PayloadCodec
from .tpe_beats import pack_jobs, result_beats


def gemm_jobs(cfg, *, jobs: int, k: int, seed: int) -> list[dict]:
    """``jobs`` random jobs ``{"a", "b", "c"}`` (lists) of reduction length ``k``, reproducible from ``seed``."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"workload.jobs: {jobs!r} is not allowed; need an integer >= 1")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= cfg.k_bound:
        raise ConfigError(f"workload.k: {k!r} is not allowed; {cfg.name} takes an integer 1 <= K <= {cfg.k_bound}")
    rng = np.random.default_rng(seed)
    a_lo, a_hi = operand_range(cfg.a_format.width, cfg.a_format.signed)
    b_lo, b_hi = operand_range(cfg.b_format.width, cfg.b_format.signed)
    rows = cfg.rows if cfg.arch == "systolic_ws" else cfg.c_rows
    model = golden.for_config(cfg)
    out = []
    for _ in range(jobs):
        a = rng.integers(a_lo, a_hi + 1, size=(rows, k), dtype=np.int64)
        b = rng.integers(b_lo, b_hi + 1, size=(k, cfg.cols), dtype=np.int64)
        out.append({"a": a.tolist(), "b": b.tolist(), "c": model(a, b).tolist()})
    return out


def _interface(manifest: dict, name: str) -> dict:
    for interface in manifest["interfaces"]:
        if interface["name"] == name:
            return interface
    raise ValueError(f"{manifest['top']}: the manifest has no {name!r} interface")


def gemm(cfg, manifest: dict, *, jobs: int, k: int, seed: int) -> Workload:
    """The workload of :func:`gemm_jobs`: operand beats in, result beats (rows of ``C``) out."""
    job_list = gemm_jobs(cfg, jobs=jobs, k=k, seed=seed)
    operands, results = _interface(manifest, "operands"), _interface(manifest, "results")
    beats, _ = pack_jobs(manifest["parameters"]["job"], job_list, width=cfg.a_format.width,
                         b_width=cfg.b_format.width, rng=random.Random(seed))
    pack_in, pack_out = PayloadCodec(operands["payload"]), PayloadCodec(results["payload"])
    expected = [pack_out.pack(beat) for job in job_list
                for beat in result_beats(manifest["parameters"]["job"], job["c"])]
    return Workload(
        name=f"gemm(jobs={jobs}, k={k}, seed={seed})",
        inputs={"operands": tuple(pack_in.pack(beat) for beat in beats)},
        outputs={"results": tuple(expected)},
        layouts={"operands": operands["payload"], "results": results["payload"]},
        element_fields={"results": ("c",)},
        params={"type": "gemm", "jobs": jobs, "k": k, "seed": seed},
    )
