"""The model-level injector: RTL fault sites mapped onto the golden model's state, many faults at once.

An RTL injection flips a bit of a register or memory word at the start of a cycle and
simulates the Verilog on. A *model-level* injection flips the same bit of the same
value where the bit-accurate golden model holds it: an operand ``A[i, k]`` that a
pipeline register carries at that cycle, the partial sum an accumulator holds after
step ``k``, a finished element waiting in a result register, a data word in a buffer.
The per-kind modules (:mod:`sim.fault.model_tpe`, :mod:`sim.fault.model_tile`) say, from
the workload and the architecture's documented timing, which value every mapped
register bit holds in which cycles and which output elements read it: an
:class:`Exposure` table. A fault then costs a table look-up and a few numpy operations,
for all faults of a batch together:

* an **operand** exposure (a field of ``width`` bits holding the operand ``value``,
  read by products with ``partners``) changes each consumer element by
  ``(flipped - value) * partner``;
* a **register** exposure (a ``width``-bit code that is added on, or is the element
  itself) changes its element by ``(code ^ mask) - code``.

Flips are additive (a XOR of bits is the sum of per-bit changes of the original value,
and the products and sums after it are linear), so a multi-bit upset is the sum of its
bits' changes; the kind's ``finish`` applies what is not linear (wrapping, the tile's
requantisation) to the summed change. A bit that no exposure covers at that cycle holds
nothing that is read later: the fault is masked. Control registers (tags, counters,
state machines, the command memory) have no golden-model counterpart and are not
*mapped*: :meth:`ModelEngine.visible_manifest` lists the sites (and bits) the model
level sees, and a model-level campaign samples only those. What this level cannot see
is documented in ``docs/fault-campaigns.md``.

:class:`ModelEngine` has the interface of :class:`sim.fault.engine.Engine` that the
campaign code uses (``prepare``, ``window``, ``reference``, ``run``, ``spec``), so
``level: model`` runs through the same sampling, store and report.
"""

import gc
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from gen.errors import ConfigError

from .exposure import OPERAND, Plan, flip_change
from .model import Fault, InjectionResult, Outcome

@dataclass(frozen=True)
class ModelReference:
    cycles: int
    outputs: dict


