"""Simulation speed and build time of the 8x8 output-stationary array through the runner.

Prints, for a fresh build root:
* elaboration time (config -> Verilog + manifest) and Verilator build time,
* simulated cycles per wall-clock second of the cocotb cycle loop, full rate and with
  the sink ready half the time, and the whole run's wall time including simulator
  start-up (medians of three runs),
* the same figures for the 1x1 array measured in the same run, as the baseline: the
  ratio says how much of the cost is the design and how much is the Python testbench.

Usage: python bench/sim_speed.py [--config configs/os_8x8.yaml] [--jobs 500] [--keep DIR]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gen.config import load_config, parse_config_data  # noqa: E402
from gen.elaborate import elaborate  # noqa: E402
from npuforge.registry import sim_testbench  # noqa: E402
from sim.runner import build, run  # noqa: E402

REPEATS = 3  # cycles/s and run time are medians of this many runs


def measure(cfg, root: Path, jobs: int) -> dict:
    started = time.perf_counter()
    elaborate(cfg)
    elaborate_s = time.perf_counter() - started
    model = build(cfg, build_root=root)
    assert not model.reused
    figures = {"elaborate_s": elaborate_s, "build_s": model.seconds}
    for label, ready in (("full", 1.0), ("backpressure", 0.5)):
        vectors = sim_testbench(cfg).make_vectors(cfg, seed=1, n_random=jobs, ready_prob=ready)
        speeds, walls = [], []
        for repeat in range(REPEATS):
            result = run(model, sim_testbench(cfg), vectors, root / f"run-{label}-{repeat}")
            assert result.ok, result.mismatch
            speeds.append(result.results["cycles"] / result.results["loop_seconds"])
            walls.append(result.seconds)
        figures[f"{label}_cycles"] = result.results["cycles"]
        figures[f"{label}_cycles_per_s"] = statistics.median(speeds)
        figures[f"{label}_run_s"] = statistics.median(walls)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/os_8x8.yaml")
    parser.add_argument("--jobs", type=int, default=500, help="random jobs per run (default 500)")
    parser.add_argument("--keep", type=Path, default=None, help="build root to keep (default: a temp dir)")
    args = parser.parse_args()

    cfg = load_config(args.config)
    baseline = parse_config_data({**cfg.normalized(), "name": "bench_1x1", "rows": 1, "cols": 1,
                                  "acc_width": None}, "baseline")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        subject = measure(cfg, root, args.jobs)
        base = measure(baseline, root, args.jobs)

    print(f"{'figure':28} {cfg.name:>14} {'1x1 baseline':>14} {'ratio':>8}")
    for key in subject:
        ratio = subject[key] / base[key] if base[key] else float("nan")
        print(f"{key:28} {subject[key]:14.2f} {base[key]:14.2f} {ratio:8.2f}")


if __name__ == "__main__":
    main()
