"""Task-level resilience of the tiny MoE-ViT: the full sweep of ``npuforge resilience`` (issue 21).

Every layer type (and all at once), both targets (weights, activations), the three protections
(none, Ranger per-layer bounds, ProAct per-channel bounds), bit error rates 1e-6 .. 1e-3, on
held-out scenes of the synthetic data with calibration scenes from the training stream.
Writes ``bench/results/resilience.json`` (the table: every point with its per-draw values and
the fault-free metrics of each protection) and ``bench/results/resilience.png`` (metric against
bit error rate, one curve per protection), and prints the rows for ``all``.

Usage: python bench/resilience.py [--config configs/moevit/tiny.yaml] [--images 8] [--trials 3]
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gen.config.moevit import load_moevit  # noqa: E402
from sim.golden.moevit.params import load_params  # noqa: E402
from sim.moevit.resilience import LAYER_TYPES, plot, sweep  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "moevit" / "tiny.yaml")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--bers", default="1e-6,1e-5,1e-4,1e-3")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "resilience")
    args = parser.parse_args(argv)
    cfg = load_moevit(args.config)
    started = time.monotonic()
    report = sweep(cfg, load_params(cfg), bers=[float(b) for b in args.bers.split(",")],
                   targets=["weights", "activations"], clips=["none", "ranger", "proact"],
                   layers=[*LAYER_TYPES, "all"], images=args.images, calibration=args.calibration,
                   trials=args.trials)
    report["seconds"] = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.out.with_suffix(".png"))
    print(f"fault-free: {json.dumps(report['fault_free'])}")
    for p in report["points"]:
        if p["layer"] == "all":
            print(f"{p['task']:6} {p['target']:12} ber {p['ber']:.0e} {p['clip']:7} {p['metric']} {p['mean']:.4f}")
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
