"""A campaign from config to stored rows: generate the design, prepare the engine, sample, resume, run.

:func:`prepare` does everything before the first injection: it generates the design
(``<build root>/<name>-<hash>/rtl``, as ``npuforge generate`` would), makes the
workload with the kind's plug-in, prepares the injection engine (which compiles its
harness once and checks the fault-free run against the golden model), and draws the
fault sample over the engine's window. :func:`run` opens (or creates) the campaign's
database, skips the faults already stored and runs the rest on the process pool,
storing each batch in one transaction. :func:`export_workload` writes the campaign's
workload file (what the harness replays) without preparing the engine.
"""

import dataclasses
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gen.config.messages import show_value
from gen.emit import generate
from gen.errors import ConfigError
from gen.locking import locked
from gen.manifest import verilog_filename

from . import executor
from .config import Campaign
from .model import InjectionResult, Outcome
from .sampling import EmptyPopulation, Sample, draw
from .store import CampaignStore
from .workload import spec_text, write_file

#: Databases go to ``<build root>/campaigns/<campaign name>.sqlite`` unless ``--db`` says otherwise.
DB_DIR = "campaigns"


def default_db_path(campaign: Campaign, build_root: Path) -> Path:
    return Path(build_root) / DB_DIR / f"{campaign.name}.sqlite"


def design_hash(manifest: dict) -> str:
    """sha256 over the design's config hash and the sha256 of every generated file (from the manifest)."""
    facts = {"config_hash": manifest["config_hash"], "files": sorted(f["sha256"] for f in manifest["files"])}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def engine_identity(engine: Any) -> dict:
    """What names the engine's build: its harness directory carries the hash of the Verilog, the
    harness sources, the Verilator version and the flags (``sim.fault.harness.build_harness``)."""
    binary = getattr(engine, "binary", None)
    return {"harness": Path(binary).parent.name if binary is not None else type(engine).__name__}


