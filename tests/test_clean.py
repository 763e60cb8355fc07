"""``npuforge clean`` and sim/artefacts.py: what is an artefact, its age and size, what goes and what stays."""

import fcntl
import os
import time

import pytest

from npuforge.cli import main
from sim import artefacts

DAY = 86_400
HARNESS = 2_600_000


def _file(path, size=10, age_days=0.0, read_days=None):
    """A file of ``size`` bytes last modified ``age_days`` ago (and read ``read_days`` ago, default the same)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    _age(path, age_days, read_days)
    return path


def _age(path, age_days, read_days=None):
    now = time.time()
    read = age_days if read_days is None else read_days
    os.utime(path, (now - read * DAY, now - age_days * DAY))


def _age_tree(top, age_days):
    """Every file and directory under ``top`` (and itself) last modified and read ``age_days`` ago."""
    for folder, dirs, files in os.walk(top, topdown=False):
        for name in files + dirs:
            _age(os.path.join(folder, name), age_days)
    _age(top, age_days)


@pytest.fixture
def root(tmp_path):
    """A build root: two harness builds (20 and 2 days old), a config whose model is 30 days old and whose
    runs are new, an old campaign database, a directory that is no artefact."""
    root = tmp_path / "build"
    old_harness = root / "fault-harness" / "top-0123456789abcdef"
    _file(old_harness / "harness", HARNESS)
    _file(root / "fault-harness" / "top-0123456789abcdef.lock", 0)
    _age_tree(old_harness, 20)
    _file(root / "fault-harness" / "top-fedcba9876543210" / "harness", HARNESS, age_days=2)
    config = root / "os_8x8-0123456789ab"
    _file(config / "sim" / "Vos_8x8", 5_000)
    _file(config / "stamp.json", 50)
    _age_tree(config / "sim", 30)
    _age(config / "stamp.json", 30)
    _file(config / "rtl" / "os_8x8.v", 700)
    _age_tree(config / "rtl", 30)
    _file(config / "runs" / "seed1-n50" / "results.json", 300)
    _file(config / "fault" / "workload-0123.spec", 40)
    _age_tree(config / "fault", 9)
    _file(root / "campaigns" / "c.sqlite", 4_000, age_days=40)
    _file(root / "campaigns" / "c.sqlite-wal", 1_000, age_days=40)
    _file(root / "campaigns" / "c.html", 100, age_days=40)
    _file(root / "demo" / "os_8x8.v", 700, age_days=40)
    return root


def _clean(capsys, *args) -> str:
    """The output of ``npuforge clean ARGS``, each run of spaces made one (the columns are padded)."""
    assert main(["clean", *map(str, args)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return "\n".join(" ".join(line.split()) for line in captured.out.splitlines())


def test_scan_knows_the_layout(root):
    found = artefacts.scan(root)
    kinds = {(a.what, a.path.relative_to(root).as_posix()) for a in found.artefacts}
    assert kinds == {("harness build", "fault-harness/top-0123456789abcdef"),
                     ("harness build", "fault-harness/top-fedcba9876543210"),
                     ("Verilator model", "os_8x8-0123456789ab/sim"),
                     ("generated Verilog", "os_8x8-0123456789ab/rtl"),
                     ("simulation runs", "os_8x8-0123456789ab/runs"),
                     ("campaign scratch", "os_8x8-0123456789ab/fault")}
    assert [p.name for p in found.unknown] == ["demo"]  # not campaigns/ without databases=True
    model = next(a for a in found.artefacts if a.what == "Verilator model")
    assert [p.name for p in model.paths] == ["sim", "stamp.json"] and model.size == 5_050
    assert 29.9 < model.age_days(time.time()) < 30.1
    with_databases = artefacts.scan(root, databases=True)
    database = next(a for a in with_databases.artefacts if a.what == "campaign database")
    assert [p.name for p in database.paths] == ["c.sqlite", "c.sqlite-wal"] and database.size == 5_000
    assert sorted(p.name for p in with_databases.unknown) == ["c.html", "demo"]


def test_last_use_is_the_files_access_not_the_directories(root):
    """Running a harness reads it (its access time moves); listing a directory does not count."""
    old = root / "fault-harness" / "top-0123456789abcdef"
    _age(old / "harness", 20, read_days=1)
    assert artefacts.scan(root).artefacts[0].age_days(time.time()) < 1.1
    _age(old / "harness", 20)
    os.utime(old, (time.time(), os.stat(old).st_mtime))  # listed just now
    assert artefacts.scan(root).artefacts[0].age_days(time.time()) > 19.9


def test_dry_run_removes_nothing(root, capsys):
    before = sorted(p for p in root.rglob("*"))
    out = _clean(capsys, "--build-dir", root, "--older-than", 7, "--dry-run")
    assert sorted(p for p in root.rglob("*")) == before
    assert f"would remove harness build 2.6 MB 20.0 days {root}/fault-harness/top-0123456789abcdef" \
        in out
    assert "would remove 4 artefacts, 2.6 MB (Verilator model 1, 5.0 kB; campaign scratch 1, 40 B; " \
           "generated Verilog 1, 700 B; harness build 1, 2.6 MB)" in out
    assert "kept 2 artefacts, 2.6 MB (harness build 1, 2.6 MB; simulation runs 1, 300 B): used in the " \
           "last 7 days" in out
    assert "kept 1 artefact, 5.0 kB (campaign database 1, 5.0 kB): results; --databases removes them" in out
    assert f"left alone 1 not a build artefact: {root}/demo" in out


def test_clean_older_than(root, capsys):
    out = _clean(capsys, "--build-dir", root, "--older-than", 7)
    assert "removed 4 artefacts, 2.6 MB" in out
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert left == ["campaigns/c.html", "campaigns/c.sqlite", "campaigns/c.sqlite-wal", "demo/os_8x8.v",
                    "fault-harness/top-0123456789abcdef.lock", "fault-harness/top-fedcba9876543210/harness",
                    "os_8x8-0123456789ab/runs/seed1-n50/results.json"]
    # Then everything but the databases (and what is not ours); the emptied config directory goes too.
    out = _clean(capsys, "--build-dir", root)
    assert "removed 2 artefacts, 2.6 MB (harness build 1, 2.6 MB; simulation runs 1, 300 B)" in out
    assert not (root / "os_8x8-0123456789ab").exists()
    assert (root / "campaigns" / "c.sqlite").exists() and (root / "demo").exists()
    out = _clean(capsys, "--build-dir", root, "--databases")
    assert "removed 1 artefact, 5.0 kB (campaign database 1, 5.0 kB)" in out
    assert sorted(p.name for p in (root / "campaigns").iterdir()) == ["c.html"]


def test_an_artefact_in_use_is_kept(root, capsys):
    """A process holding the build's lock (building it) keeps it; clean does not wait."""
    with open(root / "fault-harness" / "top-0123456789abcdef.lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = _clean(capsys, "--build-dir", root, "--older-than", 7)
    assert f"kept harness build {root}/fault-harness/top-0123456789abcdef: being built (its lock is held)" in out
    assert "removed 3 artefacts" in out
    assert (root / "fault-harness" / "top-0123456789abcdef" / "harness").exists()


@pytest.mark.parametrize("args, part", [
    (["--older-than", "-1"], "--older-than: got '-1'; allowed: a number of days >= 0"),
    (["--older-than", "nan"], "--older-than: got 'nan'"),
    (["--older-than", "week"], "--older-than: got 'week'"),
    (["--build-dir", "/nonexistent/build"], "--build-dir: got '/nonexistent/build', which is not a directory"),
])
def test_bad_arguments_give_one_line(args, part, capsys):
    assert main(["clean", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and part in err, err


def test_no_build_root_is_nothing_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("npuforge.cli.clean.DEFAULT_BUILD_ROOT", tmp_path / "build")
    assert "does not exist: nothing to remove" in _clean(capsys)
