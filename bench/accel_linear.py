"""The unified linear engine at Edge-MoE size: MAC utilisation, bytes per cycle, prefetch on and off.

For Edge-MoE's qkv (129 x 192 x 576), fc1 (129 x 192 x 768) and one expert's layers (16 tokens:
fc1 16 x 192 x 384, fc2 16 x 384 x 192), on a 256-MAC and a 448-MAC unit behind two 256-bit
AXI4 ports (64 bytes per cycle, a DRAM read latency of 24 cycles), with weight prefetch on and
off: cycles, the MACs' peak (MACs / units), MAC utilisation (MACs / (cycles x units)), bytes per
cycle per port, and the fast harness's simulated cycles per second. Every run is checked
bit-exact against the golden.

The network is configs/moevit/edge_moe_exact.yaml: Edge-MoE's with 24-bit features and exact
56-bit accumulators (Edge-MoE's own accumulator truncates every product, which the linear engine
does not do: it sums exact products); the 448-MAC array is configs/moevit/accel_edge_moe.yaml.
Run: ``python bench/accel_linear.py [--quick] [--array RxC] [--build quick]`` (in the venv); results go to
``bench/results/accel_linear.json``. One Verilator build per array (several minutes each).
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

from gen.config import load_config  # noqa: E402
from sim.golden.moevit import fixed as golden  # noqa: E402
from sim.fault.harness import ACCEL_BUILDS  # noqa: E402
from sim.moevit.accel_run import MemoryTiming, compare, prepare, run_program  # noqa: E402
from sim.moevit.compiler import Builder, Target  # noqa: E402

#: (name, M, K, N, matmul whose formats it uses, GELU)
LAYERS = [("qkv", 129, 192, 576, "qkv", False), ("fc1", 129, 192, 768, "fc1", True),
          ("expert.fc1", 16, 192, 384, "fc1", True), ("expert.fc2", 16, 384, 192, "fc2", False)]
#: (label, rows, cols): 256 and 448 MAC units, output-stationary.
ARRAYS = [("256 MACs (8x32)", 8, 32), ("256 MACs (16x16)", 16, 16), ("448 MACs (7x64)", 7, 64)]
PORT_BYTES = 32  # per cycle and direction: two 256-bit ports


#: Edge-MoE's network in the formats the linear engine computes (its own accumulator truncates every
#: product; the engine sums exact products); the 448-MAC array is the Edge-MoE-size accelerator itself.
MODEL = ROOT / "configs" / "moevit" / "edge_moe_exact.yaml"
EDGE_MOE_ACCEL = ROOT / "configs" / "moevit" / "accel_edge_moe.yaml"


def accel_file(work: Path, rows: int, cols: int) -> Path:
    """The accelerator of a ``rows`` x ``cols`` array: configs/moevit/accel_edge_moe.yaml at 7x64 (one build
    for both benches), else the same memory system around another array."""
    if (rows, cols) == (7, 64):
        return EDGE_MOE_ACCEL
    path = work / f"accel_{rows}x{cols}.yaml"
    path.write_text(yaml.safe_dump({
        "kind": "moevit_accel", "name": f"bench_{rows}x{cols}", "model": str(MODEL),
        "linear": {"arch": "systolic_os", "rows": rows, "cols": cols},
        "memory": {"data_width": 256, "addr_width": 32, "ports": 2, "max_burst": 16, "max_reads": 8,
                   "max_writes": 8}}, sort_keys=False))
    return path


def layer_program(cfg, name: str, m: int, k: int, n: int, matmul: str, gelu: bool, prefetch: bool, seed: int):
    model = cfg.network
    spec = golden.matmul_specs(model)[matmul]
    units = golden.units(model)
    rng = np.random.default_rng(seed)
    a = rng.integers(spec.a.min_code, spec.a.max_code + 1, size=(m, k)) >> 8
    w = rng.integers(spec.b.min_code, spec.b.max_code + 1, size=(k, n)) >> 4
    bias = rng.integers(spec.bias.min_code, spec.bias.max_code + 1, size=n)
    y = golden.matmul(spec, a, w, bias)
    if gelu:
        y = golden.feature_gelu(y, model, units)
    b = Builder(Target.from_config(cfg))
    src = b.tensor(f"{name}.in", a)
    out = b.tensor(f"{name}.out", rows=m, n=n)
    b.linear(name, src, b.weights(f"{name}.w", w, bias), out, matmul=matmul, gelu=gelu, prefetch=prefetch)
    b.expect(out, y)
    return b.finish()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 256-MAC 8x32 array")
    parser.add_argument("--array", default=None, metavar="RxC", help="only this array, e.g. 7x64")
    parser.add_argument("--build-root", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--build", choices=tuple(ACCEL_BUILDS), default="run",
                        help="the harness build (sim.fault.harness.ACCEL_BUILDS): quick compiles a large array "
                             "several times faster and simulates about half as fast; cycles are the same")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "accel_linear.json")
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        arrays = ARRAYS[:1] if args.quick else ARRAYS
        if args.array:
            arrays = [a for a in ARRAYS if f"{a[1]}x{a[2]}" == args.array]
        for label, rows, cols in arrays:
            cfg = load_config(accel_file(work, rows, cols))
            started = time.monotonic()
            prepared = prepare(cfg, args.build_root, build=args.build)
            build_s = time.monotonic() - started
            print(f"{label}: harness ready in {build_s:.0f} s ({prepared.harness})", flush=True)
            units = rows * cols
            for name, m, k, n, matmul, gelu in LAYERS:
                for prefetch in (True, False):
                    program = layer_program(cfg, name, m, k, n, matmul, gelu, prefetch, seed=len(rows_out))
                    result = run_program(prepared.harness, prepared.manifest, program,
                                         timing=MemoryTiming(read_latency=24, bytes_per_cycle=PORT_BYTES))
                    report = compare(program, result)[0]
                    macs = m * k * n
                    cycles = report.cycles
                    row = {"array": label, "macs_per_cycle": units, "layer": name, "m": m, "k": k, "n": n,
                           "prefetch": prefetch, "cycles": cycles, "peak_cycles": macs / units,
                           "utilisation": macs / (cycles * units), "bit_exact": bool(report.ok),
                           "bytes_per_cycle": {f"port{p}": {
                               "read": report.counters[f"RD_BYTES_P{p}"] / cycles,
                               "write": report.counters[f"WR_BYTES_P{p}"] / cycles} for p in range(2)},
                           "mem_stall": report.counters["MEM_STALL"],
                           "harness_cycles_per_s": result.total_cycles / max(result.seconds, 1e-9),
                           "harness_build": args.build, "harness_build_s": round(build_s)}
                    rows_out.append(row)
                    ports = "  ".join(f"p{p} rd {row['bytes_per_cycle'][f'port{p}']['read']:5.1f} "
                                      f"wr {row['bytes_per_cycle'][f'port{p}']['write']:4.1f}" for p in range(2))
                    print(f"  {name:<11} prefetch {'on ' if prefetch else 'off'} {cycles:>8} cycles, peak "
                          f"{macs / units:>8.0f}, utilisation {row['utilisation']:6.1%}, {ports} B/cycle, "
                          f"{'bit-exact' if report.ok else 'MISMATCH ' + report.mismatch}, "
                          f"{row['harness_cycles_per_s']:,.0f} cycles/s", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    if args.json.exists():  # keep the other arrays' rows of an earlier run
        kept = [r for r in json.loads(args.json.read_text())["layers"]
                if r["array"] not in {row["array"] for row in rows_out}]
        rows_out = kept + rows_out
    args.json.write_text(json.dumps({"layers": rows_out, "port_bytes_per_cycle": PORT_BYTES,
                                     "read_latency": 24}, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(r["bit_exact"] for r in rows_out) else 1


if __name__ == "__main__":
    raise SystemExit(main())
