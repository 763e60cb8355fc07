"""Run one external tool with its output in a log file, a time limit and one-line errors.

Contract of :func:`run_logged`: the tool's stdout and stderr both go to ``log``
(created or truncated); it returns normally only when the tool exits with code 0.
Anything else raises :class:`gen.errors.ToolError` with one line naming the tool,
what went wrong (exit code, first ``ERROR`` line of the log, or the time limit)
and the log path. On a time limit or an interrupt the tool's whole process group
is killed: Yosys runs ABC as a child process, which would otherwise outlive it.
"""

import os
import re
import signal
import subprocess
from pathlib import Path

from gen.errors import ToolError

#: Default time limit of one tool run, in seconds.
DEFAULT_TIMEOUT = 1800.0

_MAX_DETAIL = 160  # characters of the tool's own error line quoted in the message


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


_ERROR = re.compile(r"\bERROR:")


def first_error_line(log: Path) -> str | None:
    """The first line of ``log`` with ``ERROR:`` (Yosys and nextpnr both use it), shortened.

    Yosys puts the source position first on syntax errors (``design.v:1: ERROR: ...``).
    """
    try:
        with open(log, errors="replace") as handle:
            for line in handle:
                text = line.strip()
                if _ERROR.search(text):
                    return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL - 3] + "..."
    except OSError:
        pass
    return None


def run_logged(tool: str, argv: list[str], *, cwd: Path, log: Path, timeout: float = DEFAULT_TIMEOUT,
               env: dict[str, str] | None = None) -> None:
    """Run ``argv`` in ``cwd``, writing its output to ``log``; raise ToolError unless it exits 0."""
    with open(log, "wb") as out:
        try:
            # A session of its own, so that a timeout can kill the tool and its children
            # (ABC under Yosys) together.
            proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as error:
            raise ToolError(f"{tool}: cannot start {argv[0]}: {error.strerror}") from None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise ToolError(f"{tool}: stopped after the time limit of {timeout:g} s; see {log}") from None
        except BaseException:
            # Ctrl-C reaches only our process group, not the tool's session.
            _kill_group(proc)
            raise
    if code != 0:
        detail = first_error_line(log)
        reason = f"exited with code {code}" + (f" ({detail})" if detail else "")
        raise ToolError(f"{tool}: {reason}; see {log}")
