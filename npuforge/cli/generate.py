"""``npuforge generate CONFIG [-o DIR] [--lint]``: Verilog and manifest.json for a config."""

import sys
from pathlib import Path

from gen.config import load_config
from gen.emit import generate
from gen.lint import lint

from .args import add_config

HELP = "write Verilog and manifest.json for a config"


def add_arguments(parser) -> None:
    add_config(parser)
    parser.add_argument("-o", "--out", metavar="DIR", type=Path, default=None,
                        help="output directory (default: generated/<name>)")
    parser.add_argument("--lint", action="store_true", help="also lint the Verilog with Verilator")


def run(args) -> int:
    cfg = load_config(args.config)
    out = args.out if args.out is not None else Path("generated") / cfg.name
    result = generate(cfg, out)
    for path in result.files:
        print(f"wrote {path}")
    sites = result.manifest["fault_sites"]
    print(f"{cfg.describe()}; {len(sites)} fault sites, {result.manifest['fault_site_bits']} bits; "
          f"config hash {result.manifest['config_hash'][:12]}")
    if args.lint:
        problems = lint(result.files[0], cfg.name)
        if problems:
            print(f"lint: {len(problems)} problem(s); first: {problems[0]}", file=sys.stderr)
            return 1
        print("lint: clean (Verilator -Wall with the suppressions in docs/lint.md)")
    return 0
