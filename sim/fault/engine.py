"""The injection engine: many faults per simulator process, no Python on the per-cycle path.

:meth:`Engine.prepare` compiles the design with the C++ harness of
``sim/fault/harness`` (once per Verilog), writes the workload as a spec file
and runs the fault-free reference, which must reproduce the workload's
expected beats (the golden model's). :meth:`Engine.run` then starts one
harness process for a whole batch of faults: the harness keeps the fault-free
state of every cycle of the window (a byte copy of the Verilated model), so an
injection at cycle ``c`` starts from the state at ``c`` instead of from reset,
and it stops a run as soon as the faulty model's whole state equals the
fault-free state of the same cycle (the fault is masked from there on). Past
its last expected output beat a run goes on (its *tail*) until it is quiescent,
rejoins the fault-free run or times out, so that a beat sent after the expected
ones makes it an ``sdc`` (``InjectionResult.extra_beats``). The outcome is the
same with both shortcuts off (``checkpoints=False, early_stop=False``: every tail
runs to the timeout), which the tests check.

Outcome rules (``sim.fault.model.Outcome``): a detecting alarm makes the
injection ``detected`` whatever the outputs; otherwise no completion within
``timeout_factor`` x the reference cycles is a ``hang``; otherwise different
outputs (values or count) are ``sdc``; otherwise a correcting alarm makes it
``corrected``, and none makes it ``masked``.
"""

import dataclasses
import hashlib
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from gen.errors import ToolError
from gen.locking import locked

from .harness import build_harness
from .model import Fault, FaultModel, InjectionResult, Outcome
from .workload import Workload, spec_text, write_file

_STATUS_COMPLETE, _STATUS_DIFFERS, _STATUS_TIMEOUT = 0, 1, 2


@dataclass(frozen=True)
class Reference:
    """The fault-free run: ``cycles`` from cycle 0 to the last output beat, the beats per output interface."""

    cycles: int
    outputs: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class RunStats:
    """What the last :meth:`Engine.run` simulated (for benches): cycles stepped, early stops."""

    injections: int
    stepped_cycles: int
    early_stops: int


def _write_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it is already there (paths carry the content hash)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, text)


