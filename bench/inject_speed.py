"""Fault-injection speed of the C++ harness engine against process-per-injection and the model's own speed.

For one design (default the 8x8 INT8 output-stationary array) and the ``gemm``
workload (default 2 jobs of K = 8), measured in the same run:

* injections per second of :class:`sim.fault.engine.Engine` on one core (batches
  run one after another) and on all cores (a process pool, one batch per task),
  with the two shortcuts (checkpoints, early stop) on, and on one core with each
  of them off, to show what each buys;
* process-per-injection: (a1) the existing cocotb path, ``sim.runner.run`` with the
  vectors' ``inject`` list, one simulator launch per injection (its outcomes are
  checked against the engine's); (a2) the harness binary relaunched per fault;
* (b) the fault-free simulation rate of the same Verilated model in the same
  harness (cycles per second, no injection);
* the efficiency ``inj/s x mean cycles per injection / fault-free cycles/s``, with
  the cycles per injection counted two ways: the cycles each run covers from
  reset to completion or timeout (what simulating every injection from reset
  would cost; above 1.0 when the shortcuts pay off) and the cycles the harness
  actually stepped (how close the stepped cycles run to the raw model speed).

Figures are medians of ``--repeats`` runs, in wall-clock time; on a machine shared with
other work, per-CPU-second figures (this process and its harness children) are printed
too. Results go to
``bench/results/inject_speed.json``.

Usage: python bench/inject_speed.py [--config configs/os_8x8.yaml] [--injections 20000]
"""

import argparse
import dataclasses
import json
import os
import random
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen.config import load_config  # noqa: E402
from sim.fault.engine import Engine  # noqa: E402
from sim.fault.model import Fault, FaultModel, InjectionResult, Outcome  # noqa: E402
from sim.runner import build, run  # noqa: E402
from sim.tb import tpe as tpe_testbench  # noqa: E402
from sim.tb.tpe_workload import gemm, gemm_jobs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "inject_speed.json"
TIMEOUT_FACTOR = 4
TARGETS = {"inj_per_s_per_core": 5000, "speedup_vs_process_per_injection": 1000, "efficiency": 0.5}


def sample_faults(engine: Engine, n: int, seed: int) -> list[Fault]:
    """``n`` SEUs uniform over (register bit, cycle of the window)."""
    rng = random.Random(seed)
    bits = [(site["path"], bit) for site in engine.manifest["fault_sites"] if site["kind"] == "register"
            for bit in range(site["width"])]
    faults = []
    for index in range(n):
        site, bit = rng.choice(bits)
        faults.append(Fault(index=index, model=FaultModel.SEU, site=site, bit=bit, cycle=rng.randrange(engine.window)))
    return faults


def batches(faults: list[Fault], size: int) -> list[list[Fault]]:
    return [faults[start:start + size] for start in range(0, len(faults), size)]


def run_batch(engine: Engine, batch: list[Fault]):
    results = engine.run(batch, timeout_factor=TIMEOUT_FACTOR)
    return results, engine.last_stats


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the harness processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_core(engine: Engine, faults: list[Fault], batch: int) -> dict:
    cpu = cpu_seconds()
    started = time.perf_counter()
    results, stepped, early = [], 0, 0
    for chunk in batches(faults, batch):
        got, stats = run_batch(engine, chunk)
        results += got
        stepped, early = stepped + stats.stepped_cycles, early + stats.early_stops
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "inj_per_s": len(faults) / seconds, "results": results,
            "inj_per_cpu_s": len(faults) / (cpu_seconds() - cpu), "stepped_cycles": stepped, "early_stops": early}


_worker: tuple[Engine, list[Fault]] | None = None  # set in each pool worker by _start_worker


def _start_worker(engine: Engine, faults: list[Fault]) -> None:
    global _worker
    _worker = engine, faults


def _run_slice(bounds: tuple[int, int]) -> list[tuple]:
    """Run faults[start:stop] in a worker; send back only the result fields (the parent holds the faults)."""
    engine, faults = _worker
    return [(r.outcome, r.differing, r.max_abs_diff, r.cycles, r.alarms, r.extra_beats)
            for r in engine.run(faults[bounds[0]:bounds[1]], timeout_factor=TIMEOUT_FACTOR)]


def all_cores(engine: Engine, faults: list[Fault], batch: int, workers: int) -> dict:
    """A fresh pool (forked, so workers inherit the engine and the faults) per measurement: once
    its workers are reaped, their CPU time and their harness children's is counted too."""
    bounds = [(start, min(start + batch, len(faults))) for start in range(0, len(faults), batch)]
    cpu = cpu_seconds()
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork"), initializer=_start_worker,
                             initargs=(engine.spec(), faults)) as pool:
        for _ in range(workers):
            pool.submit(sum, [1]).result()  # workers started before the clock runs
        started = time.perf_counter()
        parts = list(pool.map(_run_slice, bounds))
        results = [InjectionResult(faults[index], *fields)
                   for (start, _), part in zip(bounds, parts) for index, fields in enumerate(part, start)]
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "inj_per_s": len(faults) / seconds,
            "inj_per_cpu_s": len(faults) / (cpu_seconds() - cpu), "results": results}


