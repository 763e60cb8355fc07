"""The Edge-MoE-size accelerator (configs/moevit/accel_edge_moe.yaml) on one image, in the fast harness.

What runs (``--ops network``, the default): the whole network as one descriptor chain, image to
head (``sim.moevit.compiler.network_program``): IM2COL, the patch embedding's LINEAR and the position
ADD; per block LAYERNORM, qkv, the attention of every head on the linear engine (``Q K^T``,
``SOFTMAX``, ``A V``: ``attention: {engine: unified}``), proj with the residual, LAYERNORM, the dense
MLP (fc1 + GELU, fc2 + residual) or the MoE layer (gate LINEAR, GATE, every active expert's gathered
fc1 + GELU and scattered, score-weighted fc2, the block's ADD); the final LAYERNORM and the task head.
Every operator reads what an earlier one wrote and is checked bit-exact against the golden
(configs/moevit/edge_moe_exact.yaml, seeded random weights). ``--ops linear`` runs the linear
operator set instead, each fed the golden's own inputs (the table of earlier measurements).

Printed: per operator (for the first ``--detail`` blocks, then per operator kind over the whole
run): cycles, MACs, MAC utilisation (MACs / (cycles x 448)), bytes per cycle over both ports,
the cycles of ``npuforge perf``'s roofline for the same operator on this hardware (448 MACs,
2 x 32 bytes per cycle) and of Edge-MoE's schedule for it (``edge_moe_hw.yaml``). Totals of the
whole descriptor list in one run beside Edge-MoE's schedule of the whole image (5.20M cycles)
and the 448-MAC bound of the whole image (1.75M); and the harness's simulated cycles per second.

Run: ``python bench/accel_edge_moe.py [--layers N] [--ops network|linear] [--build quick]`` (in the
venv; the Verilator build of the 7x64 array takes several minutes). ``--layers`` compiles only the
first N blocks (default: all 12); results go to ``bench/results/accel_edge_moe.json``.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gen.config import load_config  # noqa: E402
from gen.config.moevit import MoevitConfig, MoevitHwConfig, load_moevit, load_moevit_hw  # noqa: E402
from sim.fault.harness import ACCEL_BUILDS  # noqa: E402
from sim.moevit.accel_run import MemoryTiming, compare, prepare, program_for, run_program  # noqa: E402
from sim.perf import moevit as perf  # noqa: E402
from sim.perf.accel import operator_kind as kind_of  # noqa: E402

CONFIG = ROOT / "configs" / "moevit" / "accel_edge_moe.yaml"
EDGE_MODEL = ROOT / "configs" / "moevit" / "edge_moe.yaml"
EDGE_HW = ROOT / "configs" / "moevit" / "edge_moe_hw.yaml"
TIMING = MemoryTiming(read_latency=24)  # a full 32-byte beat per cycle and direction on each port
#: Our operator kinds -> the kinds of ``npuforge perf`` (sim/perf/moevit.py).
PERF_KIND = {"patch_embed": "patch_embed", "qkv": "qkv", "proj": "proj", "fc1": "fc1", "fc2": "fc2",
             "gate": "gate", "expert.fc1": "expert_fc1", "expert.fc2": "expert_fc2", "qk": "qk", "av": "av",
             "ln1": "ln1", "ln2": "ln2", "norm": "norm"}


def hardware(cfg) -> MoevitHwConfig:
    """This accelerator for ``npuforge perf``: every matmul on the one linear unit, the ports of the config."""
    macs = cfg.facts.macs
    engine = {"macs": macs, "count": 1}
    return MoevitHwConfig.model_validate({
        "kind": "moevit_hw", "name": cfg.name, "clock_mhz": cfg.clock_mhz, "linear": engine, "attention": engine,
        "gate": engine, "patch_embed": engine, "port_bits": cfg.memory.data_width, "ports": cfg.memory.ports})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=None, help="compile only the first N blocks (default all)")
    parser.add_argument("--detail", type=int, default=2, help="blocks printed operator by operator (default 2)")
    parser.add_argument("--build-root", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--build", choices=tuple(ACCEL_BUILDS), default="run",
                        help="the harness build (sim.fault.harness.ACCEL_BUILDS): quick compiles several times "
                             "faster and simulates about half as fast; cycles are the same")
    parser.add_argument("--ops", choices=("network", "linear"), default="network",
                        help="network: the whole image as one chain (default); linear: the linear operators, "
                             "each fed the golden's inputs")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "accel_edge_moe.json")
    args = parser.parse_args()

    cfg = load_config(CONFIG)
    model = cfg.network
    if args.layers is not None:  # the same hardware, a shorter network
        data = yaml.safe_load(cfg.model_path.read_text())
        model = MoevitConfig.model_validate({**data, "layers": args.layers})
    units = cfg.facts.macs
    started = time.monotonic()
    prepared = prepare(cfg, args.build_root, build=args.build)
    build_s = time.monotonic() - started
    print(f"{cfg.name}: {cfg.facts.rows}x{cfg.facts.cols} array ({units} MACs), {cfg.memory.ports} x "
          f"{cfg.memory.data_width}-bit ports; harness ready in {time.monotonic() - started:.0f} s", flush=True)

    started = time.monotonic()
    task = model.task_names[0]
    program = program_for(cfg, image=0, model=model, ops=args.ops)
    print(f"compiled {len(program.ops)} operators of {model.layers} blocks ({task}) in "
          f"{time.monotonic() - started:.0f} s", flush=True)

    per_op = run_program(prepared.harness, prepared.manifest, program, timing=TIMING)
    reports = compare(program, per_op)
    whole = run_program(prepared.harness, prepared.manifest, program, timing=TIMING, per_op=False)
    whole_reports = compare(program, whole)
    exact = all(r.ok for r in reports) and all(r.ok for r in whole_reports) and not (per_op.violations or
                                                                                   whole.violations)
    bad = [f"{r.name}: {r.mismatch}" for r in reports + whole_reports if not r.ok]

    # npuforge perf's operators of the same network: the roofline on this hardware, Edge-MoE's schedule.
    mine, edge_hw = hardware(cfg), load_moevit_hw(EDGE_HW)
    edge_model = load_moevit(EDGE_MODEL)
    if args.layers is not None:
        edge_model = MoevitConfig.model_validate({**yaml.safe_load(EDGE_MODEL.read_text()), "layers": args.layers})
    roof, sched = {}, {}
    for op in perf.operators(model, task):
        roof[op.kind] = roof.get(op.kind, 0.0) + max(perf.roofline_cycles(op, model, mine))
    for op in perf.operators(edge_model, task):
        sched[op.kind] = sched.get(op.kind, 0) + perf.edge_moe_cycles(op, edge_model, edge_hw)
    edge_totals = perf.analyse(load_moevit(EDGE_MODEL), edge_hw, task)["totals"]

    def port_bytes(r):
        return sum(v for name, v in r.counters.items() if re.match(r"(RD|WR)_BYTES_P\d", name))

    rows = []
    for r in reports:
        rows.append({"name": r.name, "opcode": r.opcode, "kind": kind_of(r.name), "cycles": r.cycles, "macs": r.macs,
                     "utilisation": r.macs / (r.cycles * units) if r.cycles > 0 else 0.0,
                     "bytes": port_bytes(r), "bytes_per_cycle": port_bytes(r) / max(1, r.cycles),
                     "mem_stall": r.counters.get("MEM_STALL", 0), "bit_exact": bool(r.ok)})

    head = f"{'operator':<28} {'op':<7} {'cycles':>9} {'MACs':>11} {'util':>6} {'B/cycle':>8} {'stall':>6}"
    print("\nPer operator (blocks 0.." + str(args.detail - 1) + "):\n" + head)
    for row in rows:
        block = re.match(r"blocks\.(\d+)\.", row["name"])
        if block and int(block.group(1)) >= args.detail:
            continue
        print(f"{row['name']:<28} {row['opcode']:<7} {row['cycles']:>9,} {row['macs']:>11,} "
              f"{row['utilisation']:>6.1%} {row['bytes_per_cycle']:>8.1f} "
              f"{row['mem_stall'] / max(1, row['cycles']):>6.1%}")

    kinds = {}
    for row in rows:
        group = kinds.setdefault(row["kind"], {"kind": row["kind"], "count": 0, "cycles": 0, "macs": 0, "bytes": 0})
        group["count"] += 1
        for key in ("cycles", "macs", "bytes"):
            group[key] += row[key]
    print(f"\nPer operator kind (each operator run alone, {model.layers} blocks):")
    print(f"{'kind':<12} {'ops':>4} {'cycles':>10} {'MACs':>13} {'util':>6} {'B/cycle':>8} {'roofline':>10} "
          f"{'Edge-MoE':>10}")
    for group in kinds.values():
        pk = PERF_KIND.get(group["kind"])
        group["utilisation"] = group["macs"] / (group["cycles"] * units)
        group["bytes_per_cycle"] = group["bytes"] / group["cycles"]
        group["roofline_cycles"] = roof.get(pk) if pk else None
        group["edge_moe_cycles"] = sched.get(pk) if pk else None
        fmt = lambda v: f"{v:>10,.0f}" if v is not None else f"{'-':>10}"  # noqa: E731
        print(f"{group['kind']:<12} {group['count']:>4} {group['cycles']:>10,} {group['macs']:>13,} "
              f"{group['utilisation']:>6.1%} {group['bytes_per_cycle']:>8.1f} {fmt(group['roofline_cycles'])} "
              f"{fmt(group['edge_moe_cycles'])}")

    macs = sum(r["macs"] for r in rows)
    total = whole.total_cycles
    linear_kinds = [PERF_KIND[k] for k in kinds if k in PERF_KIND]
    edge_same = sum(sched.get(k, 0) for k in linear_kinds)
    roof_same = sum(roof.get(k, 0.0) for k in linear_kinds)
    image_bound = edge_totals["macs"] / units
    speed = whole.total_cycles / max(whole.seconds, 1e-9)
    print(f"\nThe whole list in one run: {total:,} cycles ({total / (cfg.clock_mhz * 1e3):.2f} ms at "
          f"{cfg.clock_mhz:.0f} MHz), {macs:,} MACs, utilisation {macs / (total * units):.1%}; "
          f"{'bit-exact' if exact else 'MISMATCH: ' + '; '.join(bad[:3])}")
    print(f"  the same operators: roofline {roof_same:,.0f} cycles, 448-MAC bound {macs / units:,.0f}, "
          f"Edge-MoE's schedule {edge_same:,} (ratio {edge_same / total:.2f}x)")
    print(f"  the whole image{' (attention, LayerNorm not run here)' if args.ops == 'linear' else ''}: "
          f"Edge-MoE's schedule "
          f"{edge_totals['edge_moe_cycles']:,} cycles, the 448-MAC bound {image_bound:,.0f} "
          f"({edge_totals['macs']:,} MACs)" + ("" if args.layers is None else "; (all 12 blocks)"))
    print(f"  harness: {speed:,.0f} simulated cycles per second ({whole.seconds:.1f} s)")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "config": cfg.name, "ops": args.ops, "macs_per_cycle": units, "layers": model.layers, "task": task,
        "timing": {"read_latency": TIMING.read_latency, "port_bytes_per_cycle": cfg.memory.data_width // 8},
        "total_cycles": total, "macs": macs, "bit_exact": exact, "harness_cycles_per_s": speed,
        "harness_build": args.build, "harness_build_s": round(build_s),
        "same_ops": {"roofline_cycles": roof_same, "mac_bound_cycles": macs / units, "edge_moe_cycles": edge_same},
        "image": {"edge_moe_cycles": edge_totals["edge_moe_cycles"], "mac_bound_cycles": image_bound},
        "by_kind": list(kinds.values()), "operators": rows}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
