"""Campaign throughput of the Dask executor on 1 and 2 workers, against the local executor, in one run.

One campaign (default ``configs/campaigns/os_8x8_seu.yaml``, the 8x8 INT8
output-stationary array, with the workload made longer, ``--jobs 8 --k 32`` by default,
so that a batch of 2,000 injections is about a second of work, and resized to
``--injections`` SEUs) is prepared once; then the same faults run, in the same batches, on:

* the local executor (``sim.fault.executor.execute``) with 1 and 2 worker processes;
* the Dask executor (``sim.fault.dask_executor.execute``) on a ``LocalCluster`` of 1 and
  of 2 single-threaded worker processes on loopback.

Each figure is the wall-clock time of the executor's ``execute`` call (from the call to
the last batch handed over; results are collected in memory, not stored), the median of
``--repeats`` rounds of all four (so that a change in the machine's load hits every
variant alike), with CPU seconds of every process involved (client, scheduler and workers,
harness runs) next to them. The LocalCluster's start (and the workers' first engine build, which
reuses the compiled harness of this build root) is timed separately and kept out of the
ratios: a campaign pays it once. The bench prints and records

* the Dask speed-up from 1 to 2 workers (target >= 1.7x on 2 cores),
* the Dask overhead at equal workers, ``t_dask / t_local - 1`` (target < 15 %),
* the load average before and after (the machine may be shared: the figures are only as
  good as the cores were free),

checks that every run returned the same results, and writes ``bench/results/campaign_scaling.json``.

Usage: python bench/campaign_scaling.py [--campaign configs/campaigns/os_8x8_seu.yaml] [--injections 20000]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from npuforge.registry import kind_workloads  # noqa: E402
from sim.fault import campaign as campaigns  # noqa: E402
from sim.fault import dask_executor, executor  # noqa: E402
from sim.fault.config import load_campaign  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "campaign_scaling.json"
#: Seconds between a cluster's start and its timed run: the new worker processes finish starting.
SETTLE = 2.0
TARGETS = {"dask_speedup_1_to_2": 1.7, "dask_overhead_max": 0.15}


def resized_campaign(path: Path, injections: int, scratch: Path, workload: dict) -> Path:
    """A copy of the campaign at ``path`` with ``injections`` samples and the ``workload`` parameters
    changed (design path made absolute)."""
    data = yaml.safe_load(path.read_text())
    data["workload"].update(workload)
    data["design"] = str((path.parent / data["design"]).resolve())
    data["faults"] = {k: v for k, v in data["faults"].items() if k not in ("margin", "confidence")}
    data["faults"]["samples"] = injections
    copy = scratch / path.name
    copy.write_text(yaml.safe_dump(data))
    return copy


def own_cpu() -> float:
    """CPU seconds of this process and of its finished children (harness runs, a closed process pool)."""
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for field in ("ru_utime", "ru_stime"))


def _process_tree_cpu() -> float:
    """On a Dask worker: CPU seconds of the worker process and of its finished children (harness runs)."""
    import psutil

    times = psutil.Process().cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def timed(run, client=None) -> tuple[float, float, list]:
    """(wall seconds, CPU seconds of every process involved, results by fault index) of one run."""
    got = []
    workers_cpu = (lambda: sum(client.run(_process_tree_cpu).values())) if client is not None else (lambda: 0.0)
    cpu, remote = own_cpu(), workers_cpu()
    started = time.perf_counter()
    run(got.extend)
    elapsed = time.perf_counter() - started
    cpu = own_cpu() - cpu + workers_cpu() - remote
    return elapsed, cpu, sorted(got, key=lambda r: r.fault.index)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaign", type=Path, default=ROOT / "configs" / "campaigns" / "os_8x8_seu.yaml")
    parser.add_argument("--injections", type=int, default=20000)
    parser.add_argument("--jobs", type=int, default=8, help="GEMM jobs of the workload (longer injections "
                                                             "amortise the per-batch cost)")
    parser.add_argument("--k", type=int, default=32, help="reduction length of each job")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=None,
                        help="faults per batch (default: the executors' default for 2 workers)")
    parser.add_argument("--build-root", type=Path, default=ROOT / "build")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        campaign = load_campaign(resized_campaign(args.campaign, args.injections, Path(scratch),
                                                  {"jobs": args.jobs, "k": args.k}),
                                 workloads=kind_workloads)
        prepared = campaigns.prepare(campaign, build_root=args.build_root)
    engine, faults = prepared.engine, prepared.sample.faults
    timeout = campaign.config.timeout_factor
    batch = args.batch or executor.batch_size_for(len(faults), 2)
    print(f"{campaign.config.name}: {len(faults)} injections, window {engine.window} cycles, batches of {batch}; "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)

    def local(workers):
        return lambda sink: executor.execute(engine, faults, timeout_factor=timeout, workers=workers,
                                             batch_size=batch, on_batch=sink)

    names = {"local_1": "local, 1 worker", "local_2": "local, 2 workers", "dask_1": "dask, 1 worker",
             "dask_2": "dask, 2 workers"}
    runs = {name: {"seconds": [], "cpu": []} for name in names}
    startup = {"dask_1": [], "dask_2": []}
    reference = None

    def record(name: str, run, client=None) -> None:
        nonlocal reference
        elapsed, used, results = timed(run, client)
        if reference is None:
            reference = results
        elif results != reference:
            raise SystemExit(f"{names[name]}: results differ from the local executor's")
        runs[name]["seconds"].append(elapsed)
        runs[name]["cpu"].append(used)
        print(f"  {names[name]:<17} {elapsed:7.2f} s  {len(faults) / elapsed:8,.0f} inj/s  {used:7.2f} CPU s",
              flush=True)

    # Rounds of all four, so that a change in the machine's load hits every variant alike.
    for round_ in range(args.repeats):
        print(f"round {round_ + 1} of {args.repeats}", flush=True)
        record("local_1", local(1))
        record("local_2", local(2))
        for workers in (1, 2):
            started = time.perf_counter()
            with dask_executor.connect(None, workers) as client:

                def dask(sink, subset=faults, client=client, workers=workers):
                    dask_executor.execute(engine, subset, timeout_factor=timeout, workers=workers,
                                          batch_size=batch, on_batch=sink, client=client,
                                          worker_cache=args.build_root.resolve())

                # An untimed first run builds each worker's engine: start-up, like the cluster's.
                dask(lambda results: None, faults[:workers * batch])
                startup[f"dask_{workers}"].append(time.perf_counter() - started)
                time.sleep(SETTLE)
                record(f"dask_{workers}", dask, client)
    seconds = {name: statistics.median(run["seconds"]) for name, run in runs.items()}
    cpu = {name: statistics.median(run["cpu"]) for name, run in runs.items()}
    startup = {name: statistics.median(values) for name, values in startup.items()}
    print("medians: " + ", ".join(f"{names[n]} {seconds[n]:.2f} s ({len(faults) / seconds[n]:,.0f} inj/s)"
                                  for n in names))
    load_after = os.getloadavg()

    speedup = seconds["dask_1"] / seconds["dask_2"]
    overhead = {n: seconds[f"dask_{n}"] / seconds[f"local_{n}"] - 1 for n in (1, 2)}
    cpu_overhead = {n: cpu[f"dask_{n}"] / cpu[f"local_{n}"] - 1 for n in (1, 2)}
    local_speedup = seconds["local_1"] / seconds["local_2"]
    print(f"dask speed-up 1 -> 2 workers: {speedup:.2f}x (target >= {TARGETS['dask_speedup_1_to_2']}x; "
          f"local executor: {local_speedup:.2f}x)")
    for n in (1, 2):
        print(f"dask overhead at {n} worker(s): {100 * overhead[n]:+.1f} % wall clock (target < "
              f"{100 * TARGETS['dask_overhead_max']:.0f} %), {100 * cpu_overhead[n]:+.1f} % CPU time")
    print(f"LocalCluster start + first engine build: {startup['dask_1']:.1f} s (1 worker), "
          f"{startup['dask_2']:.1f} s (2 workers), not in the ratios")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min), cores "
          f"{len(os.sched_getaffinity(0))}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "campaign": str(args.campaign.relative_to(ROOT) if args.campaign.is_absolute() else args.campaign),
        "injections": len(faults), "batch": batch, "window_cycles": engine.window, "repeats": args.repeats,
        "runs": runs, "seconds": seconds, "inj_per_s": {k: len(faults) / v for k, v in seconds.items()},
        "dask_speedup_1_to_2": speedup, "local_speedup_1_to_2": local_speedup,
        "dask_overhead": {str(n): v for n, v in overhead.items()},
        "cpu_seconds": cpu, "dask_cpu_overhead": {str(n): v for n, v in cpu_overhead.items()},
        "dask_startup_seconds": startup,
        "targets": TARGETS,
        "met": {"dask_speedup_1_to_2": speedup >= TARGETS["dask_speedup_1_to_2"],
                "dask_overhead": all(v < TARGETS["dask_overhead_max"] for v in overhead.values())},
        "load_average_before": load_before, "load_average_after": load_after,
        "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
    }, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
