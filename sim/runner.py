"""Build a Verilator model once per config and run a kind's cocotb testbench on it.

Layout under the build root (``build/`` by default)::

    <name>-<hash12>/          one directory per normalised config
        rtl/                  npuforge generate output (Verilog + manifest.json)
        sim/ or sim-waves/    Verilator model (the -waves one records traces)
        stamp.json            build key of the model in sim/
        runs/<run>/           vectors.json, results.json, sim.log, results.xml, dump.vcd
    verilator-runtime/        Verilator's runtime objects, compiled once per toolchain (sim/verilator_runtime.py)

Every build re-elaborates the config (about a second for an 8x8 array, tens of
seconds for the accelerator) unless ``rtl/`` holds the output of the same generator
sources and config (``gen.emit.generate_once``); the Verilator model is reused
while its build key matches: the sha256 of the Verilog, the Verilator
version and the build flags. Editing a generator therefore rebuilds exactly the
models whose Verilog changed. Builds of the same config from parallel processes
(pytest-xdist) are serialised by a lock.
"""

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType

from gen.config.base import KindConfig
from gen.emit import generate_in_build, generate_once
from gen.errors import ToolError
from gen.lint import SUPPRESSED_WARNINGS
from gen.locking import locked
from gen.manifest import MANIFEST_NAME, verilog_filename
from gen.toolchain import COCOTB_CXX_OPT, apply_verilator_env, require_build_tools, verilator_version

from . import verilator_runtime
from .fault.harness import control_file
from .tb.harness import ENV_MANIFEST, ENV_RESULTS, ENV_VECTORS

DEFAULT_BUILD_ROOT = Path(os.environ.get("NPUFORGE_BUILD_DIR", "build"))
PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: Which files cocotb has pytest rewrite assertions in (nicer failure messages): the testbenches.
REWRITE_ENV, REWRITE_FILES = "COCOTB_REWRITE_ASSERTION_FILES", "*/sim/tb/*.py"


