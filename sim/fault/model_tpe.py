"""Model-level exposures of ``kind: tpe`` engines (``systolic_os`` with one result buffer, ``matrix2d``).

The operand beats of the workload are decoded back into the jobs' ``A`` and ``B``; the
golden model (:func:`sim.golden.tpe.matmul`) gives ``C`` and the partial sums. The
timing is the documented one (``docs/tpe.md``), with the sink always ready and the
source always valid (the campaign harness's flow): beat ``s`` of a job moves in the cycle
after beat ``s - 1``, except that a job's ``last`` beat moves no earlier than
``job_interval`` cycles after the previous job's (:func:`beat_cycles`).

Site mapping (``d`` is the cycle offset at which PE ``(i, j)`` adds a step accepted in
cycle ``t``: ``i + j + 1`` for ``systolic_os``, ``1`` for ``matrix2d``):

=====================================  ===============================================
RTL site                               golden-model value (cycles)
=====================================  ===============================================
``skew_a.lane<i>_<d>`` (``a`` bits)    ``A[i, k]`` (``t+1+d``), read by row ``i``
``skew_b.lane<j>_<d>``                 ``B[k, j]`` (``t+1+d``), read by column ``j``
``pe_<i>_<j>.a_out`` / ``b_out``       ``A[i, k]`` / ``B[k, j]`` (``t+i+j+2``), read by the PEs right / below
``a_reg`` / ``b_reg`` (``matrix2d``)   ``A[:, k]`` / ``B[k, :]`` (``t+1``), read by every PE of the row / column
``pe_<i>_<j>.acc``                     partial sum of steps ``0 .. k-1`` (from step ``k-1``'s add to step ``k``'s)
``pe_<i>_<j>.result``                  ``C[i + s, j]`` after ``s`` drain shifts, until it leaves
=====================================  ===============================================

Tags, ``in_job``, ``pending``, ``row``, ``gap``, ``draining`` and the tag bits of
``skew_a`` are control: not mapped.
"""

import numpy as np

from gen.config import parse_config_data
from gen.errors import ConfigError
from sim.golden import tpe as golden
from sim.golden.intmath import wrap

from .exposure import ExposureBuilder, Plan

SUPPORTED = ("systolic_os", "matrix2d")


def beat_cycles(lasts: list[int], interval: int) -> list[int]:
    """Cycle in which each operand beat moves at full rate: one per cycle, a ``last`` beat no sooner
    than ``interval`` cycles after the previous ``last`` beat."""
    cycles, previous_last, t = [], None, -1
    for last in lasts:
        t += 1
        if last and previous_last is not None:
            t = max(t, previous_last + interval)
        if last:
            previous_last = t
        cycles.append(t)
    return cycles


