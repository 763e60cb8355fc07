"""The logic depth in front of every register of a design, not only the longest path.

Usage (in the venv): ``python bench/path_depths.py CONFIG [--over N] [--top K] [--paths] [--build-dir DIR]``

``npuforge synth --target generic`` reports one number, Yosys' ``ltp -noff``: the longest path
of the flattened netlist. Pipelining a whole accelerator needs the list behind it: which
registers sit behind paths deeper than the TPE's, and by how much. This script runs the same
Yosys flow as the ``generic`` target (``fpga.yosys.generic_script``: ``synth -flatten``, flip-flops
legalised to ``$_DFF_P_``), writes the netlist as JSON, and counts for every flip-flop input the
cells on the deepest path from a register output, a memory read port or a module input (the
measure ``ltp -noff`` takes the maximum of). It prints the registers (named by the net on their
output, bits grouped) whose depth is at least ``--over`` (default: the TPE's, given with
``--tpe-depth``, else 0), deepest first, and ``ltp``'s figure from the same run as a check. With
``--paths``, each listed register also gets the named nets along its deepest path, from the
registers (or inputs) it starts at: where a deep path comes from, not only where it ends.

Cost: the flow's own time (about 20 minutes for ``tests/configs/accel_micro_os.yaml`` on this
2-core machine) plus a minute of Python for a million cells.
"""

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fpga import yosys  # noqa: E402
from fpga.process import run_logged  # noqa: E402
from fpga.synth import YOSYS_LOG  # noqa: E402
from gen.config import load_config  # noqa: E402
from gen.emit import generate_in_build  # noqa: E402
from gen.manifest import verilog_filename  # noqa: E402

#: Cells that end a path (their inputs are endpoints, their outputs start paths at depth 0).
SEQUENTIAL = re.compile(r"^\$(_DFF|_SDFF|_DFFE|_SDFFE|_ALDFF|_DLATCH|mem|memrd|memwr|meminit|dff|adff|sdff)")


def netlist(verilog: Path, top: str, work: Path, timeout: float) -> Path:
    """Run the generic flow on ``verilog`` in ``work``, with a JSON netlist written after it."""
    script = yosys.generic_script(top, yosys.wants_kept_flops(verilog.read_bytes()))
    script = script.replace(f"tee -o {yosys.LTP} ltp -noff", f"tee -o {yosys.LTP} ltp -noff\nwrite_json net.json")
    (work / yosys.DESIGN).write_bytes(verilog.read_bytes())
    (work / "flow.ys").write_text(script)
    run_logged("yosys", [str(yosys.find_yosys()), "-s", "flow.ys"], cwd=work, log=work / YOSYS_LOG, timeout=timeout)
    return work / "net.json"


def depths(path: Path, trace_over: int | None = None) -> tuple[dict[str, int], int, dict[str, list[str]]]:
    """Per register (output net name, bits grouped): the deepest path into its inputs, in cells.

    With ``trace_over``, also the named nets along the deepest path into every register at least
    that deep (start first), so a deep register says where its path comes from.
    """
    design = json.loads(path.read_text())
    (module,) = [m for m in design["modules"].values() if m.get("attributes", {}).get("top")] or \
        list(design["modules"].values())[:1]
    driver = {}  # bit -> combinational cell name
    cells = module["cells"]
    inputs_of = {}
    endpoints = []  # (cell name, input bits)
    for name, cell in cells.items():
        outs, ins = [], []
        for port, bits in cell["connections"].items():
            direction = cell.get("port_directions", {}).get(port, "input")
            (outs if direction == "output" else ins).extend(b for b in bits if isinstance(b, int))
        if SEQUENTIAL.match(cell["type"]):
            endpoints.append((name, ins, outs))
            continue
        inputs_of[name] = ins
        for bit in outs:
            driver[bit] = name
    memo = {}

    def depth_of_cell(start: str) -> int:
        stack = [start]
        while stack:
            name = stack[-1]
            if name in memo:
                stack.pop()
                continue
            pending = [driver[b] for b in inputs_of[name] if b in driver and driver[b] not in memo]
            if pending:
                stack.extend(pending)
                continue
            memo[name] = 1 + max((memo[driver[b]] for b in inputs_of[name] if b in driver), default=0)
            stack.pop()
        return memo[start]

    bit_name = {}
    for net, info in module["netnames"].items():
        if info.get("hide_name"):
            continue
        for bit in info["bits"]:
            if isinstance(bit, int):
                bit_name.setdefault(bit, net)
    def chain(bits: list[int]) -> list[str]:
        """The named nets on the deepest path into ``bits``, from its start to its end."""
        names = []
        while True:
            deep = [b for b in bits if b in driver]
            if not deep:  # the path's start: the registers (or inputs) feeding its first cell
                starts = sorted({bit_name[b] for b in bits if b in bit_name})
                if starts:
                    names.append(" | ".join(starts))
                break
            bit = max(deep, key=lambda b: memo[driver[b]])
            label = bit_name.get(bit)
            if label is not None and (not names or names[-1] != label):
                names.append(label)
            bits = inputs_of[driver[bit]]
        return names[::-1]

    per_register = defaultdict(int)
    paths = {}
    deepest = 0
    for name, ins, outs in endpoints:
        depth = max((depth_of_cell(driver[b]) for b in ins if b in driver), default=0)
        deepest = max(deepest, depth)
        label = next((bit_name[b] for b in outs if b in bit_name), name)
        if depth > per_register[label] or label not in per_register:
            per_register[label] = depth
            if trace_over is not None and depth >= trace_over:
                paths[label] = chain(ins)
    return dict(per_register), deepest, paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--over", type=int, default=None, help="list registers at least this deep")
    parser.add_argument("--tpe-depth", type=int, default=0, help="the TPE's own depth, the default --over")
    parser.add_argument("--top", type=int, default=60, help="at most this many lines")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    parser.add_argument("--json", type=Path, default=None, help="also write every register's depth")
    parser.add_argument("--paths", action="store_true", help="print the named nets on each listed path")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="Yosys's time limit in seconds")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    rtl, _ = generate_in_build(cfg, args.build_dir)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="depths-") as work:
        net = netlist(rtl / verilog_filename(cfg.name), cfg.name, Path(work), args.timeout)
        ltp = yosys.parse_ltp((Path(work) / yosys.LTP).read_text())
        flow = time.monotonic() - started
        over = args.over if args.over is not None else args.tpe_depth
        per_register, deepest, paths = depths(net, over if args.paths else None)
    listed = sorted(((d, r) for r, d in per_register.items() if d >= over), reverse=True)
    print(f"{cfg.name} (config hash {cfg.config_hash()[:12]}): {len(per_register):,} registers, deepest input "
          f"{deepest} cells (ltp -noff: {ltp}); flow {flow:.0f} s, total {time.monotonic() - started:.0f} s")
    print(f"registers at depth >= {over}: {len(listed)}")
    for d, r in listed[:args.top]:
        print(f"  {d:4}  {r}")
        if r in paths:
            print("        " + " -> ".join(paths[r]))
    if args.json is not None:
        args.json.write_text(json.dumps({"config": str(args.config), "ltp": ltp, "deepest": deepest,
                                         "registers": per_register}, indent=0, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
