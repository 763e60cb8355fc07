"""The Dask executor: a LocalCluster of 2 worker processes on loopback stores the same rows as the local
executor, also when its workers compile the harness from the shipped Verilog and when a worker is killed
in the middle of a campaign; bad --executor / --scheduler arguments are one-line errors.

The campaign is the small test campaign (``tests/configs/campaigns/tpe_3x5_seu.yaml``), cut to fewer faults.
"""

import dataclasses
import functools
import os
import signal
import socket
from pathlib import Path

import pytest
import yaml
from conftest import BUILD_ROOT, ROOT

from npuforge.cli import main
from sim.fault import campaign as campaigns
from sim.fault.config import load_campaign
from sim.fault.store import CampaignStore

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed "
                                                       "(pip install npuforge[dask])")
dask_executor = pytest.importorskip("sim.fault.dask_executor")

TEST_CAMPAIGN = ROOT / "tests" / "configs" / "campaigns" / "tpe_3x5_seu.yaml"
FAULTS = 1200

pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("tpe_3x5_w8")]


@pytest.fixture(scope="module")
def prepared():
    from npuforge.registry import kind_workloads

    loaded = load_campaign(TEST_CAMPAIGN, workloads=kind_workloads)
    prepared = campaigns.prepare(loaded, build_root=BUILD_ROOT)
    prepared.sample = dataclasses.replace(prepared.sample, faults=prepared.sample.faults[:FAULTS])
    return prepared


@pytest.fixture(scope="module")
def local_rows(prepared, tmp_path_factory):
    """The rows of the local executor (in this process: no fork next to the Dask client's threads)."""
    db = tmp_path_factory.mktemp("local") / "local.sqlite"
    summary = campaigns.run(prepared, db=db, workers=1)
    assert summary.complete and summary.ran == FAULTS
    return _rows(db)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on loopback; workers without a cache named by the task
    reuse the tests' harness builds (``NPUFORGE_WORKER_CACHE``, inherited by the worker processes)."""
    import logging

    saved = os.environ.get(dask_executor.CACHE_ENV)
    os.environ[dask_executor.CACHE_ENV] = str(BUILD_ROOT.resolve())
    try:
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
                distributed.Client(cluster) as client:
            yield cluster, client
    finally:
        if saved is None:
            os.environ.pop(dask_executor.CACHE_ENV, None)
        else:
            os.environ[dask_executor.CACHE_ENV] = saved


def _rows(db: Path):
    with CampaignStore.open(db) as store:
        return list(store.results())


def test_dask_rows_equal_local_rows_with_workers_building_from_shipped_verilog(prepared, local_rows, cluster,
                                                                            tmp_path):
    """Workers given an empty cache compile the harness from the Verilog that travels with the task."""
    _, client = cluster
    cache = tmp_path / "worker-cache"
    execute = functools.partial(dask_executor.execute, client=client, worker_cache=cache)
    summary = campaigns.run(prepared, db=tmp_path / "dask.sqlite", workers=2, execute=execute)
    assert summary.complete and summary.ran == FAULTS
    assert _rows(tmp_path / "dask.sqlite") == local_rows
    assert not client.run_on_scheduler(_batches_run_twice)  # no worker lost: every batch ran once

    built = list(cache.glob("fault-harness/*/stamp"))
    assert len(built) == 1  # both workers, one build (the second waited on the lock, then reused it)
    assert (built[0].parent / "design.v").read_text() == \
        (Path(prepared.engine.binary).parent / "design.v").read_text()
    assert built[0].parent != Path(prepared.engine.binary).parent

    # Resume: a second run over the same database finds everything stored and runs nothing.
    again = campaigns.run(prepared, db=tmp_path / "dask.sqlite", workers=2, execute=execute)
    assert again.ran == 0 and again.stored_before == FAULTS


