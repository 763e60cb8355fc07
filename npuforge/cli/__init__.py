"""``npuforge`` command line: one module per command, each with ``HELP``, ``add_arguments`` and ``run``.

Exit codes: 0 success, 1 simulation mismatch or failed check, 2 bad config or
argument (one line on stderr), 3 an external tool failed.
"""

import sys

from gen import __version__
from gen.errors import NpuforgeError

from . import characterize, compile, generate, inject, kinds, protect, report, run as run_command, sim, synth, validate
from .args import Parser
from . import perf  # noqa: E402,I001 -- npuforge perf (MoE-ViT performance model)
from . import eval as eval_command  # noqa: E402,I001 -- npuforge eval (MoE-ViT task metrics)

#: name -> command module, in the order ``--help`` lists them.
COMMANDS = {"generate": generate, "sim": sim, "synth": synth, "validate": validate, "kinds": kinds,
            "inject": inject, "report": report, "characterize": characterize, "protect": protect}
COMMANDS["perf"] = perf
COMMANDS["eval"] = eval_command
COMMANDS["compile"] = compile
COMMANDS["run"] = run_command


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
