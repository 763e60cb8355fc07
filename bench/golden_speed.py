"""Speed of the MoE-ViT fixed-point golden (``sim/golden/moevit/fixed.py``) against the row-by-row
version it replaced, measured in one run, with the outputs compared bit for bit.

The baseline is the source tree of commit ``--base`` (default 703993f, the last commit whose
softmax, gate and LayerNorm goldens ran row by row), unpacked with ``git archive`` into a
temporary directory. For every variant of ``fixed.VARIANTS(cfg)`` (what ``npuforge eval``
reports), a worker process per tree -- baseline first, then this tree -- runs ``forward_codes``
on the same held-out scenes (``sim.moevit.data``, ``HELD_OUT_SEED``) for every task, in batches
of 8 images as ``npuforge eval`` does, and reports its CPU and wall seconds; the outputs of the
two trees must be identical (exit 1 otherwise). The ratio is baseline time over new time, per
variant and in total, in CPU seconds (robust on a machine shared with other work) and in wall
seconds.

``--end-to-end`` also times ``python -m npuforge eval CONFIG --images N`` in both trees (all
variants, float included, plus the dataset and trivial baseline that eval makes).

Results go to ``bench/results/golden_speed.json``.

Usage: python bench/golden_speed.py [--config configs/moevit/tiny.yaml] [--images 32]
       [--variant NAME ...] [--base COMMIT] [--end-to-end]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "golden_speed.json"
#: The last commit with the row-by-row softmax, gate and LayerNorm goldens.
BASE = "703993f"
BATCH = 8


def worker(tree: Path, config: str, images: int, variant: str, out: Path) -> None:
    """In a fresh process whose imports come from ``tree``: time ``forward_codes`` of ``variant`` on every
    task, save the outputs to ``out`` (npz) and print ``{"cpu": s, "wall": s}`` as JSON."""
    sys.path.insert(0, str(tree))
    import numpy as np

    from gen.config.moevit import load_moevit
    from sim.golden.moevit import fixed
    from sim.golden.moevit.params import load_params
    from sim.moevit.data import HELD_OUT_SEED, make_dataset

    cfg = load_moevit(tree / config)
    codes = fixed.quantize_params(load_params(cfg), cfg)
    classes = next((task.classes for task in cfg.tasks if task.type == "segmentation"), 5)
    data = make_dataset(images, HELD_OUT_SEED, height=cfg.height, width=cfg.width, classes=classes)
    pixels = fixed.quantize(data.images, cfg.format("pixel"))
    approx = fixed.VARIANTS(cfg)[variant]
    outputs = {}
    cpu, wall = time.process_time(), time.perf_counter()
    for task in cfg.tasks:
        outputs[task.name] = np.concatenate([fixed.forward_codes(codes, pixels[start:start + BATCH], task.name, cfg,
                                                                 approx) for start in range(0, images, BATCH)])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    np.savez(out, **outputs)
    print(json.dumps({"cpu": cpu, "wall": wall}))


def run_worker(tree: Path, args, variant: str, out: Path) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), "--config", args.config,
               "--images", str(args.images), "--variant", variant, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    if done.returncode != 0:
        sys.exit(f"golden_speed: the worker in {tree} failed on {variant}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_outputs(a: Path, b: Path) -> bool:
    import numpy as np

    with np.load(a) as x, np.load(b) as y:
        return set(x.files) == set(y.files) and all(np.array_equal(x[key], y[key]) for key in x.files)


def end_to_end(tree: Path, args) -> dict:
    """CPU and wall seconds of ``python -m npuforge eval CONFIG --images N`` run in ``tree``."""
    before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "npuforge", "eval", args.config, "--images", str(args.images)],
                          cwd=tree, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"golden_speed: npuforge eval failed in {tree}: {done.stderr.strip().splitlines()[-1:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu": cpu, "wall": wall, "report": done.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/moevit/tiny.yaml", help="a kind: moevit config with weights")
    parser.add_argument("--images", type=int, default=32, help="held-out scenes (default 32)")
    parser.add_argument("--variant", action="append", default=None, help="only this variant (repeatable)")
    parser.add_argument("--base", default=BASE, help=f"the baseline commit (default {BASE})")
    parser.add_argument("--end-to-end", action="store_true", help="also time npuforge eval in both trees")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.config, args.images, args.variant[0], args.out)
        return

    sys.path.insert(0, str(ROOT))
    from gen.config.moevit import load_moevit
    from sim.golden.moevit import fixed

    variants = args.variant or list(fixed.VARIANTS(load_moevit(ROOT / args.config)))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    result = {"config": args.config, "images": args.images, "tasks": "all", "batch": BATCH, "base": args.base,
              "new": commit + (" (+ uncommitted changes)" if subprocess.run(
                  ["git", "-C", str(ROOT), "diff", "--quiet", "HEAD"]).returncode else ""),
              "variants": {}}
    with tempfile.TemporaryDirectory(prefix="golden_speed_") as scratch:
        base = Path(scratch) / "base"
        base.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.base], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
        print(f"{'variant':18} {'base CPU s':>10} {'new CPU s':>10} {'ratio':>7} {'base wall':>10} {'new wall':>9} "
              f"{'ratio':>7}  outputs", flush=True)
        totals = {"base_cpu": 0.0, "new_cpu": 0.0, "base_wall": 0.0, "new_wall": 0.0}
        identical = True
        for variant in variants:
            old = run_worker(base, args, variant, Path(scratch) / "base.npz")
            new = run_worker(ROOT, args, variant, Path(scratch) / "new.npz")
            same = same_outputs(Path(scratch) / "base.npz", Path(scratch) / "new.npz")
            identical &= same
            row = {"base_cpu": old["cpu"], "new_cpu": new["cpu"], "base_wall": old["wall"], "new_wall": new["wall"],
                   "cpu_ratio": old["cpu"] / new["cpu"], "wall_ratio": old["wall"] / new["wall"], "identical": same}
            result["variants"][variant] = row
            for key in totals:
                totals[key] += row[key]
            print(f"{variant:18} {old['cpu']:10.2f} {new['cpu']:10.2f} {row['cpu_ratio']:7.1f} {old['wall']:10.2f} "
                  f"{new['wall']:9.2f} {row['wall_ratio']:7.1f}  {'identical' if same else 'DIFFER'}", flush=True)
        totals["cpu_ratio"] = totals["base_cpu"] / totals["new_cpu"]
        totals["wall_ratio"] = totals["base_wall"] / totals["new_wall"]
        result["total"] = totals
        print(f"{'all variants':18} {totals['base_cpu']:10.2f} {totals['new_cpu']:10.2f} {totals['cpu_ratio']:7.1f} "
              f"{totals['base_wall']:10.2f} {totals['new_wall']:9.2f} {totals['wall_ratio']:7.1f}", flush=True)
        if args.end_to_end:
            old, new = end_to_end(base, args), end_to_end(ROOT, args)
            result["end_to_end"] = {
                "command": f"python -m npuforge eval {args.config} --images {args.images}",
                "base_cpu": old["cpu"], "new_cpu": new["cpu"], "base_wall": old["wall"], "new_wall": new["wall"],
                "cpu_ratio": old["cpu"] / new["cpu"], "wall_ratio": old["wall"] / new["wall"],
                "same_report": old["report"] == new["report"]}
            e2e = result["end_to_end"]
            print(f"{'npuforge eval':18} {old['cpu']:10.2f} {new['cpu']:10.2f} {e2e['cpu_ratio']:7.1f} "
                  f"{old['wall']:10.2f} {new['wall']:9.2f} {e2e['wall_ratio']:7.1f}  "
                  f"{'same report' if e2e['same_report'] else 'REPORTS DIFFER'}", flush=True)
            identical &= e2e["same_report"]
    result["load_average"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {RESULTS.relative_to(ROOT)} (load average {result['load_average'][0]:.1f})")
    if not identical:
        sys.exit("golden_speed: the new golden's outputs differ from the baseline's")


if __name__ == "__main__":
    main()
