"""Run faults through an engine on a local process pool, one batch per engine call.

The faults are cut into batches in index order. With one worker the batches run in
this process; with more, each worker process receives the (picklable) engine once
and runs whole batches, and this process hands every finished batch to
``on_batch`` (the campaign stores it in one transaction). The engine's results do
not depend on which batch or process ran a fault, so the stored rows are the same
for any worker count and batch size; only the order in which batches finish varies.

The batching (:func:`batch_size_for`, :func:`batches`, :func:`checked`) is shared with the
Dask executor (``sim.fault.dask_executor``), which has the same interface (:class:`Execute`).
"""

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from gen.errors import ToolError

from .model import Fault, InjectionResult

#: Upper bound of faults per engine call. Each call starts a harness process and replays the
#: fault-free run (about 10 ms for the 8x8 array, measured: 1,350 inj/s in batches of 16,
#: 12,800 in batches of 256, 18,000 in batches of 2,048 on one core), while a batch is also
#: the work a kill loses and the step of the progress bar.
MAX_BATCH = 2000
#: Batches per worker at least, so that workers finish together.
BATCHES_PER_WORKER = 4


class Runner(Protocol):
    """What the executor needs of an engine: ``run`` a batch, results in input order."""

    def run(self, faults: Sequence[Fault], *, timeout_factor: float) -> list[InjectionResult]: ...


class Execute(Protocol):
    """What every executor offers (this module's :func:`execute`; ``sim.fault.dask_executor.execute``
    with its ``client`` bound): run ``faults`` through ``engine`` in batches of :func:`batches`, call
    ``on_start()`` once the workers exist and hand every batch's :func:`checked` results to
    ``on_batch`` exactly once, in any order."""

    def __call__(self, engine: Runner, faults: Sequence[Fault], *, timeout_factor: float, workers: int = 1,
                 batch_size: int | None = None, on_start: Callable[[], None] = ...,
                 on_batch: Callable[[list[InjectionResult]], None] = ...) -> None: ...


def default_workers() -> int:
    """Every core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def batch_size_for(count: int, workers: int) -> int:
    """Faults per batch: at most :data:`MAX_BATCH`, at least :data:`BATCHES_PER_WORKER` batches per worker."""
    return max(1, min(MAX_BATCH, math.ceil(count / (workers * BATCHES_PER_WORKER))))


def batches(faults: Sequence[Fault], size: int) -> list[list[Fault]]:
    return [list(faults[start:start + size]) for start in range(0, len(faults), size)]


def checked(batch: Sequence[Fault], results: list[InjectionResult]) -> list[InjectionResult]:
    """``results`` if they answer ``batch`` one to one, in order; an engine bug otherwise."""
    if len(results) != len(batch) or any(r.fault != f for r, f in zip(results, batch)):
        raise ToolError(f"the injection engine returned {len(results)} results for a batch of {len(batch)} "
                        f"faults (from index {batch[0].index}) that do not match them one to one")
    return results


_worker_engine: Runner | None = None


def _init_worker(engine: Runner) -> None:
    global _worker_engine
    _worker_engine = engine


def _run_batch(batch: list[Fault], timeout_factor: float) -> list[InjectionResult]:
    return _worker_engine.run(batch, timeout_factor=timeout_factor)


def start_method() -> str:
    """``fork`` on Linux: a worker starts in milliseconds instead of re-importing the project
    (about a second each with ``spawn``, which would dominate campaigns of a few thousand
    injections). :func:`execute` forks its workers before ``on_start`` runs, so no other
    thread of ours (the progress display) exists yet. ``spawn`` elsewhere (macOS forbids
    fork after some system libraries are loaded)."""
    return "fork" if sys.platform == "linux" else "spawn"


def execute(engine: Runner, faults: Sequence[Fault], *, timeout_factor: float, workers: int = 1,
            batch_size: int | None = None, on_start: Callable[[], None] = lambda: None,
            on_batch: Callable[[list[InjectionResult]], None] = lambda results: None) -> None:
    """Run every fault of ``faults`` and pass each finished batch's results to ``on_batch``.

    ``workers`` processes (1: this process); ``batch_size`` faults per engine call
    (default :func:`batch_size_for`). ``on_start()`` is called once the workers exist,
    before the first result. An exception in a worker or in ``on_batch`` stops the run:
    batches not yet handed to ``on_batch`` are dropped (a resume recomputes them).
    """
    if not faults:
        on_start()
        return
    size = batch_size or batch_size_for(len(faults), workers)
    work = batches(faults, size)
    if workers <= 1:
        on_start()
        for batch in work:
            on_batch(checked(batch, engine.run(batch, timeout_factor=timeout_factor)))
        return

    # Workers get the engine without its per-run statistics (``Engine.spec``), if it offers that.
    shipped = getattr(engine, "spec", lambda: engine)()
    pool = ProcessPoolExecutor(max_workers=min(workers, len(work)), mp_context=multiprocessing.get_context(
        start_method()), initializer=_init_worker, initargs=(shipped,))
    pending: dict[Future, list[Fault]] = {}
    queue = iter(work)
    try:
        for batch in queue:  # keep two batches per worker in flight, so no worker waits
            pending[pool.submit(_run_batch, batch, timeout_factor)] = batch
            if len(pending) >= 2 * workers:
                break
        on_start()  # the first submit started every worker
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                batch = pending.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    raise ToolError("an injection worker process died (out of memory, or killed); "
                                    "run the same command again to resume") from None
                on_batch(checked(batch, results))
                following = next(queue, None)
                if following is not None:
                    pending[pool.submit(_run_batch, following, timeout_factor)] = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
