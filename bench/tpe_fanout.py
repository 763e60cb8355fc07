"""Registered operand fan-out (``fanout:``) on the broadcast grids: Fmax, area and perf/area against ``fanout: 0``.

Usage (in the venv): ``python bench/tpe_fanout.py [--pair ARCH:MAC ...] [--fanout N ...]``

The broadcast grids (``cube``, ``adder_tree``, ``matrix2d``) send every ``A`` element to a whole
PE row and every ``B`` element to a whole PE column; on the ECP5 the critical paths of ``cube``
``opt1`` and ``matrix2d`` ``opt2`` start at those input registers and are mostly routing
(docs/tpe.md). ``fanout: n`` adds a register stage holding a copy of each operand per group of
``n`` PEs. For each architecture and ``mac`` given (default: ``matrix2d`` baseline and ``opt2``,
``cube`` baseline and ``opt1``) and each fan-out (0 and the ``--fanout`` values), this measures
what ``bench/tpe_mac.py`` measures for perf/area, with the same tools and sizes:

* Fmax: nextpnr-ecp5, LFE5U-85F, seed 1, out of context, at the 64-MAC size, with the
  critical path's logic and routing delay from nextpnr's report;
* transistors and logic depth: ``npuforge synth --target generic`` at the paper's size;
* perf/area: Fmax / transistors (the cycles per GEMM of a broadcast grid do not depend on
  ``fanout``: one more cycle of latency per back-to-back stream, 0.2% of the 16 x 256 x 16
  GEMM's 264 cycles, left out), as a ratio to the same architecture's baseline at ``fanout: 0``
  and to its baseline at the same fan-out.

Writes ``bench/results/tpe_fanout.json``; results are cached per config (``build/bench``, as
``bench/tpe_arch.py``), so a second run only prints.
"""

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gen.errors import ToolError  # noqa: E402
from tpe_arch import BUILD, PAPER, RESULTS, SMALL, synth  # noqa: E402
from tpe_mac import config  # noqa: E402

DEFAULT_PAIRS = ("matrix2d:baseline", "matrix2d:opt2", "cube:baseline", "cube:opt1")
BROADCAST = ("cube", "adder_tree", "matrix2d")


def critical_path(cfg) -> dict:
    """Logic and routing delay of nextpnr's critical path, from the cached log of ``cfg``'s ECP5 run."""
    log = BUILD / cfg.build_name() / "synth" / "ecp5" / "nextpnr.log"
    if not log.exists():
        return {}
    found = re.findall(r"([\d.]+) ns logic, ([\d.]+) ns routing", log.read_text())
    if not found:
        return {}
    logic, routing = found[-1]
    return {"logic_ns": float(logic), "routing_ns": float(routing)}


def measure(arch: str, mac: str, fanout: int, timeout: int) -> dict:
    row = {"arch": arch, "mac": mac, "fanout": fanout}
    started = time.monotonic()
    small = config(arch, SMALL[arch], "small", mac, fanout)
    try:
        ecp5 = synth(small, "ecp5", timeout=timeout)
        row |= {"fmax_mhz": ecp5["fmax_mhz"], "ecp5_lut": ecp5["lut"], "ecp5_ff": ecp5.get("ff")}
        row |= critical_path(small)
    except ToolError as error:
        row |= {"fmax_mhz": None, "ecp5_error": str(error)}
    paper = config(arch, PAPER[arch], "paper", mac, fanout)
    generic = synth(paper, "generic", timeout=timeout)
    row |= {"transistors": generic["transistors"], "logic_depth": generic["logic_depth"], "ff": generic["ff"]}
    row["seconds"] = round(time.monotonic() - started, 1)
    print("  " + json.dumps(row), flush=True)
    return row


def perf_per_area(row: dict) -> float | None:
    return row["fmax_mhz"] / row["transistors"] if row.get("fmax_mhz") else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", action="append", help="ARCH:MAC (repeatable); default: " + ", ".join(DEFAULT_PAIRS))
    parser.add_argument("--fanout", action="append", type=int, help="fan-outs besides 0 (repeatable); default: 4")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per tool run")
    args = parser.parse_args()
    pairs = [tuple(p.split(":", 1)) for p in (args.pair or DEFAULT_PAIRS)]
    for arch, mac in pairs:
        if arch not in BROADCAST:
            parser.error(f"--pair {arch}:{mac}: fanout applies to {', '.join(BROADCAST)} only")
    fanouts = [0] + sorted(set(args.fanout or [4]) - {0})
    rows = []
    for arch, mac in pairs:
        for fanout in fanouts:
            print(f"{arch} / {mac} / fanout {fanout}", flush=True)
            rows.append(measure(arch, mac, fanout, args.timeout))
    by_key = {(r["arch"], r["mac"], r["fanout"]): r for r in rows}
    print(f"\n{'arch':10} {'mac':9} {'fanout':>6} {'Fmax':>7} {'logic/routing ns':>17} {'transistors':>12} "
          f"{'depth':>5} {'perf/area vs base@0':>20} {'vs base@same':>13}")
    for r in rows:
        ppa = perf_per_area(r)
        base0 = by_key.get((r["arch"], "baseline", 0))
        base_same = by_key.get((r["arch"], "baseline", r["fanout"]))
        r["vs_baseline_fanout0"] = round(ppa / perf_per_area(base0), 3) if ppa and base0 and perf_per_area(base0) \
            else None
        r["vs_baseline_same_fanout"] = round(ppa / perf_per_area(base_same), 3) \
            if ppa and base_same and perf_per_area(base_same) else None
        path = f"{r.get('logic_ns', '-')}/{r.get('routing_ns', '-')}"
        print(f"{r['arch']:10} {r['mac']:9} {r['fanout']:>6} {r.get('fmax_mhz') or '-':>7} {path:>17} "
              f"{r['transistors']:>12,} {r['logic_depth']:>5} {r['vs_baseline_fanout0'] or '-':>20} "
              f"{r['vs_baseline_same_fanout'] or '-':>13}")
    out = RESULTS / "tpe_fanout.json"
    previous = json.loads(out.read_text()) if out.exists() else {"rows": []}
    kept = [r for r in previous["rows"] if (r["arch"], r["mac"], r["fanout"]) not in by_key]
    out.write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "rows": kept + rows}, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
