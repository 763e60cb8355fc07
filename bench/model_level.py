"""Model-level injection against RTL injection: agreement and speed on the same faults (issue 21).

For each campaign (default: the 8x8 output-stationary array, the 8x8 matrix2d grid and the
8x8 NPU tile of ``configs/``), one sample of ``--samples`` faults per block and fault model over
the sites the model level maps is run through the RTL engine (the C++ harness, one core) and
the model engine (numpy, one core), and every injection is compared
(``sim.fault.crosscheck``). Printed per design: injections, agreement (outcome and corruption),
the blocks below 100%, the disagreements' causes, injections per second at both levels and
their ratio, wall clock and per CPU second of each engine's run (the harness is a child
process). Results go to ``bench/results/model_level.json``.

Usage: python bench/model_level.py [--campaign FILE ...] [--samples 2000]
"""

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from npuforge.registry import kind_workloads  # noqa: E402
from sim.fault.campaign import design_and_workload  # noqa: E402
from sim.fault.config import load_campaign  # noqa: E402
from sim.fault.crosscheck import crosscheck  # noqa: E402
from sim.fault.engine import Engine  # noqa: E402
from sim.fault.model import FaultModel  # noqa: E402
from sim.fault.model_level import ModelEngine  # noqa: E402

DEFAULTS = ["bench/campaigns/os_8x8_rb1_seu.yaml", "bench/campaigns/m2d_8x8_seu.yaml",
            "configs/campaigns/npu_tile_8x8_seu.yaml"]


def measure(path: Path, samples: int, build_root: Path) -> dict:
    campaign = load_campaign(path, workloads=kind_workloads)
    made = design_and_workload(campaign, build_root=build_root)
    rtl = Engine.prepare(made.build_dir, made.verilog, made.manifest, made.workload, build_root=build_root)
    model = ModelEngine.prepare(made.build_dir, made.verilog, made.manifest, made.workload, build_root=build_root)
    models = [FaultModel.SEU] + ([FaultModel.MEM_SEU] if any(s["kind"] == "memory"
                                                            for s in model.visible_manifest()["fault_sites"]) else [])
    check = crosscheck(rtl, model, models=models, samples=samples, seed=1)
    row = check.as_dict()
    row["causes"] = dict(Counter(d["cause"] for d in check.disagreements))
    row["disagreements"] = check.disagreements[:50]
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", action="append", type=Path, help="campaign file (repeatable)")
    parser.add_argument("--samples", type=int, default=2000, help="faults per block and fault model")
    parser.add_argument("--build-root", type=Path, default=ROOT / "build")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "model_level.json")
    args = parser.parse_args(argv)
    rows = []
    for path in args.campaign or [ROOT / p for p in DEFAULTS]:
        started = time.monotonic()
        row = measure(path, args.samples, args.build_root)
        row["campaign"] = str(Path(path).resolve().relative_to(ROOT))
        rows.append(row)
        low = {b: round(e["agreement"], 4) for b, e in row["per_block"].items() if e["agreement"] < 1}
        print(f"{row['design']}: {row['injections']} injections, agreement {row['agreement']:.4%}, "
              f"mapped {row['coverage']['mapped_bits']} of {row['coverage']['all_bits']} bits; "
              f"RTL {row['rtl_inj_per_s']:,.0f} inj/s, model {row['model_inj_per_s']:,.0f} inj/s, "
              f"ratio {row['speed_ratio']:.1f}x wall; per CPU second RTL {row['rtl_inj_per_cpu_s']:,.0f}, model "
              f"{row['model_inj_per_cpu_s']:,.0f}, ratio {row['speed_ratio_cpu']:.1f}x "
              f"({time.monotonic() - started:.0f} s with builds)")
        print(f"  blocks below 100%: {low or 'none'}; causes: {row['causes'] or 'none'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"samples_per_stratum": args.samples, "designs": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
