"""Run faults through an engine on a Dask distributed cluster, one batch per task.

The same interface as the local executor (``sim.fault.executor.Execute``, with
``client`` bound): the faults are cut into the same batches, every batch is one
task, and this process hands each finished batch to ``on_batch`` (the campaign
stores it in one transaction), so resume and the stored rows are the same as
with the local executor.

No shared file system is assumed. The engine travels as a :class:`Shipment`
(its Verilog, manifest, workload and fault-free reference, a few hundred kB);
each worker process compiles the harness with the engine's own build
(``Engine.prepare``) into its cache directory, or reuses the build there
(the directory name carries the hash of the Verilog, the harness sources and
the Verilator version), checks that its fault-free run equals the shipped
reference, and keeps the engine for the following batches.

The shipment is the result of one task rather than scattered data, so when the
worker holding it dies Dask recomputes it like any lost result; a batch that a
dead worker was running is run again by Dask on another worker (up to
``distributed.scheduler.allowed-failures`` times). Each batch's future resolves
once, and the client hands a batch to ``on_batch`` at most once, so a re-run
batch is never counted twice.
"""

import contextlib
import hashlib
import json
import logging
import os
import pickle
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import dask
from distributed import CancelledError, Client, LocalCluster, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from gen.errors import ConfigError, ToolError
from gen.locking import locked

from .engine import Engine, Reference, _write_once
from .executor import batch_size_for, batches, checked
from .harness import harness_verilog
from .model import Fault, InjectionResult
from .workload import Workload

#: Seconds to reach a scheduler, and to wait for its first worker.
CONNECT_TIMEOUT = 10
WORKER_TIMEOUT = 60
#: A LocalCluster shares this machine's cores with the harness runs: no statistical profiler
#: (it samples every 10 ms), slower health checks and monitors (every 20-500 ms by default).
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}
#: Where a worker keeps its harness builds unless the task names a directory.
CACHE_ENV = "NPUFORGE_WORKER_CACHE"


@dataclass(frozen=True)
class Shipment:
    """Everything a worker needs to rebuild an engine without the client's files."""

    key: str  # sha256 of everything below: names the worker's build and its engine cache entry
    verilog: str
    manifest: dict
    workload: Workload
    reference: Reference
    checkpoints: bool
    early_stop: bool


def shipment(engine: Engine) -> Shipment:
    """The :class:`Shipment` of a prepared engine (its Verilog is the copy kept next to the harness)."""
    verilog = harness_verilog(engine.binary).read_text()
    facts = json.dumps([verilog, engine.manifest, Path(engine.spec_file).read_text(), engine.reference.cycles,
                        engine.checkpoints, engine.early_stop], sort_keys=True, default=str)
    return Shipment(key=hashlib.sha256(facts.encode()).hexdigest(), verilog=verilog, manifest=engine.manifest,
                    workload=engine.workload, reference=engine.reference, checkpoints=engine.checkpoints,
                    early_stop=engine.early_stop)


