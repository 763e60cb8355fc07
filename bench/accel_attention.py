"""Attention on the accelerator at Edge-MoE size: the dedicated engine per p against the unified mode.

One layer's multi-head attention of Edge-MoE (129 tokens, 3 heads of 64, configs/moevit/edge_moe_exact.yaml,
as bench/accel_linear.py) on two 256-bit AXI4 ports (32 bytes per
cycle and direction each, a DRAM read latency of 24 cycles), every head's output checked bit-exact
against the golden (:func:`sim.golden.moevit.fixed.head_attention`):

* ``dedicated``: one ``ATTENTION`` descriptor per head on Edge-MoE's engine (hw/vit/attention.py), p query
  rows on chip and 8 multipliers per row (``macs = 8p``; p = 4 is one of Edge-MoE's two 32-MAC engines),
  next to a 256-MAC 8x32 linear array that waits meanwhile;
* ``unified``: per head Q K^T (``b_transposed``) and A V (``b_rows``) as GEMMs on the 8x32 linear array
  (256 MACs), A V fed the golden's probabilities (the SOFTMAX row engine between them is not in this
  build: its cycles are not counted here).

Per configuration: cycles per head, MAC utilisation (the head's MACs / (cycles x the MACs of the engine
that ran it)), bytes per cycle per port (mean over the head and the busiest 64-cycle window, from the
fast harness's DRAM model), and the engine's own counters (MAC_ACTIVE, MEM_STALL). The ratio line
holds each dedicated p against the unified mode measured in the same run.

Run: ``python bench/accel_attention.py [--quick] [--build quick]`` (in the venv; ``--quick``: p = 4 and the
unified mode only); results go to ``bench/results/accel_attention.json``. One Verilator build per
configuration (several minutes each; ``--build quick`` compiles in about half the time, simulates slower).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accel_linear import MODEL  # noqa: E402

from gen.config import load_config  # noqa: E402
from sim.fault.harness import ACCEL_BUILDS  # noqa: E402
from sim.golden.moevit import fixed as golden  # noqa: E402
from sim.moevit.accel_run import MemoryTiming, compare, head_reports, prepare, run_program  # noqa: E402
from sim.moevit.compiler import Builder, Target  # noqa: E402

#: Query rows on chip of the dedicated engine; 8 multipliers per row (Edge-MoE's p x 8 features).
PS = (1, 2, 4, 8, 16)
LANES = 8
LINEAR = {"arch": "systolic_os", "rows": 8, "cols": 32}  # Edge-MoE's 256 linear MACs
PORT_BYTES = 32  # per cycle and direction: two 256-bit ports
READ_LATENCY = 24


def accel_file(work: Path, model: Path, mode: str, p: int | None) -> Path:
    attention = {"engine": "unified"} if mode == "unified" else {"engine": "dedicated", "p": p, "macs": p * LANES}
    name = "bench_att_unified" if mode == "unified" else f"bench_att_p{p}"
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "kind": "moevit_accel", "name": name, "model": str(model), "linear": LINEAR,
        "memory": {"data_width": 256, "addr_width": 32, "ports": 2, "max_burst": 16, "max_reads": 8,
                   "max_writes": 8},
        "attention": attention}, sort_keys=False))
    return path


def attention_program(cfg, seed: int):
    """One layer's heads on random qkv codes (the golden's expectations): ATTENTION per head (dedicated) or
    Q K^T and A V per head on the golden's probabilities (unified)."""
    model = cfg.network
    specs, units = golden.matmul_specs(model), golden.units(model)
    act = model.format("activation")
    t, heads, hd = model.tokens, model.heads, model.head_dim
    rng = np.random.default_rng(seed)
    qkv = rng.integers(act.min_code, act.max_code + 1, size=(t, 3 * heads * hd)) >> 10  # |x| < 2: real scores
    q, k, v = qkv.reshape(t, 3, heads, hd).transpose(1, 2, 0, 3)
    scores, probabilities, out = golden.head_attention(q, k, v, model, units, specs)
    b = Builder(Target.from_config(cfg))
    src = b.tensor("qkv", qkv)
    dst = b.tensor("heads", rows=t, n=heads * hd)
    for h in range(heads):
        if cfg.facts.attention.engine == "dedicated":
            b.attention(f"attention.h{h}", src, dst, head=h, heads=heads, scale=model.score_scale()[0])
            continue
        group = f"attention.h{h}"
        s = b.tensor(f"scores.h{h}", rows=t, n=t)
        b.scores(f"qk.h{h}", src, s, head=h, heads=heads, group=group)
        b.expect(s, scores[h])
        prob = b.tensor(f"probabilities.h{h}", probabilities[h], fmt=model.units["softmax"].output.format)
        b.weighted_values(f"av.h{h}", prob, src, dst, head=h, heads=heads, group=group)
    b.expect(dst, out.transpose(1, 0, 2).reshape(t, heads * hd))
    return b.finish()


