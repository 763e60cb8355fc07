"""``npuforge`` command line.

Exit codes: 0 success, 1 simulation mismatch or failed check, 2 bad config or
argument (one line on stderr), 3 an external tool failed.
"""

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .config import load_config
from .errors import NpuforgeError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line through :class:`UsageError`."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}; see '{self.prog} --help'")


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer from {low} to {high}")
        return value
    return parse


MIN_PROBABILITY = 0.01  # below this a run of a few jobs takes millions of cycles


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not MIN_PROBABILITY <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a number from {MIN_PROBABILITY} to 1")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="npuforge", description="Generate, simulate and verify neural-accelerator RTL.")
    parser.add_argument("--version", action="version", version=f"npuforge {__version__}")
    # Not "required": main() checks, so that an unknown option is reported as such first.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("generate", help="write Verilog and manifest.json for a config")
    p.add_argument("config", metavar="CONFIG", help="YAML config file")
    p.add_argument("-o", "--out", metavar="DIR", type=Path, default=None,
                   help="output directory (default: generated/<name>)")
    p.add_argument("--lint", action="store_true", help="also lint the Verilog with Verilator")

    p = commands.add_parser("sim", help="build the Verilator model and check it against the golden model")
    p.add_argument("config", metavar="CONFIG", help="YAML config file")
    p.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=1, help="seed of the random vectors (default 1)")
    p.add_argument("--vectors", type=_int_in(0, 100_000), default=20, metavar="N",
                   help="random jobs in addition to the edge cases (default 20)")
    p.add_argument("--valid-prob", type=_probability, default=1.0, metavar="P",
                   help="chance per cycle that the input stream offers a beat (default 1)")
    p.add_argument("--ready-prob", type=_probability, default=1.0, metavar="P",
                   help="chance per cycle that the output stream accepts a beat (default 1)")
    p.add_argument("--waves", action="store_true", help="record dump.vcd (builds a separate traced model)")
    p.add_argument("--build-dir", type=Path, default=None, metavar="DIR", help="build root (default build/)")

    p = commands.add_parser("validate", help="check a config and print it normalised, with its hash")
    p.add_argument("config", metavar="CONFIG", help="YAML config file")

    commands.add_parser("kinds", help="list the hardware kinds a config can describe")
    return parser


def _cmd_generate(args) -> int:
    from .emit import generate
    from .lint import lint

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


def _cmd_sim(args) -> int:
    from rich.console import Console

    from sim.runner import DEFAULT_BUILD_ROOT, kind_testbench, simulate

    cfg = load_config(args.config)
    print(f"design   {cfg.name}: {cfg.describe()} (config hash {cfg.config_hash()[:12]})", flush=True)
    # A spinner on a terminal while Verilator compiles (tens of seconds); silent in logs.
    with Console(stderr=True).status("starting") as status:
        done = simulate(cfg, seed=args.seed, n_random=args.vectors, valid_prob=args.valid_prob,
                        ready_prob=args.ready_prob, waves=args.waves,
                        build_root=args.build_dir or DEFAULT_BUILD_ROOT, on_step=status.update)
    built, run = done.build, done.run
    how = "reused" if built.reused else f"built in {built.seconds:.1f} s"
    print(f"build    {built.root} ({how})")
    print(f"files    {built.verilog}, {built.rtl_dir / 'manifest.json'}")
    jobs = run.vectors["jobs"]
    print(f"vectors  {len(jobs)} jobs ({len(jobs) - args.vectors} edge cases + {args.vectors} random, "
          f"seed {args.seed}); source valid {args.valid_prob:g}, sink ready {args.ready_prob:g}")
    results = run.results
    if results:
        latency = sorted(set(results.get("latency", [])))
        print(f"cycles   {results.get('cycles')} simulated, {run.seconds:.2f} s wall; "
              f"{results.get('operand_beats')} operand beats in, {results.get('result_beats')} result beats out; "
              f"latency {', '.join(map(str, latency)) or '-'} cycles")
    if run.waves:
        print(f"waves    {run.waves}")
    if run.ok:
        print(f"PASS     {len(jobs)} jobs bit-exact against the golden model")
        return 0
    if run.mismatch is not None:
        print(f"FAIL     {kind_testbench(cfg).describe_mismatch(run.mismatch)}")
    elif run.problems:
        print(f"FAIL     {run.problems[0]}")
    else:
        print("FAIL     the cocotb test failed")
    print(f"log      {run.log}")
    return 1


def _cmd_validate(args) -> int:
    cfg = load_config(args.config)
    print(json.dumps({"config": cfg.normalized(), "config_hash": cfg.config_hash()}, indent=2, sort_keys=True))
    return 0


def _cmd_kinds(args) -> int:
    from .registry import KINDS

    for kind in KINDS:
        print(f"{kind.name:10} {kind.config.summary}  (docs: {kind.doc})")
    return 0


_COMMANDS = {"generate": _cmd_generate, "sim": _cmd_sim, "validate": _cmd_validate, "kinds": _cmd_kinds}


def main(argv: list[str] | None = None) -> int:
    try:
        parser = _parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.command is None:
            parser.error("the following arguments are required: COMMAND")
        return _COMMANDS[args.command](args)
    except NpuforgeError as error:
        print(f"npuforge: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # e.g. an unwritable --build-dir
        where = f"{error.filename}: " if error.filename else ""
        print(f"npuforge: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("npuforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