def median_of(repeats: int, measure) -> dict:
    runs = [measure() for _ in range(repeats)]
    runs.sort(key=lambda r: r["inj_per_s"])
    middle = dict(runs[len(runs) // 2])
    middle["all_inj_per_s"] = [r["inj_per_s"] for r in runs]
    return middle


def cocotb_outcome(vectors: dict, results: dict) -> Outcome:
    if results.get("stopped"):
        return Outcome.HANG
    return Outcome.MASKED if tpe_testbench.first_mismatch(vectors, results) is None else Outcome.SDC


def process_per_injection_cocotb(model, cfg, faults, args, root: Path) -> dict:
    jobs = [{"label": f"gemm #{n}", **job} for n, job in enumerate(gemm_jobs(cfg, jobs=args.jobs, k=args.k,
                                                                             seed=args.seed))]
    outcomes = []
    started = time.perf_counter()
    for fault in faults:
        vectors = {"kind": "tpe", "seed": args.seed, "flow": {"valid_prob": 1.0, "ready_prob": 1.0}, "jobs": jobs,
                   "inject": [{"path": fault.site, "bit": fault.bit, "cycle": fault.cycle}]}
        result = run(model, tpe_testbench, vectors, root / f"cocotb-{fault.index}")
        outcomes.append(cocotb_outcome(vectors, result.results))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "inj_per_s": len(faults) / seconds, "outcomes": outcomes}


def process_per_injection_harness(engine: Engine, faults: list[Fault]) -> dict:
    started = time.perf_counter()
    results = [engine.run([fault], timeout_factor=TIMEOUT_FACTOR)[0] for fault in faults]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "inj_per_s": len(faults) / seconds, "results": results}


