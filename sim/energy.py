"""Energy proxy of a TPE design: toggle activity on a GEMM workload, weighted by gate counts.

A proxy for comparing designs with each other, reported only as ratios; it is no power
estimate. Dynamic power is roughly activity x switched capacitance; here:

* **activity** -- Verilator's toggle coverage (``--coverage-toggle``) counts, for every
  bit of every signal of every module instance, its 0->1 and 1->0 changes while the
  design runs a GEMM workload (no VCD, no Python per cycle: the fault harness's C++
  loop replays the operand beats at full rate, ``sim/energy_main.cpp``). The clock and
  reset nets are left out (the clock toggles every cycle whatever the data).
* **capacitance** -- the gate count of each instance from Yosys' generic synthesis
  without flattening (``fpga.modules.module_cells``, which the caller passes in: ``sim``
  does not import ``fpga``; Amaranth emits one module per instance).

``proxy = sum over instances m of cells_m x (toggles of m's signal bits / m's signal
bits)``, i.e. each instance's gates switch at the mean rate of its nets; divided by the
workload's useful multiply-accumulates it is the proxy **per operation**. Limits: nets
inside an instance that Verilator does not keep as signals (it keeps the named ones)
are only seen through the signals; an alias of a net is counted as a net of its own;
all gates weigh the same (a flip-flop as much as an inverter); glitches are not
counted (Verilator evaluates each cycle once).

A second measure for the same runs, :func:`gate_proxy`: the toggle model built on the
design's flat gate netlist (:func:`prepare_netlist`; the netlist and each net's load come
from ``fpga.netlist.gate_netlist``), every net's toggles times its load, each net counted
once, so a design's energy does not depend on how its RTL names its nets.

Operands (:func:`operands`): the paper's Gaussian INT8 data, ``round(N(0, sigma))``
clipped to the operand range (unsigned: the magnitude), or uniform over the whole range.
Fields an engine ignores are held at zero, as a real host would leave an idle bus.
"""

import hashlib
import json
import random
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gen.emit import generate
from gen.errors import ToolError
from gen.lint import SUPPRESSED_WARNINGS
from gen.locking import locked
from gen.manifest import verilog_filename
from gen.toolchain import require_build_tools, verilator_env, verilator_version

from sim import verilator_runtime
from sim.fault.harness import HARNESS_SOURCE, PORT_WORDS, design_header
from sim.fault.workload import Workload, spec_text
from sim.golden import tpe as golden
from sim.golden.intmath import operand_range
from sim.tb.payload import PayloadCodec
from sim.tb.tpe_beats import pack_jobs, result_beats

MAIN_SOURCE = Path(__file__).with_name("energy_main.cpp")
#: The paper's Gaussian widths (INT8) and the uniform reference, in the order reported.
DISTRIBUTIONS = ("sigma10", "sigma30", "sigma50", "uniform")
#: C++ optimisation of the model: coverage multiplies the generated code and the runs are
#: short, so compile time matters more than simulation speed.
CXX_OPT = "-O0"


def sigma_of(distribution: str) -> float | None:
    """The Gaussian sigma named by ``sigma<N>``, None for ``uniform``; ValueError otherwise."""
    if distribution == "uniform":
        return None
    if distribution.startswith("sigma"):
        try:
            sigma = float(distribution[5:])
        except ValueError:
            sigma = 0.0
        if sigma > 0:
            return sigma
    raise ValueError(f"distribution: got {distribution!r}; allowed: 'uniform' or 'sigma<N>' with N > 0")


def operands(rng: np.random.Generator, shape, distribution: str, width: int, is_signed: bool) -> np.ndarray:
    """Integer operands of ``shape``: Gaussian ``round(N(0, sigma))`` clipped to the range
    (unsigned: its magnitude), or uniform over the whole range."""
    lo, hi = operand_range(width, is_signed)
    sigma = sigma_of(distribution)
    if sigma is None:
        return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
    values = np.rint(rng.normal(0.0, sigma, size=shape)).astype(np.int64)
    if not is_signed:
        values = np.abs(values)
    return np.clip(values, lo, hi)


def tile_gemm(cfg, a: np.ndarray, b: np.ndarray) -> list[dict]:
    """The jobs ``{"a", "b", "c"}`` that compute ``C = A @ B`` on ``cfg``'s engine.

    ``A`` has a multiple of the engine's job rows, ``B`` a multiple of its ``cols``
    columns; ``systolic_ws`` takes ``K`` in slices of at most ``rows`` (the partial
    ``C`` of each slice leaves the engine; adding them is not part of the workload),
    the others the whole ``K`` per job.
    """
    model = golden.for_config(cfg)
    rows = cfg.rows if cfg.arch == "systolic_ws" else cfg.c_rows
    k = a.shape[1]
    slices = [(s, min(s + cfg.rows, k)) for s in range(0, k, cfg.rows)] if cfg.arch == "systolic_ws" else [(0, k)]
    jobs = []
    for r in range(0, a.shape[0], rows):
        for c in range(0, b.shape[1], cfg.cols):
            for k0, k1 in slices:
                pa, pb = a[r:r + rows, k0:k1], b[k0:k1, c:c + cfg.cols]
                jobs.append({"a": pa.tolist(), "b": pb.tolist(), "c": model(pa, pb).tolist()})
    return jobs