def measure(cfg, prepared, label: str, seed: int) -> dict:
    program = attention_program(cfg, seed)
    result = run_program(prepared.harness, prepared.manifest, program,
                         timing=MemoryTiming(read_latency=READ_LATENCY, bytes_per_cycle=PORT_BYTES))
    reports = compare(program, result)
    params = prepared.manifest["parameters"]
    att = params["attention"]
    units = att["macs"] if att["engine"] == "dedicated" else params["linear"]["macs"]
    heads = head_reports(reports)
    ports = range(params["ports"])
    row = {
        "config": label, "engine": att["engine"], "p": att["p"], "macs": units,
        "bit_exact": all(r.ok for r in reports),
        "cycles_per_head": [h.cycles for h in heads],
        "mac_utilisation": [h.macs / (h.cycles * units) for h in heads],
        "mac_active": [h.mac_active for h in heads],
        "mem_stall": [sum(r.counters["MEM_STALL"] for r in reports if r.group == h.name) for h in heads],
        "bytes_per_cycle": [{f"port{p}": {"read": h.read[p] / h.cycles, "write": h.written[p] / h.cycles,
                                          "peak_read": h.peak_read[p], "peak_write": h.peak_written[p]}
                             for p in ports} for h in heads],
        "harness_cycles_per_s": result.total_cycles / max(result.seconds, 1e-9),
    }
    mismatches = [f"{r.name}: {r.mismatch}" for r in reports if not r.ok]
    head = heads[0]
    bw = "  ".join(f"p{p} rd {head.read[p] / head.cycles:5.2f} (peak {head.peak_read[p]:5.2f}) "
                   f"wr {head.written[p] / head.cycles:4.2f}" for p in ports)
    print(f"  {label:<22} {np.mean(row['cycles_per_head']):>9.0f} cycles/head, {units:>4} MACs, utilisation "
          f"{np.mean(row['mac_utilisation']):6.1%}, MEM_STALL {np.mean(row['mem_stall']):>7.0f}/head, {bw} B/cycle, "
          f"{'bit-exact' if row['bit_exact'] else 'MISMATCH ' + mismatches[0]}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="p = 4 (one Edge-MoE engine) and the unified mode")
    parser.add_argument("--build-root", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--build", choices=tuple(ACCEL_BUILDS), default="run",
                        help="the harness build (sim.fault.harness.ACCEL_BUILDS): quick compiles faster")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "accel_attention.json")
    args = parser.parse_args()
    rows = []
    runs = [("unified", None)] + [("dedicated", p) for p in ((4,) if args.quick else PS)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = MODEL
        for mode, p in runs:
            cfg = load_config(accel_file(work, model, mode, p))
            started = time.monotonic()
            prepared = prepare(cfg, args.build_root, build=args.build)
            label = "unified (8x32 array)" if mode == "unified" else f"dedicated p = {p}"
            print(f"{label}: harness ready in {time.monotonic() - started:.0f} s", flush=True)
            rows.append(measure(cfg, prepared, label, seed=len(rows)))
    unified = np.mean(rows[0]["cycles_per_head"])
    for row in rows[1:]:
        ratio = np.mean(row["cycles_per_head"]) / unified
        print(f"ratio    {row['config']}: {ratio:.2f} x the unified mode's cycles per head "
              f"({row['macs']} against {rows[0]['macs']} MACs)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": rows, "port_bytes_per_cycle": PORT_BYTES, "read_latency": READ_LATENCY,
                                     "lanes": LANES, "linear": LINEAR, "softmax_counted": False,
                                     "build": args.build},
                                    indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
