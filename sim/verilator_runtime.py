"""Verilator's runtime objects, compiled once per toolchain and flag set and copied into every model's build.

Every Verilated model links the same design-independent objects: Verilator's ``verilated.o`` and
friends, for cocotb models also its VPI layer (not cocotb's main, which includes the model's
``Vtop.h``: :func:`design_independent`). At -O0 they are about 13 of a small cocotb model's 17
compile seconds, and the fault harness compiles two of them at -O2. The first build of a flag set
keeps them under ``<build root>/verilator-runtime/<family>-<key>/``; later builds start from a
copy. Verilator rewrites ``Vtop.mk`` in every build and its makefile makes the global objects
depend on it, so the make step is told (``make --assume-old=OBJECT``) that the copies are current.

The same goes for the precompiled header. Verilator precompiles one per model (``Vtop__pch.h``: its
runtime headers and the model's own two), twice (for the fast and the slow objects): at -O0 that is
2 x 2.8 s of a small cocotb model's 10.6 s of C++ (``os_3x4_s8_opt1``), for a header whose model
part is a few lines. :func:`keep_pch` compiles a header of only the runtime headers (:data:`PCH_TEXT`)
with the flags of the second model built (a build root that only ever sees one model of a flag set,
such as a fresh Dask worker's, does not pay for it); later models include it instead (:func:`pch_args`) and
parse their own headers as text: 4.9 s instead of 10.6 s for that model. cocotb models, all at one
optimisation level, include it in every compile: single-file models and cocotb's main included
(each 1.6 -> 0.5 s).
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


#: The shared precompiled header: Verilator's runtime headers, what every model's ``Vtop__pch.h`` starts with.
PCH_NAME = "npuforge_pch.h"
PCH_TEXT = ('// Verilator\'s runtime headers, precompiled once per flag set (sim/verilator_runtime.py).\n'
            '#include "verilated.h"\n#include "verilated_dpi.h"\n')
_PCH_KINDS = ("fast", "slow")


def pch_args(shared: Path, *, one_optimisation: bool = False) -> list[str]:
    """The make arguments that compile a model against the precompiled header kept in ``shared``
    (:func:`keep_pch`) instead of its own, or [] when none is kept yet. Joined ``-include<file>``: the
    arguments also travel through Verilator's ``-MAKEFLAGS``, one word each.

    ``one_optimisation``: the build compiles everything at one optimisation level (cocotb models: -O0), so
    the header is included by every compile, the single-file models' and cocotb's ``verilator.cpp``
    too (1.6 s -> 0.5 s each), not only by the split models' fast and slow objects."""
    header = Path(shared).resolve() / PCH_NAME  # make runs in the model's directory
    if any(c.isspace() for c in str(header)) or not all(Path(f"{header}.{kind}.gch").is_file() for kind in _PCH_KINDS):
        return []  # a path with blanks would not survive make's command line
    if one_optimisation:
        return [f"VK_PCH_H={header}", "VK_PCH_I_FAST=", "VK_PCH_I_SLOW=", f"USER_CPPFLAGS=-include{header}.fast"]
    return [f"VK_PCH_H={header}", *[f"VK_PCH_I_{kind.upper()}=-include{header}.{kind}" for kind in _PCH_KINDS]]


def keep_pch(shared: Path, build_dir: Path, env: dict) -> None:
    """Precompile :data:`PCH_TEXT` with the flags of the model just built in ``build_dir`` (its ``Vtop.mk``
    compiles it: the same compiler, optimisation and defines the next models of this flag set use) and keep
    it in ``shared``: built aside, then renamed into place. A text copy stands beside each ``.gch``, so a
    compiler that refuses the precompiled file reads the headers instead. Best effort: when make fails,
    nothing is kept and models keep compiling their own header."""
    shared = Path(shared).resolve()
    if shared.is_dir() or any(c.isspace() for c in str(shared)):
        return
    staging = shared.with_name(f"{shared.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    header = staging / PCH_NAME
    for path in [header, *[Path(f"{header}.{kind}") for kind in _PCH_KINDS]]:
        path.write_text(PCH_TEXT)
    done = subprocess.run(["make", "-f", "Vtop.mk", f"VK_PCH_H={header}",
                           *[f"{header}.{kind}.gch" for kind in _PCH_KINDS]],
                          cwd=build_dir, env=env, capture_output=True, text=True)
    try:
        if done.returncode != 0:
            return
        staging.rename(shared)
    except OSError:  # another process kept its header first
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)
