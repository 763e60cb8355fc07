"""The accuracy cost of the accelerator's variant of Edge-MoE's formats.

Edge-MoE's formats (configs/moevit/edge_moe.yaml: s10.22 features, an accumulator that truncates
every product, truncation and wrap-around) against the formats the npuforge accelerator computes
(configs/moevit/edge_moe_exact.yaml: s8.16 features, exact products in s24.32, round half to even
and saturation), both against the float network on the same random weights (std 0.1) and images:
the largest and the mean absolute output difference of the fixed-point network with exact
nonlinearities (``fixed-exact``) and with the hardware units (``fixed-hw``), per task.

At Edge-MoE's sizes (129 tokens, dim 192, 16 experts) with ``--layers`` blocks (default 2: one dense,
one MoE block; the whole 12 is slow on the shared machine). Run: ``python bench/edge_moe_formats.py``;
results go to ``bench/results/edge_moe_formats.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from gen.config.moevit import MoevitConfig  # noqa: E402
from sim.golden.moevit import fixed, reference  # noqa: E402
from sim.golden.moevit.params import init_params  # noqa: E402

CONFIGS = ("edge_moe", "edge_moe_exact")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="blocks of the network (default 2)")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "edge_moe_formats.json")
    args = parser.parse_args()
    rows = []
    for name in CONFIGS:
        data = yaml.safe_load((ROOT / "configs" / "moevit" / f"{name}.yaml").read_text())
        cfg = MoevitConfig.model_validate({**data, "layers": args.layers})
        params = init_params(cfg, seed=13, std=0.1)
        images = np.random.default_rng(14).random((args.images, cfg.channels, cfg.height, cfg.width))
        variants = fixed.VARIANTS(cfg)
        for task in cfg.task_names:
            want = reference.forward(params, images, task, cfg)
            for variant in ("fixed-exact", "fixed-hw"):
                started = time.monotonic()
                got = fixed.forward(params, images, task, cfg, variants[variant])
                diff = np.abs(got - want)
                row = {"config": name, "task": task, "variant": variant, "max_abs": float(diff.max()),
                       "mean_abs": float(diff.mean()), "output_range": float(np.abs(want).max()),
                       "seconds": time.monotonic() - started}
                rows.append(row)
                print(f"{name:<15} {task:<5} {variant:<11} max |fixed - float| {row['max_abs']:.2e}  mean "
                      f"{row['mean_abs']:.2e}  (outputs up to {row['output_range']:.2f}; {row['seconds']:.0f} s)",
                      flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"layers": args.layers, "images": args.images, "std": 0.1, "rows": rows},
                                    indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
