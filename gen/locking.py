"""An exclusive lock on a file, for build directories shared by parallel processes."""

import fcntl
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def locked(path: Path):
    """Hold an exclusive ``flock`` on ``path`` (created, with its parent, if missing) for the block.

    Parallel builds of one config (pytest-xdist workers, two ``npuforge``
    commands) wait for each other instead of writing the same files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