def gemm_workload(cfg, distribution: str, *, m: int, k: int, n: int, repeats: int = 1, seed: int = 1):
    """``repeats`` GEMMs ``(m x k) @ (k x n)`` of ``distribution`` operands, tiled onto ``cfg``'s engine.

    Returns ``(jobs, useful_macs)``; the same ``seed`` gives the same operands.
    """
    rng = np.random.default_rng(seed)
    jobs = []
    for _ in range(repeats):
        a = operands(rng, (m, k), distribution, cfg.a_format.width, cfg.a_format.signed)
        b = operands(rng, (k, n), distribution, cfg.b_format.width, cfg.b_format.signed)
        jobs += tile_gemm(cfg, a, b)
    return jobs, repeats * m * k * n


class _ZeroPadding(random.Random):
    """``pack_jobs`` fills fields the engine ignores with ``getrandbits``: zeros here (an idle bus)."""

    def getrandbits(self, k: int) -> int:
        return 0


def workload(cfg, manifest: dict, jobs: list[dict], name: str) -> Workload:
    """The operand beats of ``jobs`` and the golden result beats, as the fault harness replays them."""
    by_name = {i["name"]: i for i in manifest["interfaces"]}
    operands_if, results_if = by_name["operands"], by_name["results"]
    beats, _ = pack_jobs(manifest["parameters"]["job"], jobs, width=cfg.a_format.width, b_width=cfg.b_format.width,
                         rng=_ZeroPadding())
    pack_in, pack_out = PayloadCodec(operands_if["payload"]), PayloadCodec(results_if["payload"])
    expected = [pack_out.pack(beat) for job in jobs
                for beat in result_beats(manifest["parameters"]["job"], job["c"])]
    return Workload(name=name, inputs={"operands": tuple(pack_in.pack(beat) for beat in beats)},
                    outputs={"results": tuple(expected)},
                    layouts={"operands": operands_if["payload"], "results": results_if["payload"]},
                    element_fields={"results": ("c",)})


# ---------------------------------------------------------------- the toggle model

#: The design-independent objects the toggle model links (compiled once per flag set, sim/verilator_runtime.py).
RUNTIME_OBJECTS = ("verilated", "verilated_threads", "verilated_cov")


def _verilator_args(top: str) -> list[str]:
    return ["--cc", "--exe", "--build", "-j", "2", "--coverage-toggle", "--prefix", "Vtop", "--top-module", top,
            "-Wno-fatal", *[f"-Wno-{name}" for name in sorted(SUPPRESSED_WARNINGS)],
            "-CFLAGS", "-std=c++17", "--Mdir", ".", "-o", "energy"]


