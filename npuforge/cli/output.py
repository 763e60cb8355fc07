"""What commands share for their output (not a command): the console their tables print on, and
the ``--json`` file.

Outside a terminal (a CI log, ``make demo | tee``) rich would lay tables out at 80 columns and
cut block names (``core.…``) and wrap numbers; :func:`stdout_console` gives it room instead.
"""

import json
import os
import tempfile
from pathlib import Path

from gen.errors import UsageError

#: Columns of the console when stdout is not a terminal: wider than any table a command prints,
#: so rich lays every table out at its natural width (lines are as long as the table, no longer).
LOG_WIDTH = 10_000


def stdout_console():
    """A rich ``Console`` on stdout: the terminal's width on a terminal, :data:`LOG_WIDTH` otherwise."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=LOG_WIDTH)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` (a ``--json`` argument) whole or not at all; one-line :class:`UsageError`."""
    if path.is_dir():
        raise UsageError(f"--json: got '{path}', which is a directory; allowed: a file path")
    temp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(temp, path)
    except OSError as error:
        if temp is not None:
            Path(temp).unlink(missing_ok=True)
        raise UsageError(f"--json: got '{path}'; cannot write it: {error.strerror}") from None
