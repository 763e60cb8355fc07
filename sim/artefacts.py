"""The build directory's artefacts: what each one is, its size, when it was last used, and removing
it (``npuforge clean``).

The layout (``docs/simulation.md``, "Build directory"), each line one artefact:

```
<build root>/
    <name>-<hash12>/           one config (sim/runner.py, sim/fault/campaign.py, fpga/cost.py, sim/energy.py)
        rtl/                   generated Verilog and manifest
        sim/, stamp.json       Verilator model of npuforge sim (sim-waves/, stamp-waves.json: --waves)
        runs/                  run files of npuforge sim
        synth/                 synthesis results per target and the Verilog they came from
        fault/                 campaign scratch (workload specs)
        energy/                energy-proxy runs and their module cell counts
    fault-harness/<top>-<key>/     fault-campaign harness builds (sim/fault/harness), one per Verilog
    accel-harness/<top>-<key>/     the accelerator's fast harness builds (accel-harness-trace/: with VCD)
    verilator-runtime/<family>-<key>/  Verilator's runtime objects per flag set (sim/verilator_runtime.py)
    energy-harness/<top>-<key>/    toggle-coverage models (sim/energy.py)
    dask-designs/<top>-<key>/      harness builds of a Dask LocalCluster's workers
    campaigns/<name>.sqlite        campaign databases (with -wal, -shm): results, never scratch
```

Every artefact can be rebuilt by the command that made it, except a campaign database, which
holds results: :func:`scan` lists databases only when asked. Anything else under the build root
(``npuforge generate -o build/demo``, a nested build root such as ``build/tests``) is not an
artefact and is left alone.

"Last used" is the newest modification time of anything in the artefact and the newest access
time of its files (not of its directories: listing one, as :func:`scan` does, updates that). A
cache that is only read keeps its modification time from its build, but reading it (running a
harness, reading a synthesis result) updates its files' access time; with the usual ``relatime``
mount option that happens at most once a day, so "last used" is exact to a day there, and falls
back to the last build on a ``noatime`` mount.
"""

import fcntl
import os
import re
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path

#: Subdirectory of a config's build directory -> what it holds.
CONFIG_PARTS = {
    "rtl": "generated Verilog",
    "sim": "Verilator model",
    "sim-waves": "Verilator model (waves)",
    "runs": "simulation runs",
    "synth": "synthesis cache",
    "fault": "campaign scratch",
    "energy": "energy runs",
}
#: Files of a config's build directory that belong to one of its parts.
PART_FILES = {"stamp.json": "sim", "stamp-waves.json": "sim-waves"}
#: Directory of the build root -> what each of its subdirectories is.
SHARED = {
    "fault-harness": "harness build",
    "accel-harness": "accelerator harness build",
    "accel-harness-trace": "accelerator harness build (trace)",
    "energy-harness": "toggle model build",
    "dask-designs": "Dask harness build",
    "verilator-runtime": "Verilator runtime objects",
}
DATABASES = "campaigns"
DATABASE = "campaign database"
#: ``<name>-<12 hex digits of the config hash>`` (``KindConfig.build_name``); a name is a Verilog identifier.
CONFIG_DIR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*-[0-9a-f]{12}")
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Artefact:
    """One removable thing under the build root."""

    what: str                 # a value of CONFIG_PARTS or SHARED, or DATABASE
    paths: tuple[Path, ...]   # the directory or files that make it (removed together)
    size: int                 # bytes of its files
    last_used: float          # seconds since the epoch (see the module docstring)
    lock: Path | None         # the lock file its builder holds while writing it, if any

    @property
    def path(self) -> Path:
        return self.paths[0]

    def age_days(self, now: float) -> float:
        return max(0.0, now - self.last_used) / SECONDS_PER_DAY


@dataclass(frozen=True)
class Scan:
    """What :func:`scan` found: the artefacts, and the entries of the build root it does not know."""

    artefacts: list[Artefact]
    unknown: list[Path]


def _usage(paths) -> tuple[int, float]:
    """(bytes of the files, last use) of files and directory trees; symbolic links are not followed."""
    size, last = 0, 0.0
    for top in paths:
        info = os.lstat(top)
        last = max(last, info.st_mtime)
        if not stat.S_ISDIR(info.st_mode):
            size += info.st_size
            last = max(last, info.st_atime)
            continue
        for folder, dirs, files in os.walk(top):
            for name in dirs:
                last = max(last, os.lstat(os.path.join(folder, name)).st_mtime)
            for name in files:
                info = os.lstat(os.path.join(folder, name))
                size += info.st_size
                last = max(last, info.st_mtime, info.st_atime)
    return size, last