def plain(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses as dicts, tuples and arrays as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class Prepared:
    """A campaign ready to inject: its design, engine, sample and the meta its database holds."""

    campaign: Campaign
    build_dir: Path
    manifest: dict
    engine: Any  # sim.fault.engine.Engine (picklable; run(faults, timeout_factor=...))
    sample: Sample
    seconds: float

    @property
    def meta(self) -> dict:
        config = self.campaign.config
        return {
            "config": config.normalized(),
            "design": self.campaign.design.normalized(),
            "design_hash": design_hash(self.manifest),
            "manifest": self.manifest,
            "engine": engine_identity(self.engine),
            "reference": plain(self.engine.reference),
            "window": self.engine.window,
            "population": self.sample.population,
            "strata": self.sample.describe(),
            "samples": len(self.sample.faults),
            "fit_per_bit": config.fit_per_bit.model_dump(mode="json"),
            "target_asil": config.target_asil,
            "level": config.level,
        }


def _generate(campaign: Campaign, build_root: Path) -> tuple[Path, Path, dict]:
    """Write the design's Verilog and manifest under its build directory (locked like ``sim.runner.build``)."""
    from sim.runner import build_dir_for

    root = build_dir_for(campaign.design, build_root)
    with locked(root.with_name(root.name + ".lock")):
        generated = generate(campaign.design, root / "rtl")
    return root, root / "rtl" / verilog_filename(generated.manifest["top"]), generated.manifest


@dataclass(frozen=True)
class DesignWorkload:
    """A campaign's generated design and its workload: what an engine (or another simulator) replays."""

    build_dir: Path
    verilog: Path
    manifest: dict
    workload: Any  # sim.fault.workload.Workload (what a stand-in workload returns in unit tests)


def design_and_workload(campaign: Campaign, *, build_root: Path,
                        on_step: Callable[[str], None] = lambda message: None) -> DesignWorkload:
    """Generate the campaign's design (as ``npuforge generate`` would) and make its workload."""
    if campaign.workload is None:
        raise ValueError("load the campaign with its kind's workloads (load_campaign(..., workloads=...))")
    on_step(f"generating {campaign.design.name}")
    build_dir, verilog, manifest = _generate(campaign, build_root)
    on_step(f"making workload {campaign.config.workload.type}")
    try:
        workload = campaign.workload(campaign.design, manifest, **campaign.config.workload.params)
    except (ConfigError, ValueError) as error:
        raise ConfigError(f"{campaign.source}: {error}") from None
    return DesignWorkload(build_dir=build_dir, verilog=verilog, manifest=manifest, workload=workload)


def export_workload(campaign: Campaign, path: Path, *, build_root: Path) -> DesignWorkload:
    """Write the campaign's workload file (``docs/campaigns.md``) to ``path``, whole or not at all.

    Generates the design and makes the workload as :func:`prepare` does; compiles and runs nothing.
    Raises ``OSError`` when ``path`` cannot be written.
    """
    design = design_and_workload(campaign, build_root=build_root)
    write_file(Path(path), spec_text(design.manifest, design.workload))
    return design


def prepare(campaign: Campaign, *, build_root: Path, on_step: Callable[[str], None] = lambda message: None,
            engine_factory: Callable[..., Any] | None = None) -> Prepared:
    """Generate the design, make the workload, prepare the engine and draw the sample.

    ``engine_factory`` defaults to ``sim.fault.engine.Engine.prepare`` (same arguments).
    """
    started = time.monotonic()
    config, source = campaign.config, campaign.source
    made = design_and_workload(campaign, build_root=build_root, on_step=on_step)
    build_dir, verilog, manifest, workload = made.build_dir, made.verilog, made.manifest, made.workload
    on_step("preparing the injection engine (compiles the harness once per design, then the fault-free run)")
    if engine_factory is None and config.level == "model":
        from .model_level import ModelEngine

        engine_factory = ModelEngine.prepare
    if engine_factory is None:
        from .engine import Engine

        engine_factory = Engine.prepare
    engine = engine_factory(build_dir, verilog, manifest, workload, build_root=Path(build_root))
    if config.level == "model":  # only the sites the golden model holds are sampled (and reported)
        manifest = engine.visible_manifest()
    on_step("sampling faults")
    faults = config.faults
    try:
        sample = draw(manifest, faults.fault_models, window=engine.window, seed=faults.seed, samples=faults.samples,
                      margin=faults.margin, confidence=faults.confidence, mbu_width=faults.mbu_width,
                      stratify=faults.stratify)
    except EmptyPopulation as error:
        usable = [m for m in ("seu", "mbu", "mem_seu") if m != error.model.value]
        raise ConfigError(f"{source}: faults.models: got {show_value(error.model.value)}, but {error.reason} in "
                          f"{campaign.design.name}; allowed: models with sites in the design "
                          f"(of {', '.join(usable)})") from None
    return Prepared(campaign=campaign, build_dir=build_dir, manifest=manifest, engine=engine, sample=sample,
                    seconds=time.monotonic() - started)


@dataclass
class RunSummary:
    """What :func:`run` did: totals over the whole database and this run's share."""

    db: Path
    total: int  # faults in the sample
    stored_before: int  # rows the database held when this run started
    ran: int  # injections this run stored
    counts: Counter  # outcome -> rows in the database after this run
    seconds: float

    @property
    def complete(self) -> bool:
        return sum(self.counts.values()) == self.total


def run(prepared: Prepared, *, db: Path, workers: int = 1, batch_size: int | None = None,
        on_start: Callable[[int, int, Counter], None] = lambda total, done, counts: None,
        on_batch: Callable[[list[InjectionResult]], None] = lambda results: None,
        execute: executor.Execute | None = None) -> RunSummary:
    """Run the faults of ``prepared`` that ``db`` does not hold yet, storing each batch as it finishes.

    ``on_start(total, already_stored, outcome_counts)`` is called once the worker processes
    exist, before the first injection; ``on_batch(results)`` after each stored batch (both
    for progress display). ``execute`` runs the batches: the local process pool
    (``sim.fault.executor.execute``, the default) or the Dask executor with its client bound
    (``functools.partial(sim.fault.dask_executor.execute, client=...)``).
    """
    execute = execute or executor.execute
    started = time.monotonic()
    with CampaignStore.open(db, create=prepared.meta) as store:
        done = store.done_indices()
        counts = store.outcome_counts()
        todo = [fault for fault in prepared.sample.faults if fault.index not in done]
        ran = 0

        def store_batch(results: list[InjectionResult]) -> None:
            nonlocal ran
            ran += store.add(results)
            on_batch(results)

        execute(prepared.engine, todo, timeout_factor=prepared.campaign.config.timeout_factor,
                workers=workers, batch_size=batch_size, on_batch=store_batch,
                on_start=lambda: on_start(len(prepared.sample.faults), len(done), counts))
        counts = store.outcome_counts()
    return RunSummary(db=Path(db), total=len(prepared.sample.faults), stored_before=len(done), ran=ran,
                      counts=counts, seconds=time.monotonic() - started)


def outcome_order() -> list[str]:
    """Outcome names in the order summaries list them."""
    return [outcome.value for outcome in Outcome]
