"""Verilator lint of generated Verilog with one documented suppression list.

Lint runs with ``-Wall``; each suppressed warning below is a property of how
Amaranth and Yosys write Verilog, not of a design, and is explained in
``docs/lint.md``. A warning outside this list is a generator bug.
"""

import re
import subprocess
from pathlib import Path

from .errors import ToolError
from .toolchain import verilator_env

#: warning -> why Amaranth/Yosys output trips it although the design is fine.
SUPPRESSED_WARNINGS: dict[str, str] = {
    "DECLFILENAME": "all modules of a design share one file named after the top module",
    "PROCASSINIT": "Yosys declares each register with its reset value as initialiser and "
                   "also assigns it in an always block",
    "UNUSEDSIGNAL": "Amaranth names a wire for every struct field and alias to aid debugging; "
                    "many are never read",
    "WIDTHEXPAND": "Yosys writes arithmetic on operands narrower than the result and relies on "
                   "Verilog's context-determined widths, which Amaranth's semantics define",
}


def lint_args() -> list[str]:
    return ["--lint-only", "-Wall"] + [f"-Wno-{name}" for name in sorted(SUPPRESSED_WARNINGS)]


def lint(verilog: Path, top: str) -> list[str]:
    """Warnings and errors Verilator reports for ``verilog`` (empty when clean)."""
    command = ["verilator", *lint_args(), "--top-module", top, str(verilog)]
    try:
        done = subprocess.run(command, env=verilator_env(), capture_output=True, text=True,
                              timeout=600, check=False)
    except OSError as error:
        raise ToolError(f"verilator: cannot run: {error}") from None
    output = (done.stdout + done.stderr).splitlines()
    problems = [line for line in output if line.startswith("%")]
    if done.returncode != 0 and not problems:
        tail = output[-1] if output else "no output"
        problems.append(f"%Error: verilator exited with code {done.returncode}: {tail}")
    return problems


def with_source(problems: list[str], verilog: Path) -> list[str]:
    """``problems`` of :func:`lint`, each followed by the Verilog line it points at (``[...]``).

    A finding then reads without the file, which may be temporary (tests, fuzzing).
    """
    lines = Path(verilog).read_text().splitlines()
    shown = []
    for problem in problems:
        found = re.match(r"%\S+: \S+?:(\d+):\d+:", problem)
        number = int(found.group(1)) if found else 0
        shown.append(f"{problem}  [{lines[number - 1].strip()}]" if 0 < number <= len(lines) else problem)
    return shown