@dataclass
class Engine:
    """A compiled harness, the workload's spec file and the fault-free reference; picklable."""

    binary: Path
    spec_file: Path
    manifest: dict
    workload: Workload
    reference: Reference
    checkpoints: bool = True
    early_stop: bool = True
    last_stats: RunStats | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ setup

    @classmethod
    def prepare(cls, build_dir: Path, verilog: Path, manifest: dict, workload: Workload, *,
                build_root: Path) -> "Engine":
        """Compile the harness of ``verilog`` (cached under ``build_root``), write the spec into
        ``build_dir/fault/`` and run the fault-free reference; raise if it differs from the workload."""
        try:
            workload.check(manifest)
        except ValueError as error:
            raise ToolError(str(error)) from None
        binary = build_harness(Path(verilog), manifest, Path(build_root)).resolve()
        text = spec_text(manifest, workload)
        spec = Path(build_dir).resolve() / "fault" / f"workload-{hashlib.sha256(text.encode()).hexdigest()[:16]}.spec"
        with locked(spec.with_suffix(".lock")):
            _write_once(spec, text)
        reference = _reference(binary, spec, manifest, workload)
        return cls(binary=binary, spec_file=spec, manifest=manifest, workload=workload, reference=reference)

    @property
    def window(self) -> int:
        """Injection cycles are ``0 .. window - 1``: the fault-free run's cycles."""
        return self.reference.cycles

    def spec(self) -> "Engine":
        """What a process pool sends to its workers: this engine without run statistics (picklable)."""
        return dataclasses.replace(self, last_stats=None)

    # ------------------------------------------------------------------ injections

    def site_table(self) -> dict[str, tuple[int, dict]]:
        """Manifest fault-site path -> (index in the harness, site)."""
        return {site["path"]: (index, site) for index, site in enumerate(self.manifest["fault_sites"])}

    def _fault_line(self, fault: Fault, sites: dict) -> str:
        where = f"fault {fault.index}"
        if fault.site not in sites:
            raise ValueError(f"{where}: {fault.site!r} is not a fault site of {self.manifest['top']}")
        index, site = sites[fault.site]
        model = FaultModel(fault.model)
        if model is FaultModel.MEM_SEU:
            if site["kind"] != "memory":
                raise ValueError(f"{where}: mem_seu needs a memory site, {fault.site} is a {site['kind']} "
                                 f"({self._memories_note()})")
            if fault.word is None or not 0 <= fault.word < site["depth"]:
                raise ValueError(f"{where}: word {fault.word!r} of {fault.site} is not in 0..{site['depth'] - 1}")
        elif site["kind"] != "register":
            raise ValueError(f"{where}: {model.value} needs a register site, {fault.site} is a memory")
        elif fault.word is not None:
            raise ValueError(f"{where}: a register fault has no word, got {fault.word}")
        width = fault.width if model is FaultModel.MBU else 1
        if model is not FaultModel.MBU and fault.width != 1:
            raise ValueError(f"{where}: {model.value} flips one bit, got width {fault.width}")
        if width < 1:
            raise ValueError(f"{where}: mbu width {width} is not >= 1")
        if not 0 <= fault.bit < site["width"]:
            raise ValueError(f"{where}: bit {fault.bit} of {fault.site} is not in 0..{site['width'] - 1}")
        if not 0 <= fault.cycle < self.window:
            raise ValueError(f"{where}: cycle {fault.cycle} is outside the window 0..{self.window - 1}")
        word = fault.word if fault.word is not None else 0
        return f"{index} {fault.bit} {width} {word} {fault.cycle}"

    def _memories_note(self) -> str:
        memories = [s["path"] for s in self.manifest["fault_sites"] if s["kind"] == "memory"]
        return f"memories: {', '.join(memories)}" if memories else f"{self.manifest['top']} has no memories"

    def timeout_cycles(self, timeout_factor: float) -> int:
        if not timeout_factor > 0:
            raise ValueError(f"timeout_factor {timeout_factor!r} is not > 0")
        return max(1, math.ceil(timeout_factor * self.window))

    def run(self, faults: Sequence[Fault], *, timeout_factor: float) -> list[InjectionResult]:
        """Inject each fault in its own run (one harness process for the batch); results in input order."""
        faults = list(faults)
        if not faults:
            self.last_stats = RunStats(0, 0, 0)
            return []
        sites = self.site_table()
        stdin = "\n".join(self._fault_line(f, sites) for f in faults) + "\n"
        command = [str(self.binary), "run", str(self.spec_file), str(self.window),
                   str(self.timeout_cycles(timeout_factor))]
        if not self.checkpoints:
            command.append("--no-checkpoints")
        if not self.early_stop:
            command.append("--no-early-stop")
        done = subprocess.run(command, input=stdin, capture_output=True, text=True)
        if done.returncode != 0:
            raise ToolError(f"fault harness of {self.manifest['top']} failed: "
                            f"{done.stderr.strip() or f'exit code {done.returncode}'}")
        lines = done.stdout.splitlines()
        if len(lines) != len(faults):
            raise ToolError(f"fault harness returned {len(lines)} results for {len(faults)} faults")
        alarms = self.manifest.get("alarms", [])
        verdicts = {}  # (status, alarm mask) -> (outcome, alarm names): few distinct pairs per batch
        results, stepped, early = [], 0, 0
        for fault, line in zip(faults, lines):
            status, cycles, differing, max_abs, mask, steps, stopped, extra = line.split()
            stepped += int(steps)
            early += int(stopped)
            verdict = verdicts.get((status, mask))
            if verdict is None:
                raised = [a for n, a in enumerate(alarms) if int(mask, 16) >> n & 1]
                verdict = verdicts[status, mask] = (_outcome(int(status), raised), tuple(a["port"] for a in raised))
            results.append(InjectionResult(fault=fault, outcome=verdict[0], differing=int(differing),
                                           max_abs_diff=int(max_abs), cycles=int(cycles), alarms=verdict[1],
                                           extra_beats=int(extra)))
        self.last_stats = RunStats(len(faults), stepped, early)
        return results

    def free_run(self, repeat: int) -> dict[str, float]:
        """Run the workload fault-free ``repeat`` times from reset in the harness.

        Returns ``cycles`` (workload cycles simulated), ``seconds`` (wall clock),
        ``cpu_seconds`` (the process's CPU time) and ``state_bytes`` (size of the
        model state one checkpoint copies): the model's own speed with the
        harness's stream drivers and no injection.
        """
        done = subprocess.run([str(self.binary), "freerun", str(self.spec_file), str(repeat)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ToolError(f"fault harness of {self.manifest['top']} failed: {done.stderr.strip()}")
        facts = dict(line.split() for line in done.stdout.splitlines())
        return {"cycles": int(facts["cycles"]), "seconds": float(facts["seconds"]),
                "cpu_seconds": float(facts["cpu_seconds"]), "state_bytes": int(facts["state_bytes"])}

    def replay(self, fault: Fault, *, timeout_factor: float) -> "Replay":
        """Run one fault from reset, without checkpoints or early stop (the tail ends when the run is
        quiescent), and return the beats it produced (for diagnosis)."""
        line = self._fault_line(fault, self.site_table())
        limit = self.timeout_cycles(timeout_factor)
        trace = _trace(self.binary, self.spec_file, self.manifest, limit, line)
        alarms = tuple(a["port"] for n, a in enumerate(self.manifest.get("alarms", [])) if trace.alarms >> n & 1)
        return Replay(complete=trace.complete, cycles=trace.run.cycles if trace.complete else limit,
                      outputs=trace.run.outputs, alarms=alarms, quiet_from=trace.quiet_from)

    def settle(self, timeout_factor: float) -> int | None:
        """The cycle from whose start the fault-free run is quiescent (its tail ends there), or ``None``
        if it is not by the timeout of ``timeout_factor``."""
        return _trace(self.binary, self.spec_file, self.manifest, self.timeout_cycles(timeout_factor)).quiet_from


@dataclass(frozen=True)
class Replay:
    """One injection traced: the output beats it produced (those after the expected ones too), whether
    all expected ones arrived, its cycles, alarms, and the cycle from which it was quiescent (``None``:
    not by the timeout)."""

    complete: bool
    cycles: int
    outputs: dict[str, tuple[int, ...]]
    alarms: tuple[str, ...]
    quiet_from: int | None = None


@dataclass(frozen=True)
class _Trace:
    complete: bool
    run: Reference
    alarms: int
    quiet_from: int | None


def _outcome(status: int, raised: list[dict]) -> Outcome:
    if any(not a.get("corrects", False) for a in raised):
        return Outcome.DETECTED
    if status == _STATUS_TIMEOUT:
        return Outcome.HANG
    if status == _STATUS_DIFFERS:
        return Outcome.SDC
    return Outcome.CORRECTED if raised else Outcome.MASKED


def _trace(binary: Path, spec: Path, manifest: dict, limit: int, fault: str = "") -> _Trace:
    """One run of the harness from reset (fault-free, or with the fault line ``fault``) for at most ``limit``
    cycles, through its tail: whether the expected beats all arrived, the beats, the alarm mask, and the
    cycle from which the run was quiescent."""
    command = [str(binary), "reference", str(spec), str(limit), *fault.split()]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ToolError(f"fault harness of {manifest['top']} failed: {done.stderr.strip()}")
    lines = iter(done.stdout.splitlines())
    facts = dict(next(lines).split() for _ in range(4))
    outputs = {}
    for name in (i["name"] for i in manifest["interfaces"] if i["role"] == "source"):
        _, _, count = next(lines).split()
        outputs[name] = tuple(int(next(lines), 16) for _ in range(int(count)))
    quiet = int(facts["quiet"])
    return _Trace(complete=facts["complete"] == "1", run=Reference(cycles=int(facts["cycles"]), outputs=outputs),
                  alarms=int(facts["alarms"], 16), quiet_from=quiet if quiet >= 0 else None)


def _reference(binary: Path, spec: Path, manifest: dict, workload: Workload) -> Reference:
    """Run the workload fault-free; raise ``ToolError`` unless it yields exactly the expected beats."""
    expected_cycles = sum(len(b) for b in workload.inputs.values()) + sum(len(b) for b in workload.outputs.values())
    limit = 100 * expected_cycles + 10_000  # generous: a design that needs more has hung
    trace = _trace(binary, spec, manifest, limit)
    complete, reference, alarms = trace.complete, trace.run, trace.alarms
    top = manifest["top"]
    if not complete:
        raise ToolError(f"{top}: the fault-free run of {workload.name} did not complete within {limit} cycles")
    if alarms:
        raise ToolError(f"{top}: an alarm rose in the fault-free run of {workload.name}")
    for name, got in reference.outputs.items():
        want = workload.outputs[name]
        if got != want:
            first = next((n for n, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
            raise ToolError(f"{top}: the fault-free run of {workload.name} differs from the golden model on "
                            f"{name} beat {first} ({len(got)} beats, expected {len(want)})")
    return reference
