"""Run a compiled program on the accelerator in the fast harness and hold every operator against the golden.

``run_program`` writes the harness script (docs in ``sim/fault/harness/accel.cpp``): load the image,
then per operator (or once for the whole list) set ``DESC_BASE``, start, run to ``irq``, read
``STATUS`` and the counters; at the end dump the image's span. ``compare`` reads every region
the program expects from the dump and reports, per operator, PASS/FAIL with the first wrong
element.
"""

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gen.errors import ToolError
from hw.vit import descriptors

from .compiler import Program
from .registers import Registers


@dataclass(frozen=True)
class MemoryTiming:
    """The DRAM model behind every port (``axi_memory.h``)."""

    read_latency: int = 24
    write_latency: int = 12
    bytes_per_cycle: float = 0.0  # per port and direction; 0: a full beat every cycle
    stall: float = 0.0  # probability that a channel stalls in a cycle
    seed: int = 1

    def line(self, max_reads: int, max_writes: int) -> str:
        return (f"timing {self.read_latency} {self.write_latency} {self.bytes_per_cycle} {self.stall} {self.seed} "
                f"{max_reads} {max_writes}")


@dataclass(frozen=True)
class PortBandwidth:
    """One port during one run, as the DRAM model saw it: bytes read and written (strobed) and the most bytes
    of any ``window`` consecutive cycles."""

    read: int
    written: int
    peak_read: int
    peak_written: int
    window: int


@dataclass
class OpReport:
    name: str
    opcode: str
    cycles: int
    status: int
    code: int
    counters: dict
    macs: int
    ok: bool | None = None
    mismatch: str = ""
    bandwidth: list = field(default_factory=list)  # PortBandwidth per port
    group: str = ""  # the operator's attention head (Op.group)


@dataclass
class RunResult:
    ops: list
    total_cycles: int
    violations: list
    port_bytes: list
    seconds: float
    memory: bytes
    base: int
    outputs: dict = field(default_factory=dict)
    log: str = ""

    @property
    def cycles(self) -> int:
        return sum(op.cycles for op in self.ops)


def _status_fields(regs: Registers, value: int) -> dict:
    return {name: regs.extract(value, "STATUS", name) for name in ("busy", "done", "error", "code")}