def default_worker_cache() -> Path:
    """``$NPUFORGE_WORKER_CACHE``, else ``$XDG_CACHE_HOME/npuforge`` (``~/.cache/npuforge``)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "npuforge"


# Per worker process: shipment key -> engine built from it (the process's tasks may run on threads).
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def worker_engine(shipped: Shipment, cache: Path | None) -> Engine:
    """The engine of ``shipped`` in this process: built once into ``cache`` (or reused from there)."""
    with _engines_lock:
        engine = _engines.get(shipped.key)
        if engine is None:
            root = Path(cache) if cache is not None else default_worker_cache()
            home = (root / "dask-designs" / f"{shipped.manifest['top']}-{shipped.key[:16]}").resolve()
            verilog = home / "design.v"
            with locked(home.with_name(home.name + ".lock")):
                _write_once(verilog, shipped.verilog)
            engine = Engine.prepare(home, verilog, shipped.manifest, shipped.workload, build_root=root.resolve())
            if engine.reference != shipped.reference:
                raise ToolError(f"{shipped.manifest['top']}: the fault-free run on Dask worker host "
                                f"{os.uname().nodename} ({engine.reference.cycles} cycles) differs from the "
                                f"client's ({shipped.reference.cycles} cycles); check its Verilator version")
            engine = _engines[shipped.key] = replace(engine, checkpoints=shipped.checkpoints,
                                                     early_stop=shipped.early_stop)
    return engine


def _hold(shipped: Shipment) -> Shipment:
    return shipped


def _run_batch(shipped: Shipment, cache: str | None, batch: bytes, timeout_factor: float) -> bytes:
    """A task: the pickled results of the pickled ``batch``. Dask serialises a list element by
    element; one bytes object each way is cheaper (measured here: up to 0.06 ms per injection)."""
    engine = worker_engine(shipped, Path(cache) if cache is not None else None)
    return pickle.dumps(engine.run(pickle.loads(batch), timeout_factor=timeout_factor))


def local_cluster(workers: int) -> LocalCluster:
    """``workers`` single-threaded worker processes and their scheduler, on loopback, no dashboard."""
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=None, silence_logs=logging.ERROR)


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler`` (``tcp://HOST:PORT``), or of a new ``LocalCluster``
    of ``workers`` single-threaded worker processes on loopback when ``scheduler`` is None."""
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            with dask.config.set(QUIET_CLUSTER):
                cluster = stack.enter_context(local_cluster(workers))
            client = stack.enter_context(Client(cluster))
        else:
            try:
                client = stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError) as error:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise ConfigError(f"--scheduler: got {scheduler!r}, but no Dask scheduler answered there within "
                                  f"{CONNECT_TIMEOUT} s ({reason}); allowed: the address of a running "
                                  "scheduler, tcp://HOST:PORT") from None
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except TimeoutError:
            raise ToolError(f"the Dask scheduler {client.scheduler.address} has no worker "
                            f"(waited {WORKER_TIMEOUT} s); start some with: dask worker "
                            f"{client.scheduler.address}") from None
        yield client


def execute(engine: Engine, faults: Sequence[Fault], *, timeout_factor: float, workers: int = 1,
            batch_size: int | None = None, on_start: Callable[[], None] = lambda: None,
            on_batch: Callable[[list[InjectionResult]], None] = lambda results: None,
            client: Client, worker_cache: Path | None = None) -> None:
    """Run every fault of ``faults`` on the workers of ``client``, each finished batch to ``on_batch`` once.

    ``batch_size`` defaults to :func:`~sim.fault.executor.batch_size_for` over the
    cluster's worker threads (at least ``workers``). ``worker_cache`` is where the
    workers build harnesses (default: each worker's :func:`default_worker_cache`;
    a ``LocalCluster`` can share the client's build root). An exception in a task
    or in ``on_batch`` stops the run and cancels the batches not yet handed over
    (a resume recomputes them).
    """
    if not faults:
        on_start()
        return
    threads = max(workers, sum(client.nthreads().values()))
    work = batches(faults, batch_size or batch_size_for(len(faults), threads))
    token = uuid.uuid4().hex[:12]
    cache = str(Path(worker_cache).resolve()) if worker_cache is not None else None
    shipped = client.submit(_hold, shipment(engine), key=f"npuforge-engine-{token}", pure=False)
    pending = {client.submit(_run_batch, shipped, cache, pickle.dumps(batch), timeout_factor,
                             key=f"npuforge-batch-{batch[0].index}-{token}", pure=False): batch for batch in work}
    handed: set[int] = set()  # first fault index of every batch handed to on_batch
    try:
        on_start()
        for future in as_completed(pending):
            batch = pending.pop(future)
            try:
                results = pickle.loads(future.result())
            except KilledWorker:
                raise ToolError(f"Dask workers died each time they ran the batch from fault {batch[0].index} "
                                "(distributed.scheduler.allowed-failures); run the same command again to "
                                "resume") from None
            except (CancelledError, FutureCancelledError):
                raise ToolError("the Dask scheduler cancelled the campaign's tasks (scheduler lost or "
                                "restarted); run the same command again to resume") from None
            future.release()
            if batch[0].index in handed:
                continue
            handed.add(batch[0].index)
            on_batch(checked(batch, results))
    finally:
        if pending:
            client.cancel(list(pending))
        shipped.release()