def test_killed_worker_batches_are_rerun_and_stored_once(prepared, local_rows, cluster, tmp_path):
    """SIGKILL a worker that is running a batch after the first batch is stored: the campaign still
    finishes, every batch reaches the store once, and the rows equal the local executor's."""
    cluster_, client = cluster
    client.wait_for_workers(2)
    pids = client.run(os.getpid)
    killed = []
    handed = []

    def on_batch(results):
        handed.extend(r.fault.index for r in results)
        if not killed:
            busy = [address for address, keys in client.processing().items() if keys]
            assert busy, "no worker is running a batch: the kill would not land mid-campaign"
            killed.append(pids[busy[0]])
            os.kill(pids[busy[0]], signal.SIGKILL)

    execute = functools.partial(dask_executor.execute, client=client)
    summary = campaigns.run(prepared, db=tmp_path / "killed.sqlite", workers=2, batch_size=20,
                            execute=execute, on_batch=on_batch)
    assert killed and summary.complete and summary.ran == FAULTS
    assert client.run_on_scheduler(_batches_run_twice), "the kill did not make Dask re-run a batch"
    assert sorted(handed) == list(range(FAULTS))  # each batch handed over once, none lost
    assert _rows(tmp_path / "killed.sqlite") == local_rows
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    assert killed[0] not in client.run(os.getpid).values()


def _batches_run_twice(dask_scheduler) -> list[str]:
    """Batch task keys the scheduler sent to a worker more than once (transitions into ``processing``)."""
    starts = {}
    for key, _, finish, *_ in dask_scheduler.transition_log:
        if str(key).startswith("npuforge-batch-") and finish == "processing":
            starts[key] = starts.get(key, 0) + 1
    return sorted(str(key) for key, count in starts.items() if count > 1)


def test_inject_command_on_a_scheduler_stores_the_local_rows(cluster, tmp_path, capsys):
    cluster_, _ = cluster
    campaign = tmp_path / "c.yaml"
    data = yaml.safe_load(TEST_CAMPAIGN.read_text())
    data["design"] = str(TEST_CAMPAIGN.parent / data["design"])
    data["faults"]["samples"] = 500
    campaign.write_text(yaml.safe_dump(data))
    common = ["inject", str(campaign), "--build-dir", str(BUILD_ROOT)]
    assert main([*common, "--db", str(tmp_path / "local.sqlite"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "executor local process pool of 1 worker(s)" in out
    assert main([*common, "--db", str(tmp_path / "dask.sqlite"), "--scheduler", cluster_.scheduler_address,
                 "--batch", "25"]) == 0
    out = capsys.readouterr().out
    assert f"executor dask, scheduler {cluster_.scheduler_address} at " in out and ": 2 worker(s), 2 thread(s)" in out
    assert "done     500 of 500 injections stored (500 now, 0 before)" in out
    # Not a terminal: one progress line per 10 % step (20 batches of 5 %: every step is printed once).
    steps = [line for line in out.splitlines() if line.startswith("progress ")]
    assert len(steps) == 10 and steps[-1].startswith("progress 500/500 (100.0%)  ")
    assert _rows(tmp_path / "dask.sqlite") == _rows(tmp_path / "local.sqlite")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("arguments,parts", [
    (["--executor", "threads"], ["argument --executor: invalid choice: 'threads'", "'local', 'dask'"]),
    (["--scheduler", "127.0.0.1:8786"], ["--scheduler: got '127.0.0.1:8786'", "tcp://HOST:PORT"]),
    (["--scheduler", "tcp://127.0.0.1:0"], ["--scheduler: got 'tcp://127.0.0.1:0'", "port 1 to 65535"]),
    (["--scheduler", "tcp://:8786"], ["--scheduler: got 'tcp://:8786'", "tcp://HOST:PORT"]),
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:8786"],
     ["--scheduler: got 'tcp://127.0.0.1:8786' with --executor local", "with --executor dask"]),
    (["--scheduler", "tcp://127.0.0.1:{port}"], ["--scheduler: got 'tcp://127.0.0.1:", "no Dask scheduler answered",
                                                  "allowed: the address of a running scheduler"]),
], ids=["executor", "no-scheme", "port", "no-host", "local-with-scheduler", "unreachable"])
def test_bad_executor_arguments_are_one_line(arguments, parts, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(dask_executor, "CONNECT_TIMEOUT", 1)
    arguments = [a.format(port=_free_port()) for a in arguments]
    db = tmp_path / "c.sqlite"
    assert main(["inject", str(TEST_CAMPAIGN), "--db", str(db), *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npuforge: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, (part, err)
    assert not db.exists()  # nothing ran, nothing written
