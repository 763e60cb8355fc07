"""Verilator's runtime objects, compiled once per toolchain and flag set and copied into every model's build.

Every Verilated model links the same design-independent objects: Verilator's ``verilated.o`` and
friends, for cocotb models also its VPI layer (not cocotb's main, which includes the model's
``Vtop.h``: :func:`design_independent`). At -O0 they are about 13 of a small cocotb model's 17
compile seconds, and the fault harness compiles two of them at -O2. The first build of a flag set
keeps them under ``<build root>/verilator-runtime/<family>-<key>/``; later builds start from a
copy. Verilator rewrites ``Vtop.mk`` in every build and its makefile makes the global objects
depend on it, so the make step is told (``make --assume-old=OBJECT``) that the copies are current.
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from gen.toolchain import verilator_version


def _compiler() -> list[str]:
    try:
        return subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    except OSError:
        return []


def shared_dir(build_root: Path, family: str, facts: dict) -> Path:
    """Where ``family``'s runtime objects for ``facts`` (flags, versions) and this C++ compiler are kept."""
    facts = {**facts, "verilator": verilator_version(), "cxx": _compiler()}
    key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return Path(build_root) / "verilator-runtime" / f"{family}-{key}"


def _files(directory: Path, objects: tuple) -> list[Path]:
    return [directory / f"{name}{suffix}" for name in objects for suffix in (".o", ".d")]


def seed(shared: Path, build_dir: Path, objects: tuple) -> list[str]:
    """Copy the kept ``objects`` into ``build_dir`` (modification times kept); the make arguments that mark
    them current (``--assume-old=verilated.o ...``), or [] when none are kept yet."""
    files = _files(shared, objects)
    if not all(path.is_file() for path in files):
        return []
    try:
        for path in files:
            shutil.copy2(path, Path(build_dir) / path.name)
    except OSError:  # removed meanwhile (npuforge clean): this build compiles its own
        for path in files:
            (Path(build_dir) / path.name).unlink(missing_ok=True)
        return []
    return [f"--assume-old={name}.o" for name in objects]


def design_independent(depfile: Path) -> bool:
    """Whether an object's make dependencies (its ``.d`` file) are all outside the build directory: an
    object that includes a model header (``Vtop.h``: the model class's size follows the design) is not."""
    words = depfile.read_text().replace("\\\n", " ").split()
    return all(word.endswith(":") or Path(word).is_absolute() for word in words)


def keep(shared: Path, build_dir: Path, objects: tuple) -> None:
    """Keep the ``objects`` a build compiled, for the next builds (copied aside, then renamed into place:
    a half-written set is never seen; when another process got there first, its set stays). Refuses
    (ValueError) an object that depends on a file of the build directory: it would not fit other designs."""
    files = _files(Path(build_dir), objects)
    if shared.is_dir() or not all(path.is_file() for path in files):
        return
    for path in files:
        if path.suffix == ".d" and not design_independent(path):
            raise ValueError(f"{path.stem}.o includes a header of the design's build; it cannot be shared")
    staging = shared.with_name(f"{shared.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in files:
        shutil.copy2(path, staging / path.name)
    try:
        staging.rename(shared)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