def fault_free_rate(engine: Engine, repeats: int) -> dict:
    target = max(1, int(2_000_000 / engine.window))  # about 2 M cycles per measurement
    rates, cpu_rates = [], []
    for _ in range(repeats):
        figures = engine.free_run(target)
        rates.append(figures["cycles"] / figures["seconds"])
        cpu_rates.append(figures["cycles"] / figures["cpu_seconds"])
    return {"cycles_per_s": statistics.median(rates), "all_cycles_per_s": rates, "runs": target,
            "cycles_per_cpu_s": statistics.median(cpu_rates), "state_bytes": figures["state_bytes"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/os_8x8.yaml")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--injections", type=int, default=20000, help="faults per measurement (default 20000)")
    parser.add_argument("--batch", type=int, default=2000, help="faults per harness process (default 2000)")
    parser.add_argument("--cocotb", type=int, default=6, help="injections through cocotb, one launch each")
    parser.add_argument("--relaunch", type=int, default=300, help="injections with the harness relaunched per fault")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--build-root", type=Path, default=Path("build"))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()

    cfg = load_config(args.config)
    model = build(cfg, build_root=args.build_root)
    workload = gemm(cfg, model.manifest, jobs=args.jobs, k=args.k, seed=args.seed)
    engine = Engine.prepare(model.root, model.verilog, model.manifest, workload, build_root=args.build_root)
    faults = sample_faults(engine, args.injections, args.seed)
    print(f"{cfg.name}: {workload.name}, window {engine.window} cycles, "
          f"{sum(s['width'] for s in model.manifest['fault_sites'])} register bits, {len(faults)} SEUs, "
          f"batches of {args.batch}, timeout {TIMEOUT_FACTOR} x window")

    free = fault_free_rate(engine, args.repeats)
    variants = {}
    for name, checkpoints, early in (("checkpoints+early_stop", True, True), ("checkpoints", True, False),
                                     ("early_stop", False, True), ("neither", False, False)):
        variant = dataclasses.replace(engine, checkpoints=checkpoints, early_stop=early, last_stats=None)
        variants[name] = median_of(args.repeats, lambda v=variant: one_core(v, faults, args.batch))
    best = variants["checkpoints+early_stop"]
    reference_results = best["results"]
    for name, figures in variants.items():
        assert figures["results"] == reference_results, f"{name}: results differ from the default engine"

    parallel = median_of(args.repeats, lambda: all_cores(engine, faults, args.batch, args.workers))
    assert parallel["results"] == reference_results, "results differ between one core and the pool"

    relaunch = process_per_injection_harness(engine, faults[:args.relaunch])
    assert relaunch["results"] == reference_results[:args.relaunch]
    cocotb = process_per_injection_cocotb(model, cfg, faults[:args.cocotb], args, model.root / "runs" / "inject-bench")
    agree = sum(o == r.outcome for o, r in zip(cocotb["outcomes"], reference_results))

    covered = statistics.mean(r.cycles for r in reference_results)  # cycles from reset each run represents
    outcomes = {o.value: sum(r.outcome is o for r in reference_results) for o in Outcome}
    per_core = best["inj_per_s"]

    def efficiency(rate, cycles):
        return rate * cycles / free["cycles_per_s"]

    report = {
        "design": cfg.name,
        "workload": workload.params,
        "window_cycles": engine.window,
        "injections": len(faults),
        "batch": args.batch,
        "timeout_factor": TIMEOUT_FACTOR,
        "workers": args.workers,
        "outcomes": outcomes,
        "fault_free_cycles_per_s": free["cycles_per_s"],
        "fault_free_all_cycles_per_s": free["all_cycles_per_s"],
        "fault_free_cycles_per_cpu_s": free["cycles_per_cpu_s"],
        "checkpoint_bytes": free["state_bytes"],
        "one_core": {name: {"inj_per_s": v["inj_per_s"], "all_inj_per_s": v["all_inj_per_s"],
                            "inj_per_cpu_s": v["inj_per_cpu_s"],
                            "stepped_cycles_per_injection": v["stepped_cycles"] / len(faults),
                            "early_stops": v["early_stops"]} for name, v in variants.items()},
        "all_cores_inj_per_s": parallel["inj_per_s"],
        "all_cores_all_inj_per_s": parallel["all_inj_per_s"],
        "all_cores_inj_per_cpu_s": parallel["inj_per_cpu_s"],
        "process_per_injection": {
            "cocotb_inj_per_s": cocotb["inj_per_s"], "cocotb_injections": args.cocotb,
            "cocotb_outcomes_agree": f"{agree}/{args.cocotb}",
            "harness_relaunch_inj_per_s": relaunch["inj_per_s"], "harness_relaunch_injections": args.relaunch,
        },
        "mean_cycles_covered_per_injection": covered,
        "mean_cycles_stepped_per_injection": best["stepped_cycles"] / len(faults),
        "speedup_vs_cocotb_process_per_injection": per_core / cocotb["inj_per_s"],
        "speedup_vs_harness_relaunch": per_core / relaunch["inj_per_s"],
        "efficiency_covered": efficiency(per_core, covered),
        "efficiency_stepped": efficiency(per_core, best["stepped_cycles"] / len(faults)),
        "efficiency_covered_cpu": best["inj_per_cpu_s"] * covered / free["cycles_per_cpu_s"],
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg()[0],
    }
    report["targets"] = {
        "inj_per_s_per_core": [per_core, TARGETS["inj_per_s_per_core"]],
        "speedup_vs_process_per_injection": [report["speedup_vs_cocotb_process_per_injection"],
                                             TARGETS["speedup_vs_process_per_injection"]],
        "efficiency": [report["efficiency_covered"], TARGETS["efficiency"]],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")

    print(f"fault-free model rate          {free['cycles_per_s']:12,.0f} cycles/s "
          f"({free['cycles_per_cpu_s']:,.0f} per CPU second)")
    for name, figures in report["one_core"].items():
        print(f"engine, 1 core, {name:23} {figures['inj_per_s']:9,.0f} inj/s  "
              f"({figures['inj_per_cpu_s']:,.0f} per CPU second; "
              f"{figures['stepped_cycles_per_injection']:.1f} cycles stepped per injection, "
              f"{figures['early_stops']} early stops)")
    print(f"engine, {args.workers} cores                {parallel['inj_per_s']:9,.0f} inj/s "
          f"({parallel['inj_per_s'] / per_core:.2f}x one core; {parallel['inj_per_cpu_s']:,.0f} per CPU second, "
          f"pool included)")
    print(f"process per injection, cocotb  {cocotb['inj_per_s']:12.2f} inj/s  (outcomes agree with the engine "
          f"{agree}/{args.cocotb})")
    print(f"process per injection, harness {relaunch['inj_per_s']:12.1f} inj/s")
    print(f"speed-up vs cocotb per process {report['speedup_vs_cocotb_process_per_injection']:12,.0f}x   "
          f"vs harness relaunch {report['speedup_vs_harness_relaunch']:.0f}x")
    print(f"cycles per injection           {covered:12.1f} covered (reset to end), "
          f"{report['mean_cycles_stepped_per_injection']:.1f} stepped")
    print(f"efficiency                     {report['efficiency_covered']:12.2f} (covered cycles), "
          f"{report['efficiency_stepped']:.2f} (stepped cycles), "
          f"{report['efficiency_covered_cpu']:.2f} (covered cycles, CPU time)")
    print(f"outcomes                       {outcomes}")
    for key, (value, target) in report["targets"].items():
        print(f"target {key:31} {value:12,.2f} >= {target:,}: {'met' if value >= target else 'NOT met'}")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
