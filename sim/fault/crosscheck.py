"""Model level against RTL: the same faults through both engines, agreement per block and outcome class.

:func:`crosscheck` draws one sample (``sim.fault.sampling.draw``) over the sites the model
level maps (``ModelEngine.visible_manifest``), runs it through the RTL engine (the C++
harness) and the model engine, and compares every injection: the outcome, and for an
``sdc`` the corruption (elements that differ, largest difference). Every disagreement
is listed with its cause (:func:`cause`). Times are wall-clock and CPU seconds (this process and the harness
process) of each engine's ``run`` over the same faults.
"""

import resource
import time
from collections import Counter
from dataclasses import dataclass, field

from .model import FaultModel, InjectionResult, Outcome
from .sampling import draw


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the RTL engine's harness is a child)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cause(rtl: InjectionResult, model: InjectionResult) -> str:
    """Why two results of one fault differ, as far as the results say."""
    if rtl.outcome in (Outcome.HANG, Outcome.DETECTED, Outcome.CORRECTED):
        return f"RTL {rtl.outcome.value}: control or alarm behaviour the model level does not hold"
    if rtl.extra_beats:
        return "RTL sent beats after the expected ones (control), the model level sends none"
    if model.outcome is Outcome.MASKED:
        return "the RTL reads the flipped value after the cycles the model's timing exposes it (timing model)"
    if rtl.outcome is Outcome.MASKED:
        return "the model exposes the value in a cycle the RTL no longer (or not yet) reads it (timing model)"
    return (f"same class, other corruption: RTL {rtl.differing} elements (max {rtl.max_abs_diff}), model "
            f"{model.differing} (max {model.max_abs_diff}): the value or its consumers differ (value model)")


def block_of(manifest: dict, site: str) -> str:
    for s in manifest["fault_sites"]:
        if s["path"] == site:
            return s["block"]
    raise KeyError(site)


@dataclass
class CrossCheck:
    """Per-injection comparison of one sample at both levels."""

    design: str
    injections: int
    rtl_seconds: float
    model_seconds: float
    rtl_cpu_seconds: float = 0.0  # this process and its children (the harness)
    model_cpu_seconds: float = 0.0
    per_block: dict[str, dict] = field(default_factory=dict)  # block -> {injections, agree, outcomes}
    per_outcome: dict[str, dict] = field(default_factory=dict)  # RTL outcome -> {injections, agree}
    disagreements: list[dict] = field(default_factory=list)
    coverage: dict = field(default_factory=dict)  # register and memory bits the model maps, of all

    @property
    def agreement(self) -> float:
        agree = sum(b["agree"] for b in self.per_block.values())
        return agree / self.injections if self.injections else 1.0

    @property
    def speed_ratio(self) -> float:
        return self.rtl_seconds / self.model_seconds if self.model_seconds else float("inf")

    def as_dict(self) -> dict:
        return {"design": self.design, "injections": self.injections, "agreement": self.agreement,
                "rtl_inj_per_s": self.injections / self.rtl_seconds if self.rtl_seconds else None,
                "model_inj_per_s": self.injections / self.model_seconds if self.model_seconds else None,
                "speed_ratio": self.speed_ratio,
                "rtl_inj_per_cpu_s": self.injections / self.rtl_cpu_seconds if self.rtl_cpu_seconds else None,
                "model_inj_per_cpu_s": self.injections / self.model_cpu_seconds if self.model_cpu_seconds else None,
                "speed_ratio_cpu": (self.rtl_cpu_seconds / self.model_cpu_seconds
                                    if self.model_cpu_seconds else None), "per_block": self.per_block, "per_outcome": self.per_outcome,
                "disagreements": self.disagreements, "coverage": self.coverage}


def _agree(rtl: InjectionResult, model: InjectionResult, exact: bool) -> bool:
    if rtl.outcome is not model.outcome:
        return False
    return not exact or (rtl.differing, rtl.max_abs_diff) == (model.differing, model.max_abs_diff)


def crosscheck(rtl_engine, model_engine, *, models=(FaultModel.SEU,), samples: int = 2000, seed: int = 1,
               stratify: str = "block", timeout_factor: float = 4.0, exact: bool = True) -> CrossCheck:
    """Draw ``samples`` faults per model (per block with ``stratify: block``) over the mapped sites and
    compare both levels. ``exact``: an ``sdc`` agrees only with the same corruption, not just the class."""
    if rtl_engine.window != model_engine.window:
        raise AssertionError(f"windows differ: RTL {rtl_engine.window} cycles, model {model_engine.window}")
    visible = model_engine.visible_manifest()
    sample = draw(visible, list(models), window=rtl_engine.window, seed=seed, samples=samples, stratify=stratify)
    faults = sample.faults
    started, cpu = time.perf_counter(), _cpu()
    rtl = rtl_engine.run(faults, timeout_factor=timeout_factor)
    rtl_seconds, rtl_cpu = time.perf_counter() - started, _cpu() - cpu
    started, cpu = time.perf_counter(), _cpu()
    model = model_engine.run(faults, timeout_factor=timeout_factor)
    model_seconds, model_cpu = time.perf_counter() - started, _cpu() - cpu
    result = CrossCheck(design=rtl_engine.manifest["top"], injections=len(faults), rtl_seconds=rtl_seconds,
                        model_seconds=model_seconds, rtl_cpu_seconds=rtl_cpu, model_cpu_seconds=model_cpu)
    blocks = {s["path"]: s["block"] for s in visible["fault_sites"]}
    per_block, per_outcome = {}, {}
    for r, m in zip(rtl, model):
        ok = _agree(r, m, exact)
        entry = per_block.setdefault(blocks[r.fault.site], {"injections": 0, "agree": 0, "outcomes": Counter()})
        entry["injections"] += 1
        entry["agree"] += ok
        entry["outcomes"][r.outcome.value] += 1
        cls = per_outcome.setdefault(r.outcome.value, {"injections": 0, "agree": 0})
        cls["injections"] += 1
        cls["agree"] += ok
        if not ok:
            result.disagreements.append({"fault": {"site": r.fault.site, "bit": r.fault.bit, "word": r.fault.word,
                                                   "cycle": r.fault.cycle, "model": r.fault.model.value},
                                         "rtl": r.outcome.value, "model": m.outcome.value, "cause": cause(r, m)})
    for entry in per_block.values():
        entry["agreement"] = entry["agree"] / entry["injections"]
        entry["outcomes"] = dict(entry["outcomes"])
    result.per_block, result.per_outcome = per_block, per_outcome

    def bits(manifest):
        return sum(s["width"] * s.get("depth", 1) for s in manifest["fault_sites"])
    result.coverage = {"mapped_bits": bits(visible), "all_bits": bits(rtl_engine.manifest)}
    return result