def build_key(verilog: str, waves: bool) -> str:
    """What a compiled model depends on: the exact Verilog, the Verilator version, the flags."""
    facts = {
        "verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest(),
        "verilator": verilator_version(),
        "build_args": build_args(),
        "cxx_opt": COCOTB_CXX_OPT,
        "waves": waves,
        "public": PUBLIC,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


#: What a cocotb model makes visible through VPI: the ports and the manifest's fault sites (the only
#: signals a testbench reads or writes), through a control file like the fault harness's
#: (:func:`sim.fault.harness.control_file`), instead of cocotb's ``--public-flat-rw`` (every signal):
#: Verilator then optimises the rest, and a model's C++ shrinks (os_3x4_s8_opt1: 11.2 MB -> 0.74 MB).
#: ``--waves`` traces every signal either way.
PUBLIC = "ports and fault sites"


def build_args() -> list[str]:
    # -fno-merge-cond: Verilator's conditional merging is superlinear in a model's evaluation function (the
    # micro accelerator with its ports and fault sites public: 30 of 38 verilation seconds); a cocotb run's
    # time goes to Python, not to the model (sim.fault.harness.ACCEL_BUILDS measures what it buys).
    return [f"-Wno-{name}" for name in sorted(SUPPRESSED_WARNINGS)] + ["-fno-merge-cond"]


#: The objects every cocotb model links that do not depend on the design: Verilator's runtime (compiled
#: once per toolchain, :mod:`sim.verilator_runtime`). Not cocotb's main (``verilator.o``): it includes the
#: model's ``Vtop.h``, whose class size follows the design's ports.
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def build_dir_for(cfg: KindConfig, build_root: Path = DEFAULT_BUILD_ROOT) -> Path:
    return Path(build_root) / cfg.build_name()


def generated(cfg: KindConfig, build_root: Path = DEFAULT_BUILD_ROOT) -> tuple[Path, dict]:
    """``cfg``'s generated files in its build directory (``rtl/``, generated at most once for this generator:
    :func:`gen.emit.generate_once`) and its manifest, without compiling a model."""
    return generate_in_build(cfg, build_root)


@dataclass
class Build:
    """A generated and compiled design, ready to simulate."""

    config: KindConfig
    root: Path
    rtl_dir: Path
    sim_dir: Path
    manifest: dict
    waves: bool
    reused: bool
    seconds: float

    @property
    def top(self) -> str:
        return self.manifest["top"]

    @property
    def verilog(self) -> Path:
        return self.rtl_dir / verilog_filename(self.top)


def public_control_file(manifest: dict) -> str:
    """Verilator configuration making the top module's ports and every fault site visible (:data:`PUBLIC`)."""
    ports = "".join(f'public_flat_rw -module "{manifest["top"]}" -var "{port["name"]}"\n'
                    for port in manifest["ports"])
    return control_file(manifest) + ports


def _verilator_runner(make_args: list[str] = (), public: Path | None = None):
    """cocotb's Verilator runner, ``make_args`` added to its make step (``--assume-old=OBJECT``: the runtime objects
    copied in are current, :mod:`sim.verilator_runtime`); ``public``, a control file that replaces cocotb's
    ``--public-flat-rw`` (:data:`PUBLIC`)."""
    from cocotb_tools.runner import Verilator

    class _Runner(Verilator):
        def _build_command(self):
            commands = super()._build_command()
            verilate = commands[0]
            if public is not None and "--public-flat-rw" in verilate:
                verilate[verilate.index("--public-flat-rw")] = str(Path(public).resolve())
            make = commands[-1]
            if make_args and isinstance(make, list) and make[:1] == ["make"]:
                make += list(make_args)
            return commands

    apply_verilator_env()
    return _Runner()


def _compile_model(source: Path, top: str, sim_dir: Path, build_root: Path, waves: bool, public: Path | None) -> None:
    """cocotb's Verilator build of ``source`` into ``sim_dir`` (which exists), with Verilator's runtime objects
    from the shared set (:mod:`sim.verilator_runtime`); ``public``: see :func:`_verilator_runner`. A failed
    build is a one-line :class:`ToolError`."""
    log = sim_dir / "build.log"
    facts = {"cocotb": metadata.version("cocotb"), "cxx_opt": COCOTB_CXX_OPT, "waves": waves, "args": build_args()}
    shared = verilator_runtime.shared_dir(build_root, "cocotb", facts)
    make_args = verilator_runtime.seed(shared, sim_dir, RUNTIME_OBJECTS)
    shared_pch = verilator_runtime.shared_dir(build_root, "cocotb-pch", facts)
    pch_args = verilator_runtime.pch_args(shared_pch, one_optimisation=True)  # -O0 everywhere
    runner = _verilator_runner(make_args + pch_args, public)  # also sets the environment (apply_verilator_env)
    try:
        runner.build(sources=[source], hdl_toplevel=top, build_dir=sim_dir, build_args=build_args(), waves=waves,
                     log_file=log)
    except (SystemExit, RuntimeError, subprocess.CalledProcessError) as error:
        # cocotb's runner raises RuntimeError("Command failed with return code: N") when
        # verilator or make exits non-zero (e.g. on a lint warning): one line, exit code 3.
        raise ToolError(f"verilator: the build of {top} failed ({_first_error(log) or error}); see {log}") from None
    if not make_args:
        verilator_runtime.keep(shared, sim_dir, RUNTIME_OBJECTS)
    elif not pch_args:  # the second build of this flag set: more will follow (verilator_runtime.keep_pch)
        verilator_runtime.keep_pch(shared_pch, sim_dir, dict(os.environ))


def build_verilog(source: Path, top: str, sim_dir: Path, *, build_root: Path = DEFAULT_BUILD_ROOT) -> Path:
    """A cocotb model of a Verilog file that is no config's (a test's wrapper around one building block), built
    as a config's model is (:data:`COCOTB_CXX_OPT`, the shared runtime objects of ``build_root``) but with every
    signal public; always rebuilt. ``sim_dir``, made absolute."""
    sim_dir = Path(sim_dir).resolve()
    require_build_tools()
    shutil.rmtree(sim_dir, ignore_errors=True)
    sim_dir.mkdir(parents=True)
    _compile_model(Path(source).resolve(), top, sim_dir, build_root, False, None)
    return sim_dir


def run_cocotb_module(test_module: str, top: str, sim_dir: Path, run_dir: Path, extra_env: dict) -> tuple[int, int]:
    """Run the cocotb tests of ``test_module`` on the model in ``sim_dir`` (:func:`build_verilog`); files in
    ``run_dir`` (``sim.log``, ``results.xml``). ``(tests, failed)`` from ``results.xml``; a simulator that
    crashes or writes no results is a one-line :class:`ToolError`."""
    from cocotb_tools.runner import get_results

    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    xml = run_dir / "results.xml"
    env = {REWRITE_ENV: os.environ.get(REWRITE_ENV, REWRITE_FILES), **extra_env}
    try:
        _verilator_runner().test(test_module=test_module, hdl_toplevel=top, hdl_toplevel_lang="verilog",
                                 build_dir=Path(sim_dir).resolve(), test_dir=run_dir, extra_env=env,
                                 log_file=run_dir / "sim.log", results_xml=str(xml))
    except SystemExit:
        pass  # cocotb's runner exits on failed tests under pytest: results.xml says which
    except RuntimeError as error:
        raise ToolError(f"verilator: the simulation of {top} failed ({error}); see {run_dir / 'sim.log'}") from None
    try:
        return get_results(xml)
    except (RuntimeError, OSError):
        raise ToolError(f"cocotb wrote no results.xml; see {run_dir / 'sim.log'}") from None


def build(cfg: KindConfig, *, build_root: Path = DEFAULT_BUILD_ROOT, waves: bool = False) -> Build:
    """Generate and compile ``cfg``, or reuse the model already built for it."""
    started = time.monotonic()
    root = build_dir_for(cfg, build_root)
    rtl_dir = root / "rtl"
    sim_dir = root / ("sim-waves" if waves else "sim")
    stamp = root / ("stamp-waves.json" if waves else "stamp.json")

    with locked(root.with_name(root.name + ".lock")):
        manifest = generate_once(cfg, rtl_dir)
        key = build_key((rtl_dir / verilog_filename(cfg.name)).read_text(encoding="utf-8"), waves)
        try:
            current = json.loads(stamp.read_text()).get("key")
        except (OSError, ValueError):
            current = None
        reused = current == key and (sim_dir / cfg.name).exists()
        if not reused:
            require_build_tools()
            stamp.unlink(missing_ok=True)
            shutil.rmtree(sim_dir, ignore_errors=True)
            sim_dir.mkdir(parents=True)
            public = sim_dir / "public.vlt"
            public.write_text(public_control_file(manifest))
            _compile_model(rtl_dir / verilog_filename(cfg.name), cfg.name, sim_dir, build_root, waves, public)
            stamp.write_text(json.dumps({"key": key, "config_hash": cfg.config_hash()}) + "\n")
    return Build(config=cfg, root=root, rtl_dir=rtl_dir, sim_dir=sim_dir, manifest=manifest,
                 waves=waves, reused=reused, seconds=time.monotonic() - started)


def _first_error(log: Path) -> str:
    """The first error line of a tool log (``%Error...`` of Verilator, ``... Error N`` of make), or ''."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line.strip() for line in lines if line.startswith("%Error") or line.startswith("%Warning")
              or " Error " in line or line.startswith("error:")]
    return errors[0][:200] if errors else ""


@dataclass
class RunResult:
    """Outcome of one testbench run."""

    run_dir: Path
    vectors: dict
    results: dict
    mismatch: dict | None
    cocotb_failed: bool
    seconds: float
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatch is None and not self.cocotb_failed and not self.problems

    @property
    def log(self) -> Path:
        return self.run_dir / "sim.log"

    @property
    def waves(self) -> Path | None:
        path = self.run_dir / "dump.vcd"
        return path if path.exists() else None


def _run_cocotb(built: Build, test_module: str, vectors: dict, run_dir: Path):
    """Run one cocotb test module; return (results dict, cocotb failed?, problems, seconds)."""
    from cocotb_tools.runner import get_results

    run_dir = Path(run_dir).resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    vectors_path, results_path = run_dir / "vectors.json", run_dir / "results.json"
    vectors_path.write_text(json.dumps(vectors) + "\n")
    xml = run_dir / "results.xml"
    env = {
        ENV_MANIFEST: str((built.rtl_dir / MANIFEST_NAME).resolve()),
        ENV_VECTORS: str(vectors_path),
        ENV_RESULTS: str(results_path),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
        # cocotb's default ("*.py") has pytest rewrite the asserts of every module the simulation imports,
        # numpy's included: 1.5 of a small testbench's 2.3 s (start-up 2.3 -> 0.76 s). Ours only.
        REWRITE_ENV: os.environ.get(REWRITE_ENV, REWRITE_FILES),
    }
    started = time.monotonic()
    try:
        _verilator_runner().test(
            test_module=test_module,
            hdl_toplevel=built.top,
            hdl_toplevel_lang="verilog",
            build_dir=built.sim_dir.resolve(),
            test_dir=run_dir,
            extra_env=env,
            waves=built.waves,
            log_file=run_dir / "sim.log",
            results_xml=str(xml),
        )
    except SystemExit:
        pass  # cocotb's runner exits on failed tests under pytest; the files below tell the story
    except RuntimeError as error:
        # The simulator process itself failed (a failing test exits 0): a tool failure, one line.
        raise ToolError(f"verilator: the simulation of {built.top} failed ({error}); "
                        f"see {run_dir / 'sim.log'}") from None
    seconds = time.monotonic() - started

    problems = []
    try:
        results = json.loads(results_path.read_text())
    except (OSError, ValueError):
        results = {}
        problems.append(f"the testbench wrote no results; see {run_dir / 'sim.log'}")
    try:
        tests, failed = get_results(xml)
        cocotb_failed = failed > 0 or tests == 0
    except (RuntimeError, OSError):
        cocotb_failed = True
        problems.append(f"cocotb wrote no results.xml; see {run_dir / 'sim.log'}")
    return results, cocotb_failed, problems, seconds


def run(built: Build, testbench: ModuleType, vectors: dict, run_dir: Path) -> RunResult:
    """Run ``testbench`` (the kind's testbench module) on ``built`` with ``vectors``; files land in ``run_dir``.

    The caller names the testbench (``npuforge.registry.sim_testbench``): the
    simulation layer does not know which kinds exist.
    """
    module = testbench
    results, cocotb_failed, problems, seconds = _run_cocotb(built, module.__name__, vectors, run_dir)
    mismatch = module.first_mismatch(vectors, results) if results else None
    problems += results.get("protocol_errors", [])
    return RunResult(run_dir=Path(run_dir).resolve(), vectors=vectors, results=results, mismatch=mismatch,
                     cocotb_failed=cocotb_failed, seconds=seconds, problems=problems)


def _design_check(built: Build, test_module: str, vectors: dict, run_dir: Path, what: str) -> list[str]:
    """The ``problems`` a design-wide cocotb check reports (empty when it passed)."""
    results, cocotb_failed, problems, _ = _run_cocotb(built, test_module, vectors, run_dir)
    problems += results.get("problems", [])
    if cocotb_failed and not problems:
        problems.append(f"the {what} test failed; see {Path(run_dir) / 'sim.log'}")
    return problems


def check_fault_sites(built: Build, run_dir: Path) -> list[str]:
    """Problems found resolving and writing every manifest fault site (empty when all are reachable)."""
    return _design_check(built, "sim.tb.sites", {}, run_dir, "fault-site")


def check_reset_handshakes(built: Build, run_dir: Path, seed: int = 1) -> list[str]:
    """Stream handshakes in reset cycles, and streams stuck after reset (empty when none; ``sim/tb/reset.py``)."""
    return _design_check(built, "sim.tb.reset", {"seed": seed}, run_dir, "reset")


@dataclass
class Simulation:
    build: Build
    run: RunResult


def simulate(cfg: KindConfig, testbench: ModuleType, *, seed: int = 1, n_random: int = 20, valid_prob: float = 1.0,
             ready_prob: float = 1.0, waves: bool = False, build_root: Path = DEFAULT_BUILD_ROOT,
             run_dir: Path | None = None, on_step=lambda message: None, k: int | None = None) -> Simulation:
    """Build (or reuse) the model of ``cfg``, make vectors with ``testbench``, run them.

    ``on_step(message)`` is called before each step (for progress display). ``k``, when
    given, goes to ``make_vectors`` (a testbench whose jobs have a reduction length: every
    job that long, no edge cases).
    """
    on_step(f"building {cfg.name} (elaboration, then Verilator if the Verilog changed)")
    built = build(cfg, build_root=build_root, waves=waves)
    on_step(f"simulating {cfg.name}")
    shape = {} if k is None else {"k": k}
    vectors = testbench.make_vectors(cfg, seed=seed, n_random=n_random,
                                     valid_prob=valid_prob, ready_prob=ready_prob, **shape)
    if run_dir is None:
        run_dir = built.root / "runs" / f"seed{seed}-n{n_random}{f'-k{k}' if k else ''}{'-waves' if waves else ''}"
    return Simulation(build=built, run=run(built, testbench, vectors, run_dir))
