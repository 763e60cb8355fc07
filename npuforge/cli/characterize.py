"""``npuforge characterize CONFIG [--json FILE]``: error against float and Yosys cost of a nonlinear unit.

The sweep is :func:`sim.characterize.characterize` (through the kind's golden
model); the cost is ``npuforge synth``'s ``generic`` flow on the generated
Verilog, sharing its cache (``build/<name>-<hash>/synth/generic``).
"""

import os
from pathlib import Path

from gen.config import load_config
from gen.errors import UsageError

from .args import add_config, int_in
from .output import stdout_console, write_json

HELP = "measure a nonlinear unit's error against float (exhaustive up to 16 input bits) and its cost"
DEFAULT_BUILD_ROOT = Path(os.environ.get("NPUFORGE_BUILD_DIR", "build"))


def add_arguments(parser) -> None:
    add_config(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--no-cost", action="store_true", help="skip synthesis (the report's cost is null)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1,
                        help="seed of the sampled inputs and rows (default 1)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR", help="build root (default build/)")


def _number(value, digits=3) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}g}"


def print_report(report: dict) -> None:
    """The short table ``npuforge characterize`` prints."""
    from rich.table import Table

    table = Table(title=f"{report['name']}: {report['kind']}"
                        f"{' ' + report['method'] if report['method'] else ''}, "
                        f"{report['input']} -> {report['output']}", show_header=False)
    table.add_column("measure")
    table.add_column("value", justify="right")
    tested = f"{report['inputs_tested']:,} elements"
    tested += " (every input code)" if report["exhaustive"] else f" in {report['rows_tested']:,} rows (sampled)"
    table.add_row("inputs", tested)
    table.add_row("max abs error", _number(report["max_abs_error"]))
    table.add_row("mean abs error", _number(report["mean_abs_error"]))
    table.add_row("max error (output LSB)", _number(report["max_error_lsb"]))
    if report["saturated"]:
        clamped = report["clamped"]
        table.add_row(f"{report['saturated']:,} exact values outside the output range", "")
        table.add_row("max abs error, exact values clamped to it",
                      f"{_number(clamped['max_abs_error'])} ({_number(clamped['max_error_lsb'])} LSB)")
    if report["excluded"]:
        table.add_row("outputs left out (exact value not finite)", f"{report['excluded']:,}")
    for name, part in report.get("by_distribution", {}).items():
        table.add_row(f"  {name} rows", f"{_number(part['max_abs_error'])} max, {_number(part['mean_abs_error'])} mean")
    cost = report["cost"]
    if cost:
        table.add_row("transistors (Yosys generic)", _number(cost["transistors"]))
        table.add_row("cells / flip-flops / logic depth",
                      f"{cost['cells']:,} / {cost['ff']:,} / {cost['logic_depth']:,}")
    stdout_console().print(table)


def run(args) -> int:
    from npuforge.registry import golden_for
    from sim.characterize import characterize, supports

    cfg = load_config(args.config)
    golden = golden_for(cfg)
    if not supports(cfg, golden):
        raise UsageError(f"{args.config}: kind '{cfg.kind}' has no float reference to characterize against; "
                         "allowed: a nonlinear unit (exp, reciprocal, rsqrt, gelu, softmax, layernorm)")
    if args.json is not None and args.json.is_dir():  # refuse before the sweep and synthesis
        raise UsageError(f"--json: got '{args.json}', which is a directory; allowed: a file path")
    cost = None
    if not args.no_cost:
        from rich.console import Console

        from fpga.cost import generic_cost

        with Console(stderr=True).status("synthesising (Yosys generic)") as status:
            cost = generic_cost(cfg, args.build_dir or DEFAULT_BUILD_ROOT, on_step=status.update)
    report = characterize(cfg, golden, seed=args.seed, cost=cost)
    print_report(report)
    if args.json is not None:
        write_json(args.json, report)
        print(f"wrote    {args.json}")
    return 0
