"""``npuforge inject CAMPAIGN``: run (or resume) a fault-injection campaign into its SQLite database."""

import argparse
import contextlib
import functools
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from sim import runner
from sim.fault import campaign as campaigns
from sim.fault.config import load_campaign
from sim.fault.executor import default_workers

from gen.errors import UsageError

from ..registry import kind_workloads
from .args import int_in

HELP = "run or resume a fault-injection campaign (kind: campaign) into its SQLite database"

#: Percent of the campaign between progress lines when stdout is not a terminal.
PLAIN_STEP = 10
EXECUTORS = ("local", "dask")
SCHEDULER_SCHEMES = ("tcp", "tls")


def scheduler_address(text: str) -> str:
    """An argument type: a Dask scheduler address ``tcp://HOST:PORT`` (or ``tls://``)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if parts is None or parts.scheme not in SCHEDULER_SCHEMES or not parts.hostname or port is None \
            or not 1 <= port <= 65535 or parts.path or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a Dask scheduler address tcp://HOST:PORT "
                                         "(or tls://HOST:PORT), port 1 to 65535")
    return text


def add_arguments(parser) -> None:
    parser.add_argument("campaign", metavar="CAMPAIGN", help="campaign config (kind: campaign)")
    parser.add_argument("--db", type=Path, default=None, metavar="FILE",
                        help="results database (default <build dir>/campaigns/<name>.sqlite); "
                             "resumed when it exists")
    parser.add_argument("--workers", type=int_in(1, 4096), default=None, metavar="N",
                        help="worker processes of the local pool or of the Dask LocalCluster (default: every "
                             "core); with --scheduler, the cluster's workers are used")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="local: a process pool on this machine (default); dask: a Dask cluster, "
                             "--scheduler's or a LocalCluster started for this run")
    parser.add_argument("--scheduler", type=scheduler_address, default=None, metavar="tcp://HOST:PORT",
                        help="address of a running Dask scheduler (implies --executor dask)")
    parser.add_argument("--batch", type=int_in(1, 100_000), default=None, metavar="N",
                        help=f"faults per simulator call (default: up to {campaigns.executor.MAX_BATCH}, "
                             "smaller for small campaigns)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR", help="build root (default build/)")
    parser.add_argument("--export-workload", type=Path, default=None, metavar="FILE",
                        help="write the campaign's workload file (input beats and expected output beats, format in "
                             "docs/campaigns.md) and exit without injecting")


def _counts_text(counts: Counter) -> str:
    """``masked 1181  sdc 815  hang 4``: the outcomes seen so far, in the usual order."""
    return "  ".join(f"{name} {counts[name]}" for name in campaigns.outcome_order() if counts.get(name))


class Progress:
    """A rich progress bar on a terminal; otherwise a plain line each time the campaign passes
    another :data:`PLAIN_STEP` percent (a log, CI)."""

    def __init__(self, console):
        self.console = console
        self.bar = None
        self.counts = Counter()
        self.ran = self.done = 0

    def start(self, total: int, done: int, counts: Counter) -> None:
        self.total, self.done, self.counts = total, done, Counter(counts)
        self.started = time.monotonic()
        self.next_step = self._steps(done) + 1  # the next multiple of PLAIN_STEP % that prints a line
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            # Fits 80 columns: bar, done/total, rate, time left, the non-zero outcome counts.
            self.bar = Progress(BarColumn(bar_width=20), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                TimeRemainingColumn(), TextColumn("left  {task.fields[counts]}"),
                                console=self.console)
            self.task = self.bar.add_task("inject", total=total, completed=done, rate="",
                                          counts=_counts_text(self.counts))
            self.bar.start()

    def _steps(self, done: int) -> int:
        """Whole :data:`PLAIN_STEP` % steps that ``done`` injections complete."""
        return done * 100 // (PLAIN_STEP * self.total) if self.total else 0

    def _rate(self) -> float:
        return self.ran / max(time.monotonic() - self.started, 1e-9)

    def advance(self, results) -> None:
        self.ran += len(results)
        self.done += len(results)
        self.counts.update(r.outcome.value for r in results)
        if self.bar is not None:
            self.bar.update(self.task, advance=len(results), rate=f"{self._rate():,.0f} inj/s",
                            counts=_counts_text(self.counts))
        elif self._steps(self.done) >= self.next_step:
            self.next_step = self._steps(self.done) + 1
            rate = self._rate()
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"progress {self.done}/{self.total} ({100 * self.done / self.total:.1f}%)  {rate:,.0f} inj/s  "
                  f"ETA {eta:.0f} s  {_counts_text(self.counts)}", flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _percent(part: int, whole: int) -> str:
    return f" ({100 * part / whole:.1f}%)" if whole else ""


def _dask_module():
    """``sim.fault.dask_executor``, or a one-line error when dask[distributed] is not installed."""
    try:
        from sim.fault import dask_executor
    except ImportError as error:
        raise UsageError(f"npuforge inject: --executor: got 'dask', but {error.name or 'dask'} is not installed; "
                         "allowed: local, or dask after pip install 'npuforge[dask]'") from None
    return dask_executor


@contextlib.contextmanager
def _executor(args, workers: int, build_root: Path):
    """(execute function for ``campaigns.run``, a line describing it) for the chosen executor."""
    kind = args.executor or ("dask" if args.scheduler else "local")
    if kind == "local":
        if args.scheduler:
            raise UsageError(f"npuforge inject: --scheduler: got {args.scheduler!r} with --executor local; allowed: "
                             "--scheduler with --executor dask (or without --executor)")
        yield None, f"local process pool of {workers} worker(s)"
        return
    dask_executor = _dask_module()
    with dask_executor.connect(args.scheduler, workers) as client:
        threads = client.nthreads()
        where = f"scheduler {args.scheduler}" if args.scheduler else "LocalCluster"
        # A LocalCluster runs on this machine: its workers reuse this build root's harnesses.
        cache = None if args.scheduler else Path(build_root).resolve()
        yield (functools.partial(dask_executor.execute, client=client, worker_cache=cache),
               f"dask, {where} at {client.scheduler.address}: {len(threads)} worker(s), "
               f"{sum(threads.values())} thread(s)")


def _export_workload(path: Path, campaign, build_root: Path) -> int:
    """``--export-workload FILE``: write the workload file (whole or not at all) and exit."""
    if path.is_dir():
        raise UsageError(f"--export-workload: got '{path}', which is a directory; allowed: a file path")
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"--export-workload: got '{path}', but '{blocking}' is a file; allowed: a file path "
                         "in a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = campaigns.export_workload(campaign, path, build_root=build_root)
    except OSError as error:
        raise UsageError(f"--export-workload: got '{path}'; cannot write it: {error.strerror}") from None
    beats_in = sum(map(len, made.workload.inputs.values()))
    beats_out = sum(map(len, made.workload.outputs.values()))
    print(f"wrote {path}: {made.workload.name} on {made.manifest['top']}, {beats_in} input beats, {beats_out} "
          f"expected output beats; design {made.verilog} (manifest {made.verilog.with_name('manifest.json')})")
    return 0


def run(args) -> int:
    campaign = load_campaign(args.campaign, workloads=kind_workloads)
    build_root = args.build_dir or runner.DEFAULT_BUILD_ROOT
    if args.export_workload is not None:
        return _export_workload(args.export_workload, campaign, build_root)
    workers = args.workers or default_workers()
    with _executor(args, workers, build_root) as (execute, executor_text):
        return _inject(args, campaign, build_root, workers, execute, executor_text)


def _inject(args, campaign, build_root: Path, workers: int, execute, executor_text: str) -> int:
    from rich.console import Console

    config, design = campaign.config, campaign.design
    db = args.db or campaigns.default_db_path(campaign, build_root)
    params = " ".join(f"{k}={v}" for k, v in config.workload.params.items())
    print(f"campaign {config.name} ({args.campaign})")
    print(f"design   {design.name}: {design.describe()} (config hash {design.config_hash()[:12]})")
    print(f"workload {config.workload.type} {params}".rstrip(), flush=True)
    with Console(stderr=True).status("starting") as status:
        prepared = campaigns.prepare(campaign, build_root=build_root, on_step=status.update)
    reference = prepared.engine.reference
    print(f"engine   fault-free run {reference.cycles} cycles, checked against the golden model; window "
          f"{prepared.engine.window} cycles; prepared in {prepared.seconds:.1f} s")
    for stratum in prepared.sample.describe():
        where = f" in {stratum['block'] or 'top'}" if stratum["block"] is not None else ""
        print(f"faults   {stratum['model']}{where}: {stratum['samples']} of {stratum['population']:,} "
              f"(bit x cycle points of {stratum['sites']} sites)")
    faults = config.faults
    print(f"sample   {len(prepared.sample.faults)} injections, seed {faults.seed}, timeout "
          f"{config.timeout_factor:g} x fault-free cycles")
    print(f"executor {executor_text}")

    console = Console()
    progress = Progress(console)

    def on_start(total, done, counts):
        print(f"database {db} ({f'resuming: {done} of {total} stored' if done else 'new'})", flush=True)
        progress.start(total, done, counts)

    try:
        summary = campaigns.run(prepared, db=db, workers=workers, batch_size=args.batch,
                                on_start=on_start, on_batch=progress.advance, execute=execute)
    except KeyboardInterrupt:
        progress.stop()
        print(f"stopped  {progress.done} of {len(prepared.sample.faults)} injections stored in {db}; "
              "run the same command to resume", flush=True)
        raise
    finally:
        progress.stop()
    stored = sum(summary.counts.values())
    rate = summary.ran / summary.seconds if summary.seconds > 0 else 0.0
    print(f"done     {stored} of {summary.total} injections stored ({summary.ran} now, {summary.stored_before} "
          f"before) in {summary.seconds:.1f} s, {rate:,.0f} inj/s")
    print("outcomes " + ", ".join(f"{name} {summary.counts[name]}{_percent(summary.counts[name], stored)}"
                                  for name in campaigns.outcome_order()))
    print(f"database {summary.db}")
    print(f"next     npuforge report {summary.db}")
    return 0