def run_program(harness: Path, manifest: dict, program: Program, *, timing: MemoryTiming = MemoryTiming(),
                per_op: bool = True, timeout: int = 50_000_000, work_dir: Path | None = None,
                mid_run_reset: int | None = None) -> RunResult:
    """Run ``program`` in the harness binary ``harness`` of the design of ``manifest``."""
    regs = Registers(manifest)
    params = manifest["parameters"]
    owned = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="accel-run-")) if owned else Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    image_path, dump_path, spec_path = work / "image.bin", work / "dump.bin", work / "run.spec"
    image_path.write_bytes(program.image.image())
    base, end = program.image.base, program.image.end
    lines = ["npuforge-accel-spec 1", f"memory 0 {end + 4096}",
             timing.line(params["max_reads"], params["max_writes"]), f"timeout {timeout}",
             f"load {base} {image_path}"]
    counters = regs.counters()
    runs = []
    if per_op:
        starts = [(op, program.op_lists[i]) for i, op in enumerate(program.ops)]
    else:
        starts = [(None, program.desc.addr)]
    for op, addr in starts:
        lines += [f"write {regs.offset('DESC_BASE')} {addr & 0xFFFFFFFF}",
                  f"write {regs.offset('DESC_BASE') + 4} {addr >> 32}",
                  f"write {regs.offset('IRQ_ENABLE')} 3", f"write {regs.offset('IRQ_STATUS')} 3",
                  f"write {regs.offset('CTRL')} 1"]
        if mid_run_reset is not None:
            lines += [f"cycles {mid_run_reset}", "reset 4"]
            break
        lines += ["run", "bandwidth", f"read {regs.offset('STATUS')}"]
        for name in counters:
            lines += [f"read {regs.offset(name)}", f"read {regs.offset(name) + 4}"]
        runs.append(op)
    lines.append(f"dump {base} {end - base} {dump_path}")
    spec_path.write_text("\n".join(lines) + "\n")
    done = subprocess.run([str(harness), str(spec_path)], capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise ToolError(f"accel harness: {done.stderr.strip() or 'exit code ' + str(done.returncode)} "
                        f"(script {spec_path})")
    reports, violations, port_bytes = [], [], []
    total, seconds = 0, 0.0
    csr_values: list[int] = []
    run_cycles: list[tuple[int, int]] = []
    bandwidth: list[list[PortBandwidth]] = []
    for line in done.stdout.splitlines():
        word, *rest = line.split(maxsplit=1)
        if word == "csr":
            csr_values.append(int(rest[0].split()[1]))
        elif word == "run":
            cycles, irq = rest[0].split()
            run_cycles.append((int(cycles), int(irq)))
        elif word == "bandwidth":
            window, *numbers = map(int, rest[0].split())
            bandwidth.append([PortBandwidth(*numbers[i:i + 4], window) for i in range(0, len(numbers), 4)])
        elif word == "violation":
            violations.append(rest[0])
        elif word == "port":
            _, rd, wr = rest[0].split()
            port_bytes.append((int(rd), int(wr)))
        elif word == "total_cycles":
            total = int(rest[0])
        elif word == "seconds":
            seconds = float(rest[0])
    per_run = 1 + 2 * len(counters)
    for index, op in enumerate(runs):
        values = csr_values[index * per_run:(index + 1) * per_run]
        status = _status_fields(regs, values[0])
        counts = {name: values[1 + 2 * i] | (values[2 + 2 * i] << 32) for i, name in enumerate(counters)}
        cycles, irq = run_cycles[index]
        reports.append(OpReport(name=op.name if op else "program", opcode=op.opcode if op else "-",
                                cycles=cycles if irq else -1, status=values[0], code=status["code"],
                                counters=counts, macs=op.macs if op else sum(o.macs for o in program.ops),
                                bandwidth=bandwidth[index], group=op.group if op else ""))
    memory = dump_path.read_bytes() if dump_path.exists() else b""
    if owned:
        for path in (image_path, dump_path, spec_path):
            path.unlink(missing_ok=True)
        work.rmdir()
    return RunResult(ops=reports, total_cycles=total, violations=violations, port_bytes=port_bytes,
                     seconds=seconds, memory=memory, base=base, log=done.stdout)


def first_mismatch(expected: np.ndarray, got: np.ndarray) -> str:
    """``row r, element j: expected E, got G`` of the first difference ('' when equal)."""
    diff = np.argwhere(expected != got)
    if not diff.size:
        return ""
    r, j = diff[0]
    return (f"row {r}, element {j}: expected {int(expected[r, j])}, got {int(got[r, j])} "
            f"({len(diff)} of {expected.size} elements differ)")


def compare(program: Program, result: RunResult) -> list[OpReport]:
    """Mark every operator's report PASS (its output region equals the golden's) or FAIL with the first
    wrong element; an operator that reported an error or timed out fails too."""
    outputs = program.outputs(result.memory, result.base)
    result.outputs = outputs
    names = {e.code: e.name for e in descriptors.ERRORS}
    by_name = {op.name: op for op in program.ops}
    for report in result.ops:
        op = by_name.get(report.name)
        if report.cycles < 0:
            report.ok, report.mismatch = False, "no irq before the timeout"
        elif report.code:
            report.ok, report.mismatch = False, f"error {names.get(report.code, report.code)}"
        elif op is not None and not op.writes:  # GATE: checked through the experts that read its queues
            report.ok = True
        elif op is not None and op.writes in program.expected:
            mismatch = first_mismatch(program.expected[op.writes], outputs[op.writes])
            report.ok, report.mismatch = not mismatch, mismatch
        elif op is None:
            bad = [f"{name}: {first_mismatch(program.expected[name], outputs[name])}"
                   for name in program.expected if first_mismatch(program.expected[name], outputs[name])]
            report.ok, report.mismatch = not bad, "; ".join(bad[:1])
    return result.ops


@dataclass
class HeadReport:
    """One attention head: every operator of it summed (per-operator runs, so the cycles are the sum of the
    operators' runs)."""

    name: str
    ops: int
    cycles: int
    macs: int
    mac_active: int
    read: list  # bytes per port
    written: list
    peak_read: list  # the busiest window of any of its operators, bytes per cycle, per port
    peak_written: list

    def bytes_per_cycle(self, port: int) -> tuple[float, float]:
        """Mean bytes read and written per cycle on ``port``."""
        return self.read[port] / self.cycles, self.written[port] / self.cycles


def head_reports(reports: list) -> list[HeadReport]:
    """The attention heads of per-operator reports (:attr:`OpReport.group`), in program order."""
    heads: dict[str, list] = {}
    for report in reports:
        if report.group:
            heads.setdefault(report.group, []).append(report)
    out = []
    for name, ops in heads.items():
        ports = range(len(ops[0].bandwidth))
        out.append(HeadReport(
            name=name, ops=len(ops), cycles=sum(r.cycles for r in ops), macs=sum(r.macs for r in ops),
            mac_active=sum(r.counters.get("MAC_ACTIVE", 0) for r in ops),
            read=[sum(r.bandwidth[p].read for r in ops) for p in ports],
            written=[sum(r.bandwidth[p].written for r in ops) for p in ports],
            peak_read=[max(r.bandwidth[p].peak_read / r.bandwidth[p].window for r in ops) for p in ports],
            peak_written=[max(r.bandwidth[p].peak_written / r.bandwidth[p].window for r in ops) for p in ports]))
    return out


# --------------------------------------------------------------------------- the whole job

#: The environment variable that picks the harness build of :func:`prepare` (``run`` or ``quick``).
ACCEL_BUILD_ENV = "NPUFORGE_ACCEL_BUILD"


@dataclass
class Prepared:
    """A generated accelerator and its compiled harness."""

    cfg: object
    manifest: dict
    verilog: Path
    harness: Path
    build_dir: Path


def prepare(cfg, build_root: Path, *, build: str | None = None) -> Prepared:
    """Generate ``cfg``'s Verilog into ``<build_root>/<name>-<hash>/rtl`` and build (or reuse) its fast harness
    (``build``: ``run``, or ``quick`` for short simulations, :data:`sim.fault.harness.ACCEL_BUILDS`; by default
    the environment's ``NPUFORGE_ACCEL_BUILD``, else ``run``; the test suite sets ``quick``).

    The Verilog is generated again when the generator's sources or the config changed
    (:func:`gen.emit.generate_once`); the harness is rebuilt only when the Verilog differs from the one
    it was built from.
    """
    from gen.emit import generate_in_build
    from gen.manifest import verilog_filename

    from gen.errors import UsageError
    from sim.fault.harness import ACCEL_BUILDS, build_accel_harness

    build = build or os.environ.get(ACCEL_BUILD_ENV) or "run"
    if build not in ACCEL_BUILDS:
        raise UsageError(f"{ACCEL_BUILD_ENV}: got {build!r}; allowed: one of {', '.join(ACCEL_BUILDS)}")
    rtl, manifest = generate_in_build(cfg, build_root)
    verilog = rtl / verilog_filename(cfg.name)
    harness = build_accel_harness(verilog, manifest, build_root, build=build)
    return Prepared(cfg=cfg, manifest=manifest, verilog=verilog, harness=harness, build_dir=rtl.parent)


#: ``--ops`` choices: which of the network's operators a program runs (:func:`program_for`).
OPERATOR_SETS = {"all": {"linear": True, "rows": True}, "network": {"linear": True, "rows": True, "network": True},
                 "linear": {"linear": True, "rows": False}, "rows": {"linear": False, "rows": True}}


def program_for(cfg, *, image: int = 0, task: str | None = None, seed: int = 0, ops: str = "all", model=None):
    """The golden-operator program of ``cfg``'s network (or of ``model``, a network the same hardware runs,
    e.g. fewer blocks) on synthetic image ``image`` (the network's weights, or seeded random ones when it has
    none): ``ops`` ``all`` (every operator the accelerator has), ``network`` (the network as one chain, image
    to head, no golden input: :func:`~sim.moevit.compiler.network_program`), ``linear`` (the linear operators
    and the embedding) or ``rows`` (the LayerNorms and the attention softmaxes)."""
    from gen.errors import UsageError
    from sim.golden.moevit.fixed import quantize, quantize_params
    from sim.golden.moevit.params import seeded_params

    from .compiler import Target, golden_ops_program
    from .data import SHAPES, make_image

    model = model or cfg.network
    task = task or model.task_names[0]
    if task not in model.task_names:
        raise UsageError(f"--task: got {task!r}; allowed: one of {', '.join(model.task_names)}")
    if ops not in OPERATOR_SETS:
        raise UsageError(f"--ops: got {ops!r}; allowed: one of {', '.join(OPERATOR_SETS)}")
    codes = quantize_params(seeded_params(model, seed), model)
    # The synthetic scenes have at most a background and one class per shape (Edge-MoE: 19 classes).
    classes = min(next((t.classes for t in model.tasks if t.classes), 5), len(SHAPES) + 1)
    pixels, _, _ = make_image(seed, image, model.height, model.width, classes)
    return golden_ops_program(Target.from_config(cfg), model, codes, quantize(pixels, model.format("pixel")), task,
                              **OPERATOR_SETS[ops])