def decode_jobs(workload, steps: int, rows: int, cols: int) -> list[dict]:
    """The jobs of a ``k_steps`` operand stream: ``a`` (rows x K), ``b`` (K x cols), beat cycles added later."""
    codec = workload.codec("operands")
    jobs, a_cols, b_rows, lasts = [], [], [], []
    for word in workload.inputs["operands"]:
        beat = codec.unpack(int(word))
        for s in range(steps):
            a_cols.append(beat["a"][s * rows:(s + 1) * rows])
            b_rows.append(beat["b"][s * cols:(s + 1) * cols])
        lasts.append(int(beat["last"]))
        if beat["last"]:
            jobs.append({"a": np.array(a_cols, dtype=np.int64).T, "b": np.array(b_rows, dtype=np.int64),
                         "beats": len(a_cols) // steps})
            a_cols, b_rows = [], []
    return jobs, lasts


def check_engine(cfg, where: str) -> None:
    if cfg.arch not in SUPPORTED or cfg.mac != "baseline" or (cfg.arch == "systolic_os" and cfg.result_buffers != 1):
        raise ConfigError(f"{where}: got arch {cfg.arch!r} (mac {cfg.mac!r}); allowed for level: model: systolic_os "
                          "with result_buffers: 1, or matrix2d, with mac: baseline (other engines: level: rtl)")


def engine_exposures(build: ExposureBuilder, cfg, prefix: str, jobs: list[dict], *, element_base=lambda n: n,
                     stage: int = 0) -> None:
    """The exposures of the engine's registers for ``jobs`` (each with ``a``, ``b``, ``cycles``: the cycle in
    which each step moved), element ``(n, i, j)`` of the stage being ``element_base(n) * rows * cols + i*cols + j``
    (the engine's result rows in the order they leave)."""
    rows, cols = cfg.c_rows, cfg.cols
    aw, bw = cfg.a_format.width, cfg.b_format.width
    signed_acc = cfg.a_format.signed or cfg.b_format.signed
    acc_w = cfg.acc_width
    os_ = cfg.arch == "systolic_os"

    def delay(i, j):
        return i + j + 1 if os_ else 1

    for n, job in enumerate(jobs):
        a, b, t = job["a"], job["b"], job["cycles"]
        k = a.shape[1]
        base = element_base(n) * rows * cols

        def element(i, j):
            return base + i * cols + j

        for s in range(k):
            for i in range(rows):
                row_elems = [element(i, j) for j in range(cols)]
                if os_:
                    for d in range(i + 1):
                        build.operand(f"{prefix}skew_a.lane{i}_{d}", bits=(0, aw), cycles=(t[s] + 1 + d,) * 2,
                                      value=a[i, s], signed=cfg.a_format.signed, elements=row_elems,
                                      partners=b[s, :], stage=stage)
                    for j in range(cols):
                        build.operand(f"{prefix}pe_{i}_{j}.a_out", bits=(0, aw), cycles=(t[s] + i + j + 2,) * 2,
                                      value=a[i, s], signed=cfg.a_format.signed, elements=row_elems[j + 1:],
                                      partners=b[s, j + 1:], stage=stage)
                        build.operand(f"{prefix}pe_{i}_{j}.b_out", bits=(0, bw), cycles=(t[s] + i + j + 2,) * 2,
                                      value=b[s, j], signed=cfg.b_format.signed,
                                      elements=[element(r, j) for r in range(i + 1, rows)], partners=a[i + 1:, s],
                                      stage=stage)
                else:
                    build.operand(f"{prefix}a_reg", bits=(i * aw, aw), cycles=(t[s] + 1,) * 2, value=a[i, s],
                                  signed=cfg.a_format.signed, elements=row_elems, partners=b[s, :], stage=stage)
            if os_:
                for j in range(cols):
                    for d in range(j + 1):
                        build.operand(f"{prefix}skew_b.lane{j}_{d}", bits=(0, bw), cycles=(t[s] + 1 + d,) * 2,
                                      value=b[s, j], signed=cfg.b_format.signed,
                                      elements=[element(i, j) for i in range(rows)], partners=a[:, s], stage=stage)
            else:
                for j in range(cols):
                    build.operand(f"{prefix}b_reg", bits=(j * bw, bw), cycles=(t[s] + 1,) * 2, value=b[s, j],
                                  signed=cfg.b_format.signed, elements=[element(i, j) for i in range(rows)],
                                  partners=a[:, s], stage=stage)
        # Partial sums: after step s-1 was added (end of t[s-1]+d) until step s is added (end of t[s]+d).
        partial = np.cumsum(a[:, :, None] * b[None, :, :], axis=1)  # rows x k x cols
        partial = wrap(partial, acc_w, signed_acc)
        c = wrap(a @ b, acc_w, signed_acc)
        drain = t[-1] + (rows + cols + 1 if os_ else 2)  # first cycle the bank offers row 0
        for i in range(rows):
            for j in range(cols):
                d = delay(i, j)
                for s in range(1, k):
                    build.register(f"{prefix}pe_{i}_{j}.acc", width=acc_w, cycles=(t[s - 1] + d + 1, t[s] + d),
                                   code=partial[i, s - 1, j], element=element(i, j), stage=stage)
                build.register(f"{prefix}pe_{i}_{j}.result", width=acc_w, cycles=(t[-1] + d + 1, drain - 1),
                               code=c[i, j], element=element(i, j), stage=stage)
                for shifted in range(rows - i):
                    build.register(f"{prefix}pe_{i}_{j}.result", width=acc_w, cycles=(drain + shifted,) * 2,
                                   code=c[i + shifted, j], element=element(i + shifted, j), stage=stage)


def visible_bits(manifest: dict, cfg, prefix: str = "core.") -> dict[str, int]:
    """Site path -> bits the model maps (from bit 0) for the engine's sites under ``prefix``."""
    visible = {}
    for site in manifest["fault_sites"]:
        path = site["path"]
        if not path.startswith(prefix):
            continue
        name = path[len(prefix):]
        leaf = name.rsplit(".", 1)[-1]
        if name.startswith("skew_a."):
            visible[path] = cfg.a_format.width
        elif name.startswith("skew_b.") or leaf in ("a_out", "b_out", "acc", "result", "a_reg", "b_reg"):
            visible[path] = site["width"]
    return visible


def tpe_plan(manifest: dict, workload) -> Plan:
    cfg = parse_config_data(manifest["config"], "manifest.json")
    check_engine(cfg, "manifest.json: config")
    params = manifest["parameters"]
    jobs, lasts = decode_jobs(workload, params["job"]["steps_per_beat"], cfg.c_rows, cfg.cols)
    cycles = beat_cycles(lasts, params["job_interval"])
    first = 0
    for job in jobs:
        job["cycles"] = cycles[first:first + job["beats"]]
        first += job["beats"]
    build = ExposureBuilder(manifest)
    engine_exposures(build, cfg, "core.", jobs)
    signed_acc = cfg.a_format.signed or cfg.b_format.signed
    expected = np.concatenate([golden.for_config(cfg)(job["a"], job["b"]).reshape(-1) for job in jobs])

    def finish(changes):
        return wrap(expected[None, :] + changes[0], cfg.acc_width, signed_acc)

    window = cycles[-1] + params["latency"] + cfg.c_rows
    return Plan(exposures=build.table(), stage_sizes=(expected.size,), finish=finish, expected=expected,
                window=window, visible=visible_bits(manifest, cfg))