def _artefact(what: str, paths, lock: Path | None) -> Artefact:
    paths = tuple(paths)
    size, last = _usage(paths)
    return Artefact(what=what, paths=paths, size=size, last_used=last, lock=lock)


def _config_artefacts(config_dir: Path) -> tuple[list[Artefact], list[Path]]:
    lock = config_dir.with_name(config_dir.name + ".lock")  # sim.runner.build and campaigns hold it
    parts: dict[str, list[Path]] = {}
    unknown = []
    for entry in sorted(config_dir.iterdir()):
        part = entry.name if entry.is_dir() and not entry.is_symlink() else PART_FILES.get(entry.name)
        if part in CONFIG_PARTS:
            parts.setdefault(part, []).append(entry)
        else:
            unknown.append(entry)
    for part, paths in parts.items():
        paths.sort(key=lambda path: not path.is_dir())  # the directory first: it names the artefact
    found = [_artefact(CONFIG_PARTS[part], paths, lock) for part, paths in parts.items()]
    return found, unknown


def _database_artefacts(folder: Path) -> tuple[list[Artefact], list[Path]]:
    found, unknown = [], []
    for entry in sorted(folder.iterdir()):
        if entry.suffix == ".sqlite" and entry.is_file():
            companions = [entry.with_name(entry.name + tail) for tail in ("-wal", "-shm")]
            found.append(_artefact(DATABASE, [entry, *(p for p in companions if p.exists())], None))
        elif not (entry.name.endswith((".sqlite-wal", ".sqlite-shm"))
                  and entry.with_name(entry.name[:-4]).is_file()):
            unknown.append(entry)
    return found, unknown


def scan(build_root: Path, *, databases: bool = False) -> Scan:
    """The artefacts under ``build_root`` (campaign databases only when ``databases``), and what else is there."""
    root = Path(build_root)
    artefacts, unknown = [], []
    for entry in sorted(root.iterdir()):
        if entry.name.endswith(".lock") and entry.is_file():  # the builders' locks (see remove)
            continue
        if entry.is_symlink():
            unknown.append(entry)
        elif entry.is_dir() and entry.name in SHARED:
            for home in sorted(entry.iterdir()):
                if home.is_dir() and not home.is_symlink():
                    artefacts.append(_artefact(SHARED[entry.name], [home], home.with_name(home.name + ".lock")))
                elif not home.name.endswith(".lock"):
                    unknown.append(home)
        elif entry.is_dir() and entry.name == DATABASES:
            if databases:
                found, others = _database_artefacts(entry)
                artefacts += found
                unknown += others
        elif entry.is_dir() and CONFIG_DIR.fullmatch(entry.name):
            found, others = _config_artefacts(entry)
            artefacts += found
            unknown += others
        else:
            unknown.append(entry)
    return Scan(artefacts=artefacts, unknown=unknown)


def databases_in(build_root: Path) -> list[Artefact]:
    """The campaign databases under ``build_root`` (what :func:`scan` leaves out by default)."""
    folder = Path(build_root) / DATABASES
    return _database_artefacts(folder)[0] if folder.is_dir() else []


def older_than(artefacts: list[Artefact], days: float, now: float | None = None) -> list[Artefact]:
    """The artefacts last used more than ``days`` days before ``now`` (default: the current time)."""
    now = time.time() if now is None else now
    return [a for a in artefacts if now - a.last_used > days * SECONDS_PER_DAY]


def remove(artefact: Artefact) -> bool:
    """Remove ``artefact``; False (nothing removed) when a process holds its lock, i.e. is building it
    (the builders hold it while they write, not while a model or harness runs). A config's build
    directory left empty is removed too; lock files are kept, since another process may be waiting
    on one."""
    handle = None
    if artefact.lock is not None and artefact.lock.exists():
        handle = open(artefact.lock)  # noqa: SIM115 -- held across the removal below
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
    try:
        for path in artefact.paths:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        parent = artefact.path.parent
        if CONFIG_DIR.fullmatch(parent.name) and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    finally:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
    return True
