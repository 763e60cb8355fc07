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
    parser.add_argument("--register-html", metavar="DIR", type=Path, default=None,
                        help="also write the HTML register reference (kinds with registers: moevit_accel)")


def run(args) -> int:
    from gen.errors import UsageError

    cfg = load_config(args.config)
    if args.register_html is not None and cfg.kind != "moevit_accel":
        raise UsageError(f"--register-html: kind '{cfg.kind}' has no registers; allowed: a moevit_accel config")
    if args.register_html is not None and args.register_html.exists() and not args.register_html.is_dir():
        raise UsageError(f"--register-html: got '{args.register_html}', which is a file; allowed: a directory")
    out = args.out if args.out is not None else Path("generated") / cfg.name
    result = generate(cfg, out)
    for path in result.files:
        print(f"wrote {path}")
    if args.register_html is not None:
        from hw.vit.regmap import elaborate_rdl, html_reference

        rdl = result.elaboration.files[f"{cfg.name}_regs.rdl"]
        page = html_reference(elaborate_rdl(rdl)[1], args.register_html)
        print(f"wrote {page}")
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
