"""The energy of every TPE ``mac`` option measured twice: by the RTL proxy and at gate level.

Usage (in the venv): ``python bench/tpe_gate_energy.py [--size quick|small] [--arch A ...] [--mac M ...]``

``bench/tpe_mac.py``'s energy column is the RTL proxy of ``sim/energy.py``: toggles of
the signals Verilator keeps, times each instance's gates. It cannot see inside an
operator written as one expression (the baseline's ``a * b`` is one net) while an
option built from named vectors (a Booth compressor tree) shows every partial sum, so
the question "is an option's energy gap the design or the proxy?" needs a second
measure that treats every design alike. Here each design is also lowered to a flat
netlist of generic gates (``fpga.netlist.gate_netlist``: Yosys ``synth -flatten``, one
name per net), the same workload runs on that netlist in Verilator (bit-exact against
the golden model, or the run is refused), and ``sim.energy.gate_proxy`` sums each net's
toggles times its load (the input pins it drives). Still zero-delay (no glitches) and
without wires or the clock tree, but every gate output of both designs is counted by
the same rule.

For each architecture (``--size quick``: ``bench/tpe_mac.py --quick``'s 4x4 arrays and
``K = 32`` GEMMs of 4 x 32 times 32 x 4, twice; ``--size small``: the 64-MAC arrays the
ECP5 figures use, ``C`` of 16 x 256 times 256 x 16, once) and each option, on sigma 10,
30, 50 and uniform operands: both figures per MAC, and the energy efficiency against the
same architecture's baseline by each (the geometric mean over the three sigmas, as
``bench/tpe_mac.py``). Writes ``bench/results/tpe_gate_energy-<size>.json``.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fpga.netlist import gate_netlist  # noqa: E402
from gen.emit import generate  # noqa: E402
from gen.manifest import verilog_filename  # noqa: E402
from sim import energy  # noqa: E402
from tpe_arch import BUILD, RESULTS, SMALL  # noqa: E402
from tpe_mac import GAUSSIAN, MAC_BY_ARCH, PAPER_GAIN, QUICK, config, energy_runs, split_label  # noqa: E402

SIZES = {"quick": (QUICK, {"m": 4, "k": 32, "n": 4, "repeats": 2, "seed": 1}),
         "small": (SMALL, {"m": 16, "k": 256, "n": 16, "repeats": 1, "seed": 1})}


def gate_runs(cfg, generated, work: dict) -> dict:
    """Gate-level switching per MAC of ``cfg`` on each operand distribution."""
    started = time.monotonic()
    verilog = generated.out_dir / verilog_filename(cfg.name)
    netlist = gate_netlist(verilog, cfg.name, config_hash=cfg.config_hash(),
                           cache_dir=BUILD / cfg.build_name() / "gate-netlist")
    design = energy.prepare_netlist(cfg, netlist["netlist"], generated.manifest, build_root=BUILD)
    out = {"gate_cells": netlist["cells"], "gate_transistors": netlist["transistors"],
           "gate_nets": netlist["net_count"], "gate_build_s": round(time.monotonic() - started, 1)}
    for dist in energy.DISTRIBUTIONS:
        jobs, macs = energy.gemm_workload(cfg, dist, m=work["m"], k=work["k"], n=work["n"],
                                         repeats=work["repeats"], seed=work["seed"])
        activity = energy.measure(design, jobs, macs, dist)
        gates = energy.gate_proxy(activity, netlist["nets"])
        if gates["unmatched"]:
            raise SystemExit(f"{cfg.name}: coverage names without a net: {gates['unmatched'][:5]}")
        out[dist] = {"gate_per_mac": gates["per_op"], "gate_toggles_per_mac": gates["toggles_per_op"],
                     "gate_toggle_rate": round(gates["toggle_rate"], 5), "cycles": activity.cycles}
    return out


def measure(arch: str, label: str, size: str) -> dict:
    sizes, work = SIZES[size]
    mac, row_queue = split_label(label)
    cfg = config(arch, sizes[arch], size, mac, row_queue=row_queue)
    print(f"{arch} / {label}: {cfg.describe()}", flush=True)
    started = time.monotonic()
    generated = generate(cfg, BUILD / cfg.build_name() / "synth" / "rtl")
    rtl = energy_runs(cfg, generated, work, None)
    gates = gate_runs(cfg, generated, work)
    row = {"arch": arch, "mac": label, "config": cfg.normalized(), "measured": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                      time.gmtime())}
    for dist in energy.DISTRIBUTIONS:
        row[dist] = {"rtl_per_mac": rtl[dist]["energy_per_mac"], **gates[dist]}
    row |= {key: value for key, value in gates.items() if key not in energy.DISTRIBUTIONS}
    row["seconds"] = round(time.monotonic() - started, 1)
    return row


def efficiency(base: dict, row: dict, key: str) -> dict:
    """Baseline per MAC / option per MAC for each distribution and the Gaussian geometric mean."""
    out = {dist: base[dist][key] / row[dist][key] for dist in energy.DISTRIBUTIONS}
    out["gaussian_geomean"] = math.prod(out[d] for d in GAUSSIAN) ** (1 / len(GAUSSIAN))
    return out


def report(rows: dict) -> list[dict]:
    table = []
    print(f"\n{'arch':<12} {'mac':<10} {'RTL proxy/MAC':>14} {'gate/MAC':>10} {'RTL eff':>8} {'gate eff':>9}"
          f" {'paper':>6}   (sigma 30 per MAC; efficiency = baseline / option, geo. mean of sigma 10/30/50)")
    for (arch, label), row in rows.items():
        base = rows.get((arch, "baseline"))
        if base is None:
            continue
        rtl, gate = efficiency(base, row, "rtl_per_mac"), efficiency(base, row, "gate_per_mac")
        paper = "" if label == "baseline" else f"{PAPER_GAIN[arch]['energy_eff']:.2f}"
        print(f"{arch:<12} {label:<10} {row['sigma30']['rtl_per_mac']:>14.1f} {row['sigma30']['gate_per_mac']:>10.1f}"
              f" {rtl['gaussian_geomean']:>8.2f} {gate['gaussian_geomean']:>9.2f} {paper:>6}")
        table.append({"arch": arch, "mac": label, "rtl_energy_eff": rtl, "gate_energy_eff": gate,
                      "paper_energy_eff": None if label == "baseline" else PAPER_GAIN[arch]["energy_eff"]})
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick",
                        help="quick: 4x4 arrays, K = 32 (default); small: the 64-MAC arrays, K = 256")
    parser.add_argument("--arch", action="append", choices=sorted(MAC_BY_ARCH), help="only these (repeatable)")
    parser.add_argument("--mac", action="append", help="only these options (repeatable; baseline is always run); "
                                                       "opt4c+rq4 is opt4c with row_queue: 4")
    args = parser.parse_args()
    out_json = RESULTS / f"tpe_gate_energy-{args.size}.json"
    try:
        rows = {(r["arch"], r["mac"]): r for r in json.loads(out_json.read_text())["rows"]}
    except (OSError, ValueError, KeyError):
        rows = {}
    for arch in args.arch or list(MAC_BY_ARCH):
        extra = tuple(label for label in args.mac or [] if "+rq" in label and arch == "matrix2d")
        for label in MAC_BY_ARCH[arch] + extra:
            if args.mac and label != "baseline" and label not in args.mac:
                continue
            rows[(arch, label)] = measure(arch, label, args.size)
            RESULTS.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps({"size": args.size, "work": SIZES[args.size][1],
                                            "rows": list(rows.values())}, indent=2) + "\n")
    order = {arch: i for i, arch in enumerate(MAC_BY_ARCH)}
    rows = dict(sorted(rows.items(), key=lambda item: (order[item[0][0]], item[0][1] != "baseline")))
    table = report(rows)
    out_json.write_text(json.dumps({"size": args.size, "work": SIZES[args.size][1], "ratios": table,
                                    "rows": list(rows.values())}, indent=2) + "\n")
    print(f"\nwrote {out_json}")


if __name__ == "__main__":
    main()
