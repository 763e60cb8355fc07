"""``npuforge synth CONFIG --target generic|xcup|ecp5``: area and timing estimates with open tools."""

import os
from pathlib import Path

from fpga.process import DEFAULT_TIMEOUT
from gen.config import load_config
from gen.errors import UsageError

from .args import add_config, int_in
from .output import write_json

HELP = "synthesise with Yosys (and place and route for ecp5): area, depth, Fmax"
DEFAULT_BUILD_ROOT = Path(os.environ.get("NPUFORGE_BUILD_DIR", "build"))
TARGETS = ("generic", "xcup", "ecp5")

#: result key -> how the summary names it, in print order.
_SHOWN = {
    "transistors": "transistors (CMOS estimate)",
    "cells": "cells",
    "logic_depth": "logic depth (cells on the longest path)",
    "lut": "LUTs",
    "ff": "flip-flops",
    "carry": "carry cells",
    "dsp": "DSP blocks",
    "bram": "block RAMs",
    "fmax_mhz": "Fmax (MHz)",
}


def add_arguments(parser) -> None:
    add_config(parser)
    parser.add_argument("--target", choices=TARGETS, default="generic",
                        help="generic: Yosys synth + CMOS transistor estimate; xcup: UltraScale+ cells; "
                             "ecp5: place and route on an LFE5U-85F for Fmax (default generic)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1, help="placer seed for ecp5 (default 1)")
    parser.add_argument("--out-of-context", action="store_true",
                        help="ecp5: place as a core without I/O cells (for ports wider than the device's 365 I/O)")
    parser.add_argument("--timeout", type=int_in(1, 48 * 3600), default=int(DEFAULT_TIMEOUT), metavar="SECONDS",
                        help=f"stop a tool that runs longer than this (default {DEFAULT_TIMEOUT:g}; a whole "
                             "accelerator needs hours for xcup)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the result as JSON")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR", help="build root (default build/)")


def run(args) -> int:
    from rich.console import Console

    from fpga.cost import synthesize_config

    cfg = load_config(args.config)
    if args.json is not None and args.json.is_dir():  # refuse before minutes of synthesis
        raise UsageError(f"--json: got '{args.json}', which is a directory; allowed: a file path")
    print(f"design   {cfg.name}: {cfg.describe()} (config hash {cfg.config_hash()[:12]})", flush=True)
    with Console(stderr=True).status("generating Verilog") as status:
        result = synthesize_config(cfg, args.target, build_root=args.build_dir or DEFAULT_BUILD_ROOT,
                                   seed=args.seed, out_of_context=args.out_of_context, on_step=status.update,
                                   timeout=args.timeout)
    data = result.data
    tools = ", ".join(f"{name} {version}" for name, version in sorted(data.get("tools", {}).items()))
    how = "cached" if result.cached else f"ran in {data.get('seconds', 0):.1f} s"
    print(f"target   {args.target} ({tools}; {how})")
    for key, label in _SHOWN.items():
        if key in data:
            print(f"  {label:42} {data[key]:,}" if isinstance(data[key], int) else f"  {label:42} {data[key]}")
    print(f"result   {result.path}")
    if args.json is not None:
        write_json(args.json, data)
        print(f"wrote    {args.json}")
    return 0