def toggle_model(verilog: Path, manifest: dict, build_root: Path) -> Path:
    """Compile (or reuse) the toggle-counting model of ``verilog``; returns the executable.

    Cached under ``build_root/energy-harness/<top>-<key>/`` by the Verilog, both C++
    sources, the generated ``design.h``, the Verilator version and the flags; a
    ``stamp`` written last marks a finished build; parallel builds wait on a lock.
    """
    text = Path(verilog).read_text()
    header = design_header(manifest)
    facts = {"verilog": text, "harness": HARNESS_SOURCE.read_text(), "port_words": PORT_WORDS.read_text(),
             "main": MAIN_SOURCE.read_text(),
             "design_h": header, "verilator": verilator_version(), "args": _verilator_args(manifest["top"]),
             "opt": CXX_OPT}
    key = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
    home = Path(build_root) / "energy-harness" / f"{manifest['top']}-{key[:16]}"
    binary, stamp = home / "energy", home / "stamp"
    with locked(home.with_name(home.name + ".lock")):
        if stamp.exists() and binary.exists():
            return binary
        require_build_tools()
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        (home / "design.v").write_text(text)
        (home / "design.h").write_text(header)
        shutil.copyfile(HARNESS_SOURCE, home / "harness.cpp")
        shutil.copyfile(PORT_WORDS, home / PORT_WORDS.name)
        shutil.copyfile(MAIN_SOURCE, home / "energy_main.cpp")
        env = verilator_env()
        env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} OPT_FAST={CXX_OPT} OPT_SLOW={CXX_OPT} OPT_GLOBAL={CXX_OPT}"
        log = home / "build.log"
        shared = verilator_runtime.shared_dir(build_root, "energy", {"opt": CXX_OPT, "args": _verilator_args("")})
        make_args = verilator_runtime.seed(shared, home, RUNTIME_OBJECTS)
        command = ["verilator", *_verilator_args(manifest["top"]), *[word for arg in make_args for word in ("-MAKEFLAGS", arg)],
                   "design.v", "energy_main.cpp"]
        with open(log, "w") as out:
            done = subprocess.run(command, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0 or not binary.exists():
            raise ToolError(f"the toggle model of {manifest['top']} did not build; see {log}")
        if not make_args:
            verilator_runtime.keep(shared, home, RUNTIME_OBJECTS)
        for scrap in [*home.glob("*.o"), *home.glob("*.a")]:  # hundreds of MB for a 16x16 array
            scrap.unlink()
        stamp.write_text(key + "\n")
    return binary


# ---------------------------------------------------------------- coverage.dat

def parse_coverage(text: str, skip: set[str] = frozenset()) -> dict[str, dict[str, int]]:
    """Toggles per signal bit, grouped by instance: ``{"top.core.pe_0_1": {"acc[3]": 7, ...}}``.

    Reads Verilator's ``coverage.dat`` (``C '<key/value pairs>' count`` lines, keys and
    values separated by ``\\x01`` and ``\\x02``); only ``toggle`` points count. Verilator
    5.4x records ``sig[bit]:0->1`` and ``sig[bit]:1->0`` separately: they are summed per
    bit. The instance path drops Verilator's leading ``TOP.``; signal names stay as
    Verilator mangles them. Signals whose base name is in ``skip`` (the clock, the
    reset) are left out.
    """
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for line in text.splitlines():
        if not line.startswith("C '"):
            continue
        quoted, _, count = line[3:].rpartition("' ")
        fields = dict(item.split("\x02", 1) for item in quoted.split("\x01") if "\x02" in item)
        if fields.get("t") != "toggle" or "o" not in fields or "h" not in fields:
            continue
        bit = fields["o"].split(":", 1)[0] if fields["o"].endswith(("0->1", "1->0")) else fields["o"]
        if bit.split("[", 1)[0] in skip:
            continue
        instance = fields["h"].removeprefix("TOP.")
        signals = out[instance]
        signals[bit] = signals.get(bit, 0) + int(count)
    return dict(out)


# ---------------------------------------------------------------- measuring

@dataclass
class Activity:
    """Toggle counts of one workload run. ``toggles[instance][signal_bit]`` summed over both directions."""

    toggles: dict[str, dict[str, int]]
    cycles: int       # cycle 0 to the last result beat
    macs: int         # useful multiply-accumulates of the workload
    name: str = ""

    def instance_totals(self) -> dict[str, tuple[int, int]]:
        """``{instance: (toggles, signal bits)}``."""
        return {inst: (sum(bits.values()), len(bits)) for inst, bits in self.toggles.items()}

    def total(self) -> int:
        return sum(sum(bits.values()) for bits in self.toggles.values())


@dataclass
class Design:
    """A config made ready for energy runs: its Verilog, manifest and compiled toggle model."""

    config: object
    verilog: Path
    manifest: dict
    binary: Path
    home: Path
    runs: dict = field(default_factory=dict)


def prepare(cfg, *, build_root: Path, generated=None) -> Design:
    """Build the toggle model of ``cfg``; runs go to ``build_root/<build name>/energy/``.

    ``generated`` (``gen.emit.generate``'s result for ``cfg``) saves elaborating the
    config again (minutes for a 16x16 array); without it ``cfg`` is generated into
    ``energy/rtl``.
    """
    home = Path(build_root) / cfg.build_name() / "energy"
    if generated is None:
        generated = generate(cfg, home / "rtl")
    verilog = generated.out_dir / verilog_filename(cfg.name)
    return Design(config=cfg, verilog=verilog, manifest=generated.manifest,
                  binary=toggle_model(verilog, generated.manifest, Path(build_root)), home=home)


def prepare_netlist(cfg, netlist: Path, manifest: dict, *, build_root: Path) -> Design:
    """The toggle model of ``cfg``'s flat gate netlist (``fpga.netlist.gate_netlist``, which the
    caller runs: ``sim`` does not import ``fpga``); ``manifest`` is the RTL's, whose ports the
    netlist keeps. Runs go to ``build_root/<build name>/energy-gates/``."""
    return Design(config=cfg, verilog=Path(netlist), manifest=manifest,
                  binary=toggle_model(Path(netlist), manifest, Path(build_root)),
                  home=Path(build_root) / cfg.build_name() / "energy-gates")


def measure(design: Design, jobs: list[dict], macs: int, name: str) -> Activity:
    """Run ``jobs`` back to back at full rate on ``design``; the toggles of every signal bit.

    Raises ``ToolError`` when the run does not complete or its results differ from the
    golden model (so a proxy is never computed on a broken run).
    """
    manifest = design.manifest
    run_dir = design.home / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    spec, coverage = run_dir / "spec.txt", run_dir / "coverage.dat"
    work = workload(design.config, manifest, jobs, name)
    spec.write_text(spec_text(manifest, work))
    coverage.unlink(missing_ok=True)
    beats = len(work.inputs["operands"]) + len(work.outputs["results"])
    limit = 100 * beats + 10_000
    done = subprocess.run([str(design.binary), str(spec), str(limit), str(coverage)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"toggle model of {manifest['top']} failed: {done.stderr.strip()}")
    facts = dict(line.split() for line in done.stdout.splitlines() if line.strip())
    if facts.get("complete") != "1" or facts.get("differ") != "0":
        raise ToolError(f"{manifest['top']}: the run {name} did not reproduce the golden results "
                        f"({done.stdout.strip()!r}); see {spec}")
    skip = {manifest["clock"]["port"], manifest["reset"]["port"]}
    return Activity(toggles=parse_coverage(coverage.read_text(), skip), cycles=int(facts["cycles"]), macs=macs,
                    name=name)


def energy_proxy(activity: Activity, modules: dict[str, dict], weight: str = "cells") -> dict:
    """Weight ``activity`` by the per-instance gate counts ``modules`` (``fpga.modules``' result).

    Returns ``per_op`` (the proxy per useful MAC), ``total``, ``toggle_rate`` (toggles
    per signal bit per cycle over the whole design), ``per_instance`` (name -> weighted
    activity) and ``unmatched`` (instances with toggles but no synthesised module, and
    modules with gates but no toggle data: both should be empty).
    """
    per_instance = {}
    bits_total = toggles_total = 0
    for instance, (toggles, bits) in activity.instance_totals().items():
        toggles_total += toggles
        bits_total += bits
        gates = modules.get(instance, {}).get(weight)
        if gates is not None and bits:
            per_instance[instance] = gates * toggles / bits
    unmatched = sorted(set(activity.toggles) ^ set(modules))
    unmatched = [name for name in unmatched
                 if name in activity.toggles or modules[name].get(weight, 0) > 0]
    total = sum(per_instance.values())
    return {
        "per_op": total / activity.macs if activity.macs else float("nan"),
        "total": total,
        "toggle_rate": toggles_total / (bits_total * activity.cycles) if bits_total and activity.cycles else 0.0,
        "cycles": activity.cycles,
        "macs": activity.macs,
        "per_instance": per_instance,
        "unmatched": unmatched,
    }



_ESCAPED = re.compile(r"__0([0-9A-Fa-f]{2})")
#: ``write_verilog`` gives a flip-flop driving part of a wire a reg of its own, ``<wire>_reg``:
#: another name of the wire's bit.
_FLOP_REG = re.compile(r"^(\w+)_reg(\[\d+\])?$")


def gate_proxy(activity: Activity, nets: dict) -> dict:
    """Gate-level switching of a run on a flat gate netlist: each net's toggles times its load.

    ``nets`` is ``fpga.netlist.net_loads``' result (net names -> net, net -> input pins
    driven). Every net of the netlist is a gate output or a port and is counted once,
    whichever of its names Verilator reported, so nothing is hidden inside a wide
    operator and no alias counts twice. Returns ``per_op`` (load-weighted toggles per
    useful MAC), ``toggles_per_op`` (unweighted), ``toggle_rate`` (per net per cycle),
    ``nets`` and ``unmatched`` (names with toggles that name no net: should be empty;
    the clock and reset, which ``measure`` leaves out, are not in it, nor the names of
    constant bits, which the model sets once at time 0).
    """
    bits, loads, constants = nets["bits"], nets["loads"], set(nets.get("constants", ()))
    toggles: dict[int, int] = {}
    unmatched = []
    for signals in activity.toggles.values():
        for raw, count in signals.items():
            name = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), raw)
            flop = _FLOP_REG.match(name)
            net = bits.get(name, bits.get(f"{flop[1]}{flop[2] or ''}") if flop else None)
            if net is None:
                if count and name not in constants:
                    unmatched.append(name)
                continue
            toggles[net] = max(count, toggles.get(net, 0))
    weighted = sum(count * loads[str(net)] for net, count in toggles.items())
    plain = sum(toggles.values())
    macs, cycles = activity.macs, activity.cycles
    return {
        "per_op": weighted / macs if macs else float("nan"),
        "toggles_per_op": plain / macs if macs else float("nan"),
        "toggle_rate": plain / (len(loads) * cycles) if loads and cycles else 0.0,
        "nets": len(loads),
        "unmatched": sorted(unmatched),
    }
