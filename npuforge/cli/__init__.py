"""``npuforge`` command line: one module per command, each with ``HELP``, ``add_arguments`` and ``run``.

Exit codes: 0 success, 1 simulation mismatch or failed check, 2 bad config or
argument (one line on stderr), 3 an external tool failed.
"""

import sys

from gen import __version__
from gen.errors import NpuforgeError

from . import characterize, clean, fpga, generate, inject, kinds, perf, protect, report, resilience, sim, synth, validate
from . import compile as compile_command  # "compile" would shadow the builtin here
from . import eval as eval_command  # "eval" would shadow the builtin here
from . import run as run_command  # "run" is every command module's entry point
from .args import Parser

#: name -> command module, in the order ``--help`` lists them.
COMMANDS = {"generate": generate, "sim": sim, "synth": synth, "validate": validate, "kinds": kinds,
            "inject": inject, "report": report, "characterize": characterize, "protect": protect,
            "perf": perf, "eval": eval_command, "compile": compile_command, "run": run_command, "fpga": fpga,
            "resilience": resilience, "clean": clean}


def parser() -> Parser:
    top = Parser(prog="npuforge", description="Generate, simulate, synthesise and verify neural-accelerator RTL.")
    top.add_argument("--version", action="version", version=f"npuforge {__version__}")
    # Not "required": main() checks, so that an unknown option is reported as such first.
    commands = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, module in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=module.HELP))
    return top


def main(argv: list[str] | None = None) -> int:
    try:
        top = parser()
        args, unknown = top.parse_known_args(argv)
        if unknown:
            top.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.command is None:
            top.error("the following arguments are required: COMMAND")
        return COMMANDS[args.command].run(args)
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