@dataclass
class ModelEngine:
    """The model-level twin of :class:`sim.fault.engine.Engine` (same ``run`` contract, no simulator)."""

    manifest: dict
    workload: object
    plan: Plan
    reference: ModelReference
    last_seconds: float = field(default=0.0, compare=False)

    @classmethod
    def prepare(cls, build_dir: Path, verilog: Path, manifest: dict, workload, *, build_root: Path) -> "ModelEngine":
        """Build the exposure table of ``workload`` on ``manifest``'s design (``build_dir``/``verilog`` unused:
        the same signature as ``Engine.prepare``, so the campaign code takes either)."""
        plan = plan_for(manifest, workload)
        got = plan.expected
        want = np.concatenate([workload.elements(name, beats).reshape(-1) for name, beats in workload.outputs.items()])
        if got.shape != want.shape or not np.array_equal(got, want):
            raise AssertionError(f"the model level's fault-free outputs differ from the workload's on {manifest['top']}")
        return cls(manifest=manifest, workload=workload, plan=plan,
                   reference=ModelReference(cycles=plan.window, outputs=dict(workload.outputs)))

    @property
    def window(self) -> int:
        return self.plan.window

    def spec(self) -> "ModelEngine":
        return replace(self)

    def visible_manifest(self) -> dict:
        """``manifest`` with only the sites the model maps, each as wide as its mapped bits (from bit 0)."""
        sites = []
        for site in self.manifest["fault_sites"]:
            bits = self.plan.visible.get(site["path"], 0)
            if bits:
                sites.append(dict(site, width=bits))
        return dict(self.manifest, fault_sites=sites, fault_site_bits=sum(
            s["width"] * s.get("depth", 1) for s in sites))

    def run(self, faults: Sequence[Fault], *, timeout_factor: float = 4.0) -> list[InjectionResult]:
        """Outcomes of ``faults`` (masked or sdc: the model level has no hangs and no alarms)."""
        started = time.perf_counter()
        faults = list(faults)
        if not faults:
            return []
        paths = [site["path"] for site in self.manifest["fault_sites"]]
        sites = {path: index for index, path in enumerate(paths)}
        mapped = np.asarray([self.plan.visible.get(path, 0) for path in paths] + [0], dtype=np.int64)
        n = len(faults)
        site = np.fromiter((sites.get(f.site, -1) for f in faults), np.int64, n)
        bit = np.fromiter((f.bit for f in faults), np.int64, n)
        cycle = np.fromiter((f.cycle for f in faults), np.int64, n)
        word = np.fromiter((f.word or 0 for f in faults), np.int64, n)
        width = np.fromiter((f.width for f in faults), np.int64, n)
        bad = np.nonzero((bit >= mapped[site]) | (bit < 0))[0]
        if len(bad):
            fault = faults[bad[0]]
            raise ValueError(f"fault {fault.index}: {fault.site!r} bit {fault.bit} is not mapped to the "
                             f"{self.manifest['top']} golden model; allowed: the sites of visible_manifest()")
        late = np.nonzero((cycle < 0) | (cycle >= self.window))[0]
        if len(late):
            fault = faults[late[0]]
            raise ValueError(f"fault {fault.index}: cycle {fault.cycle} is outside the window 0 .. {self.window - 1}")
        flips = np.minimum(width, mapped[site] - bit)  # bits past the mapped top are not flipped
        flip_of = np.repeat(np.arange(n), flips)
        site, word, cycle = site[flip_of], word[flip_of], cycle[flip_of]
        bit = bit[flip_of] + _ranges(flips)
        table = self.plan.exposures
        hit, row = table.match(site, word, bit, cycle)
        position = bit[hit] - table.offset[row]
        change = np.where(table.kind[row] == OPERAND,
                          flip_change(table.value[row], position, table.width[row], table.signed[row]),
                          ((table.value[row] ^ np.left_shift(np.int64(1), position)) - table.value[row]))
        counts = table.count[row]
        pick = np.repeat(table.start[row], counts) + _ranges(counts)
        fault_row = np.repeat(flip_of[hit], counts)
        stage = np.repeat(table.stage[row], counts)
        amount = np.repeat(change, counts) * table.partners[pick]
        changes = [np.zeros((len(faults), size), dtype=np.int64) for size in self.plan.stage_sizes]
        for s, matrix in enumerate(changes):
            mine = stage == s
            np.add.at(matrix, (fault_row[mine], table.elements[pick][mine]), amount[mine])
        outputs = self.plan.finish(changes)
        expected = self.plan.expected[None, :]
        differs = outputs != expected
        differing = differs.sum(axis=1)
        worst = np.abs(outputs - expected).max(axis=1) if expected.size else np.zeros(len(faults), np.int64)
        sdc, masked, window = Outcome.SDC, Outcome.MASKED, self.window
        collecting = gc.isenabled()
        gc.disable()  # tens of thousands of small frozen objects: the cyclic collector would rescan them all
        try:
            results = [InjectionResult(fault, sdc if d else masked, d, w, window)
                       for fault, d, w in zip(faults, differing.tolist(), worst.tolist())]
        finally:
            if collecting:
                gc.enable()
        self.last_seconds = time.perf_counter() - started
        return results


def _ranges(counts: np.ndarray) -> np.ndarray:
    """0 .. n-1 for each n of ``counts``, concatenated."""
    if not len(counts):
        return counts
    ends = np.cumsum(counts)
    return np.arange(ends[-1]) - np.repeat(ends - counts, counts)


def plan_for(manifest: dict, workload) -> Plan:
    """The kind's model of ``workload`` on ``manifest``'s design; one-line ``ConfigError`` where none exists."""
    kind = manifest["kind"]
    if kind == "tpe":
        from .model_tpe import tpe_plan

        return tpe_plan(manifest, workload)
    if kind == "npu_tile":
        from .model_tile import tile_plan

        return tile_plan(manifest, workload)
    raise ConfigError(f"level: got 'model' for a design of kind {kind!r}; allowed: kinds tpe and npu_tile "
                      "(the MoE-ViT accelerator has no model-level injector yet: use level: rtl)")
