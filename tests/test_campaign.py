"""Fault campaigns: the campaign config, the fault sample, the SQLite store, the executor, resume.

The unit tests use small hand-made manifests and a deterministic stand-in engine
(:class:`StandInEngine`); the end-to-end tests at the bottom run ``npuforge inject`` on a
real design with the real injection engine, kill it with SIGKILL and resume it.
"""

import dataclasses
import hashlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import BUILD_ROOT, ROOT

from gen.errors import ConfigError
from npuforge.cli import main
from sim.fault import campaign as campaigns
from sim.fault.config import load_campaign, parse_campaign_data
from sim.fault.executor import batch_size_for, execute
from sim.fault.model import Fault, FaultModel, InjectionResult, Outcome
from sim.fault.sampling import EmptyPopulation, draw, strata
from sim.fault.store import CampaignStore, StoreError

TEST_CAMPAIGN = ROOT / "tests" / "configs" / "campaigns" / "tpe_3x5_seu.yaml"

GOOD = {
    "kind": "campaign",
    "name": "c1",
    "design": "design.yaml",
    "workload": {"type": "gemm", "jobs": 2, "k": 4, "seed": 1},
    "faults": {"models": ["seu"], "samples": 100, "seed": 1},
}


def _with(**changes):
    """GOOD with ``section__key=value`` changes (``None`` drops the key)."""
    data = json.loads(json.dumps(GOOD))
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = data
        for parent in parents:
            node = node[parent]
        if value is None:
            node.pop(key)
        else:
            node[key] = value
    return data


# (data, substrings of the one-line message)
REJECTED = [
    (_with(kind="tpe"), ["kind: got 'tpe'", "allowed: 'campaign'"]),
    (_with(kind=None), ["kind: missing required key", "'campaign'"]),
    (_with(name="a/b"), ["name: got 'a/b'", "file-name-safe"]),
    (_with(design=None), ["design: missing required key", "a string"]),
    (_with(design=3), ["design: got 3", "a string"]),
    (_with(workload=3), ["workload: got 3", "a mapping with keys type"]),
    (_with(workload__type=None), ["workload.type: missing required key"]),
    (_with(faults__models=["sue"]), ["faults.models", "'sue' is none of them", "'seu', 'mbu', 'mem_seu'"]),
    (_with(faults__models=[]), ["faults.models: got a list", "non-empty list"]),
    (_with(faults__models=["seu", "seu"]), ["faults.models", "'seu' is listed twice"]),
    (_with(faults__samples=0), ["faults.samples: got 0", "an integer from 1 to 10000000"]),
    (_with(faults__samples="100"), ["faults.samples: got '100'", "an integer"]),
    (_with(faults__samples=None), ["faults: got a mapping", "samples (an integer >= 1), or margin"]),
    (_with(faults__margin=0.01), ["faults.margin: got 0.01", "either samples or margin"]),
    (_with(faults__samples=None, faults__margin=0.5), ["faults.margin: got 0.5", "below 0.5"]),
    (_with(faults__samples=None, faults__margin="1e-2"), ["faults.margin: got '1e-2'", "read as text", "1.0e-4"]),
    (_with(faults__samples=None, faults__margin=0.01, faults__confidence=1.0),
     ["faults.confidence: got 1.0", "above 0.5 and below 1"]),
    (_with(faults__confidence=0.99), ["faults.confidence: got 0.99", "only together with margin"]),
    (_with(faults__seed=-1), ["faults.seed: got -1", "an integer from 0"]),
    (_with(faults__mbu_width=1), ["faults.mbu_width: got 1", "an integer from 2 to 64"]),
    (_with(faults__stratify="blocks"), ["faults.stratify: got 'blocks'", "one of 'none', 'block'"]),
    (_with(faults__sead=1), ["faults.sead: unknown key (did you mean 'seed'?)", "allowed keys: models, samples"]),
    (_with(timeout_factor=0.5), ["timeout_factor: got 0.5", "a number from 1 to 100"]),
    (_with(timeout_factor=True), ["timeout_factor: got true", "a number from 1 to 100"]),
    (_with(fit_per_bit={"register": "1e-4"}), ["fit_per_bit.register: got '1e-4'", "read as text"]),
    (_with(fit_per_bit={"memory": 0.0}), ["fit_per_bit.memory: got 0.0", "a number > 0"]),
    (_with(fit_per_bit={"flop": 1.0}), ["fit_per_bit.flop: unknown key", "allowed keys: register, memory"]),
    (_with(target_asil="E"), ["target_asil: got 'E'", "one of 'QM', 'A', 'B', 'C', 'D'"]),
    (_with(targt_asil="D"), ["targt_asil: unknown key (did you mean 'target_asil'?)"]),
    ([1], ["top level: got a list", "a mapping of campaign keys"]),
]


@pytest.mark.parametrize("data,parts", REJECTED, ids=[str(i) for i in range(len(REJECTED))])
def test_rejected_campaign_gives_one_line(data, parts):
    with pytest.raises(ConfigError) as caught:
        parse_campaign_data(data, "c.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("c.yaml: ")
    for part in parts:
        assert part in message, (part, message)


def test_defaults_are_documented_values():
    config = parse_campaign_data(_with(faults__samples=None, faults__margin=0.02), "c.yaml")
    faults = config.normalized()["faults"]
    assert (faults["confidence"], faults["mbu_width"], faults["stratify"]) == (0.95, 2, "none")
    assert config.timeout_factor == 4.0 and config.target_asil == "D"
    assert config.fit_per_bit.register == 1.0e-4 and config.fit_per_bit.memory == 1.0e-3
    assert config.workload.params == {"jobs": 2, "k": 4, "seed": 1}


def _fake_gemm(cfg, manifest, *, jobs: int, k: int, seed: int = 1):
    raise AssertionError("not called by load_campaign")


def _write_campaign(tmp_path, data, design=ROOT / "tests" / "configs" / "tpe_1x1_w4.yaml"):
    (tmp_path / "design.yaml").write_text(Path(design).read_text())
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(data) if isinstance(data, dict) else data)
    return path


@pytest.mark.parametrize("data,parts", [
    (_with(workload__type="conv"), ["workload.type: got 'conv'", "one of 'gemm' (the workloads of kind 'tpe')"]),
    (_with(workload__jobz=2), ["workload.jobz: unknown key (did you mean 'jobs'?)",
                               "allowed keys of workload 'gemm': type, jobs, k, seed"]),
    (_with(workload__k=None), ["workload.k: missing required key of workload 'gemm'"]),
    (_with(workload__k="4"), ["workload.k: got '4'", "an integer"]),
    (_with(workload__jobs=True), ["workload.jobs: got true", "an integer"]),
    (_with(design="nothere.yaml"), ["design: got 'nothere.yaml'", "is not a file"]),
    # Found by a config fuzz: the path was echoed raw, so a newline in the value split the line.
    (_with(design="sub\ndesign.yaml"), ["design: got 'sub\\ndesign.yaml'", "sub\\ndesign.yaml' is not a file"]),
    (_with(design="a\u2028b\r.yaml"), ["design: got 'a\\u2028b\\r.yaml'", "is not a file"]),
])
def test_workload_and_design_errors(tmp_path, data, parts):
    path = _write_campaign(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_campaign(path, workloads=lambda design: {"gemm": _fake_gemm})
    message = str(caught.value)
    assert message.splitlines() == [message] and message.startswith(f"{path}: ")
    for part in parts:
        assert part in message, (part, message)


def test_campaign_file_errors(tmp_path):
    path = _write_campaign(tmp_path, "kind: campaign\nkind: campaign\n")
    with pytest.raises(ConfigError, match=r":2:1: not valid YAML: duplicate key 'kind'"):
        load_campaign(path)
    path.write_text(yaml.safe_dump(_with()))
    (tmp_path / "design.yaml").write_text("kind: tpe\nname: 8x8\n")  # the design's own errors name its file
    with pytest.raises(ConfigError, match=r"design.yaml: .*name: got '8x8'"):
        load_campaign(path)


def test_loaded_campaign_resolves_design_and_workload(tmp_path):
    path = _write_campaign(tmp_path, _with())
    loaded = load_campaign(path, workloads=lambda design: {"gemm": _fake_gemm})
    assert loaded.design.name == "tpe_1x1_w4" and loaded.workload is _fake_gemm
    assert loaded.design_path == tmp_path / "design.yaml"


# ------------------------------------------------------------------------------ sampling

def _site(path, width, block, depth=None):
    site = {"path": path, "kind": "memory" if depth else "register", "width": width, "block": block,
            "aliases": []}
    if depth:
        site["depth"] = depth
    return site


MANIFEST = {"fault_sites": [
    _site("core.state", 1, "core"),
    _site("core.count", 3, "core"),
    _site("core.pe_0.acc", 12, "core.pe_0"),
    _site("core.pe_0.a", 8, "core.pe_0"),
    _site("core.pe_1.acc", 12, "core.pe_1"),
    _site("core.buf.mem", 4, "core.buf", depth=5),
]}


def test_population_follows_the_stated_rules():
    seu, mbu, mem = strata(MANIFEST, [FaultModel.SEU, FaultModel.MBU, FaultModel.MEM_SEU], window=10, mbu_width=3)
    assert seu.population == (1 + 3 + 12 + 8 + 12) * 10
    # k = 3 adjacent bits fit from start bits 0 .. width - 3; the 1-bit register is no mbu site.
    assert mbu.sites == ("core.count", "core.pe_0.acc", "core.pe_0.a", "core.pe_1.acc")
    assert mbu.population == (1 + 10 + 6 + 10) * 10
    assert mem.population == 4 * 5 * 10
    by_block = strata(MANIFEST, [FaultModel.SEU], window=10, stratify="block")
    assert [(s.block, s.population) for s in by_block] == [("core", 40), ("core.pe_0", 200), ("core.pe_1", 120)]


def test_empty_populations_are_reported():
    with pytest.raises(EmptyPopulation, match="no memories"):
        strata({"fault_sites": MANIFEST["fault_sites"][:5]}, [FaultModel.MEM_SEU], window=10)
    with pytest.raises(EmptyPopulation, match="no register is 13 or more bits wide"):
        strata(MANIFEST, [FaultModel.MBU], window=10, mbu_width=13)


def _valid(fault: Fault, window: int, mbu_width: int = 2) -> bool:
    site = next(s for s in MANIFEST["fault_sites"] if s["path"] == fault.site)
    if fault.model is FaultModel.MEM_SEU:
        return site["kind"] == "memory" and 0 <= fault.word < site["depth"] and 0 <= fault.bit < site["width"] \
            and fault.width == 1
    width = mbu_width if fault.model is FaultModel.MBU else 1
    return (site["kind"] == "register" and fault.word is None and fault.width == width
            and 0 <= fault.bit and fault.bit + width <= site["width"] and 0 <= fault.cycle < window)


def test_sample_is_deterministic_indexed_and_inside_the_population():
    models = [FaultModel.SEU, FaultModel.MBU, FaultModel.MEM_SEU]
    first = draw(MANIFEST, models, window=50, seed=5, samples=300, mbu_width=4)
    again = draw(MANIFEST, models, window=50, seed=5, samples=300, mbu_width=4)
    other = draw(MANIFEST, models, window=50, seed=6, samples=300, mbu_width=4)
    assert first.faults == again.faults and first.faults != other.faults
    assert [f.index for f in first.faults] == list(range(900))
    assert Counter(f.model for f in first.faults) == {m: 300 for m in models}
    assert all(_valid(f, 50, 4) for f in first.faults)
    assert len(set((f.model, f.site, f.bit, f.word, f.cycle) for f in first.faults)) == 900  # no repeats
    # Models are shuffled together: any prefix (an interrupted run) mixes them.
    assert len({f.model for f in first.faults[:30]}) == 3


def test_sample_of_the_whole_population_is_exhaustive():
    window = 7
    sample = draw(MANIFEST, [FaultModel.MBU], window=window, seed=1, samples=10**6, mbu_width=3)
    points = {(f.site, f.bit, f.cycle) for f in sample.faults}
    expected = {(s["path"], b, c) for s in MANIFEST["fault_sites"] if s["kind"] == "register"
                for b in range(s["width"] - 2) for c in range(window)}
    assert len(sample.faults) == len(expected) and points == expected


def _chi_square(counts: dict, expected: dict) -> float:
    return sum((counts.get(key, 0) - e) ** 2 / e for key, e in expected.items())


def test_sample_is_uniform_over_bits_and_cycles():
    """Chi-square of per-(site, bit) and per-cycle counts against uniform, far below a 6-sigma bound."""
    window, n = 2000, 20_000
    sample = draw(MANIFEST, [FaultModel.SEU], window=window, seed=11, samples=n)
    registers = [s for s in MANIFEST["fault_sites"] if s["kind"] == "register"]
    bits = [(s["path"], b) for s in registers for b in range(s["width"])]
    by_bit = Counter((f.site, f.bit) for f in sample.faults)
    by_cycle = Counter(f.cycle for f in sample.faults)
    for counts, cells in ((by_bit, bits), (by_cycle, range(window))):
        cells = list(cells)
        dof = len(cells) - 1
        statistic = _chi_square(counts, {cell: n / len(cells) for cell in cells})
        assert statistic < dof + 6 * math.sqrt(2 * dof), statistic
    # The acc registers (12 bits) get 12/36 of the faults each, the 1-bit state 1/36.
    per_site = Counter(f.site for f in sample.faults)
    assert abs(per_site["core.pe_0.acc"] / n - 12 / 36) < 0.02
    assert abs(per_site["core.state"] / n - 1 / 36) < 0.006


def test_stratified_sample_has_samples_per_block():
    sample = draw(MANIFEST, [FaultModel.SEU], window=10, seed=2, samples=100, stratify="block")
    blocks = {s["path"]: s["block"] for s in MANIFEST["fault_sites"]}
    per_block = Counter(blocks[f.site] for f in sample.faults)
    assert per_block == {"core": 40, "core.pe_0": 100, "core.pe_1": 100}  # "core" holds only 40 points
    assert [(d["block"], d["samples"], d["population"]) for d in sample.describe()] == [
        ("core", 40, 40), ("core.pe_0", 100, 200), ("core.pe_1", 100, 120)]


def _leveugle(population: int, margin: float, t: float) -> int:
    """n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p))), p = 0.5, rounded up (written out independently)."""
    return math.ceil(population / (1 + margin ** 2 * (population - 1) / (t * t * 0.25)))


def test_sample_size_from_margin_and_confidence():
    big = {"fault_sites": [_site("core.r", 64, "core")]}
    sample = draw(big, [FaultModel.SEU], window=10**6, seed=1, margin=0.05, confidence=0.95)
    assert len(sample.faults) == _leveugle(64 * 10**6, 0.05, 1.959964) == 385
    sample = draw(MANIFEST, [FaultModel.SEU], window=10, seed=1, margin=0.05, confidence=0.99, stratify="block")
    assert [d["samples"] for d in sample.describe()] == [_leveugle(n, 0.05, 2.575829) for n in (40, 200, 120)]


# --------------------------------------------------------------------------------- store

def _meta(**changes):
    meta = {"config": parse_campaign_data(_with(), "c.yaml").normalized(), "design": {"kind": "tpe"},
            "design_hash": "ab" * 32, "engine": {"harness": "t-abcd"}, "manifest": {"top": "t"}, "reference": {"cycles": 40, "outputs": [1, 2]},
            "window": 40, "population": 1440, "strata": [], "fit_per_bit": {"register": 1e-4, "memory": 1e-3},
            "target_asil": "D"}
    meta.update(changes)
    return meta


def _result(index, outcome=Outcome.MASKED, **fields):
    fault = Fault(index=index, model=FaultModel.SEU, site="core.pe_0.acc", bit=index % 12, cycle=index % 40)
    return InjectionResult(fault=fault, outcome=outcome, **fields)


def test_store_round_trip_and_resume(tmp_path):
    db = tmp_path / "c.sqlite"
    with CampaignStore.open(db, create=_meta()) as store:
        assert store.done_indices() == set() and store.meta()["window"] == 40
        wide = _result(2, Outcome.SDC, differing=3, max_abs_diff=2**64 + 5, cycles=41, alarms=("parity",),
                       extra_beats=2)
        memory = InjectionResult(fault=Fault(index=1, model=FaultModel.MEM_SEU, site="core.buf.mem", bit=3,
                                             cycle=9, word=4), outcome=Outcome.HANG, cycles=160)
        assert store.add([_result(5), wide, memory]) == 3
        assert store.add([_result(5), _result(7)]) == 1  # an identical re-run row is accepted, not repeated
    assert sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with CampaignStore.open(db, create=_meta()) as store:  # resume: same campaign
        assert store.done_indices() == {1, 2, 5, 7}
        assert list(store.results()) == [memory, wide, _result(5), _result(7)]
        assert store.outcome_counts() == {"masked": 2, "sdc": 1, "hang": 1, "detected": 0, "corrected": 0}
        meta = store.meta()
        assert meta["format"] == 2 and meta["reference"] == {"cycles": 40, "outputs": [1, 2]}
    with CampaignStore.open(db) as store:  # read-only use (the report)
        assert store.count() == 4


#: The injections table of format 1 (before extra_beats), as its files hold it.
FORMAT_1_TABLE = """CREATE TABLE injections (idx INTEGER PRIMARY KEY, model TEXT NOT NULL, site TEXT NOT NULL,
    bit INTEGER NOT NULL, word INTEGER, width INTEGER NOT NULL, cycle INTEGER NOT NULL, outcome TEXT NOT NULL,
    differing INTEGER NOT NULL, max_abs_diff NOT NULL, cycles INTEGER NOT NULL, alarms TEXT NOT NULL)"""


def test_store_reads_format_1_files_but_does_not_resume_them(tmp_path):
    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(FORMAT_1_TABLE)
    db.executemany("INSERT INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in {**_meta(), "format": 1}.items()])
    db.execute("INSERT INTO injections VALUES (3, 'seu', 'core.pe_0.acc', 3, NULL, 1, 3, 'sdc', 1, 4, 40, '[]')")
    db.commit()
    db.close()
    with CampaignStore.open(old) as store:  # the report reads it: extra_beats 0, the tail not watched
        assert list(store.results()) == [_result(3, Outcome.SDC, differing=1, max_abs_diff=4, cycles=40)]
        assert not store.watched_tail and store.meta()["format"] == 1
        with pytest.raises(StoreError, match="format 1 database is only read"):
            store.add([_result(4)])
    with pytest.raises(ConfigError) as caught:
        CampaignStore.open(old, create=_meta())
    message = str(caught.value)
    assert "\n" not in message and "old.sqlite: format: got 1" in message and "allowed: format 2, or a new --db" \
        in message
    with CampaignStore.open(tmp_path / "new.sqlite", create=_meta()) as store:
        assert store.watched_tail


def test_store_refuses_a_different_result_for_a_stored_index(tmp_path):
    with CampaignStore.open(tmp_path / "c.sqlite", create=_meta()) as store:
        store.add([_result(3)])
        with pytest.raises(StoreError, match="injection 3 is stored as .* not reproducible"):
            store.add([_result(4), _result(3, Outcome.SDC, differing=1)])
        assert store.done_indices() == {3}  # the failed batch left nothing behind
        assert next(store.results()).outcome is Outcome.MASKED


@pytest.mark.parametrize("change,parts", [
    ({"config": parse_campaign_data(_with(faults__seed=2), "c.yaml").normalized()},
     ["faults.seed: got 2", "holds another campaign with 1", "or a new --db"]),
    ({"config": parse_campaign_data(_with(target_asil="B"), "c.yaml").normalized()},
     ["target_asil: got 'B'", "with 'D'"]),
    ({"design_hash": "cd" * 32}, ["the design changed (config or Verilog)"]),
    ({"engine": {"harness": "t-0123"}}, ["the injection engine changed (harness sources or Verilator)"]),
    ({"window": 41}, ["window differs: 40 stored, 41 now"]),
    ({"reference": {"cycles": 40, "outputs": [1, 3]}}, ["reference.outputs[1] differs: 2 stored, 3 now"]),
])
def test_store_refuses_another_campaign(tmp_path, change, parts):
    db = tmp_path / "c.sqlite"
    CampaignStore.open(db, create=_meta()).close()
    with pytest.raises(ConfigError) as caught:
        CampaignStore.open(db, create=_meta(**change))
    assert "\n" not in str(caught.value)
    for part in parts:
        assert part in str(caught.value), str(caught.value)
    moved = parse_campaign_data(_with(design="elsewhere/design.yaml"), "c.yaml").normalized()
    CampaignStore.open(db, create=_meta(config=moved)).close()  # the design path may change; its hash may not


def test_store_refuses_foreign_files(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("not a database at all, just some text that is long enough" * 20)
    with pytest.raises(ConfigError, match="not a campaign database"):
        CampaignStore.open(text, create=_meta())
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)")
    with pytest.raises(ConfigError, match=r"not a campaign database \(tables: t\)"):
        CampaignStore.open(other, create=_meta())
    with pytest.raises(ConfigError, match="no such campaign database"):
        CampaignStore.open(tmp_path / "missing.sqlite")
    empty = tmp_path / "empty.sqlite"  # a run killed while creating the file leaves it empty
    empty.touch()
    CampaignStore.open(empty, create=_meta()).close()
    assert CampaignStore.open(empty).meta()["window"] == 40


# ------------------------------------------------------------------- executor (stand-in engine)

class StandInEngine:
    """A deterministic engine for unit tests: the outcome is a hash of the fault (picklable)."""

    window = 40
    reference = {"cycles": 40, "outputs": [7]}

    def __init__(self, *args, **kwargs):
        pass

    def run(self, faults, *, timeout_factor):
        results = []
        for fault in faults:
            digest = hashlib.sha256(f"{fault.site}/{fault.bit}/{fault.cycle}".encode()).digest()
            outcome = [Outcome.MASKED, Outcome.MASKED, Outcome.SDC, Outcome.HANG][digest[0] % 4]
            results.append(InjectionResult(fault=fault, outcome=outcome, differing=int(outcome is Outcome.SDC),
                                           max_abs_diff=digest[1] if outcome is Outcome.SDC else 0,
                                           cycles=int(timeout_factor * 40) if outcome is Outcome.HANG else 40))
        return results


def _collect(faults, **kwargs):
    got = []
    execute(StandInEngine(), faults, timeout_factor=4, on_batch=got.extend, **kwargs)
    return sorted(got, key=lambda r: r.fault.index)


def test_executor_gives_the_same_results_for_any_workers_and_batches():
    faults = draw(MANIFEST, [FaultModel.SEU], window=40, seed=3, samples=300).faults
    one = _collect(faults, workers=1)
    assert [r.fault for r in one] == faults
    assert _collect(faults, workers=2, batch_size=7) == one
    assert _collect(faults, workers=1, batch_size=1000) == one
    assert batch_size_for(300, 2) == 38 and batch_size_for(10**6, 4) == 2000 and batch_size_for(1, 8) == 1


def test_executor_rejects_results_that_do_not_match_the_batch():
    class Lossy(StandInEngine):
        def run(self, faults, *, timeout_factor):
            return super().run(faults, timeout_factor=timeout_factor)[:-1]

    faults = draw(MANIFEST, [FaultModel.SEU], window=40, seed=3, samples=10).faults
    with pytest.raises(Exception, match="do not match them one to one"):
        execute(Lossy(), faults, timeout_factor=4)


# ------------------------------------------------------------- orchestration (stand-in engine)

def _stand_in_campaign(tmp_path, **changes):
    path = _write_campaign(tmp_path, _with(**changes))
    return load_campaign(path, workloads=lambda design: {"gemm": lambda cfg, manifest, **params: params})


def _rows(db):
    with CampaignStore.open(db) as store:
        return list(store.results())


def test_campaign_run_resumes_after_a_crash_with_identical_rows(tmp_path):
    build_root = tmp_path / "build"
    loaded = _stand_in_campaign(tmp_path, faults__samples=120)
    prepared = campaigns.prepare(loaded, build_root=build_root, engine_factory=StandInEngine)
    assert (prepared.build_dir / "rtl" / "manifest.json").is_file()
    assert prepared.meta["design_hash"] == campaigns.design_hash(prepared.manifest)
    assert prepared.meta["population"] == 1 * 40 * sum(  # tpe_1x1_w4: registers x window
        s["width"] for s in prepared.manifest["fault_sites"])

    clean = campaigns.run(prepared, db=tmp_path / "clean.sqlite", batch_size=10)
    assert clean.complete and (clean.ran, clean.stored_before) == (120, 0)

    crashed, batches = tmp_path / "crashed.sqlite", []

    def crash_after_three(results):
        batches.append(results)
        if len(batches) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        campaigns.run(prepared, db=crashed, batch_size=10, on_batch=crash_after_three)
    assert len(_rows(crashed)) == 30
    resumed = campaigns.run(prepared, db=crashed, batch_size=7)
    assert (resumed.stored_before, resumed.ran) == (30, 90)
    assert _rows(crashed) == _rows(tmp_path / "clean.sqlite")
    assert resumed.counts == clean.counts and sum(clean.counts.values()) == 120

    again = _stand_in_campaign(tmp_path, faults__samples=121)
    changed = campaigns.prepare(again, build_root=build_root, engine_factory=StandInEngine)
    with pytest.raises(ConfigError, match="faults.samples: got 121, but .* holds another campaign with 120"):
        campaigns.run(changed, db=crashed)


def test_campaign_errors_name_the_campaign_file(tmp_path):
    loaded = _stand_in_campaign(tmp_path, faults__models=["mem_seu"])
    with pytest.raises(ConfigError) as caught:
        campaigns.prepare(loaded, build_root=tmp_path / "build", engine_factory=StandInEngine)
    assert str(caught.value) == (f"{loaded.source}: faults.models: got 'mem_seu', but the design has no memories "
                                 "in tpe_1x1_w4; allowed: models with sites in the design (of seu, mbu)")

    def picky(cfg, manifest, **params):
        raise ConfigError("workload.k: 99 is not allowed; tpe_1x1_w4 takes an integer 1 <= K <= 16")

    path = _write_campaign(tmp_path, _with())
    with pytest.raises(ConfigError, match=rf"^{path}: workload.k: 99 is not allowed"):
        campaigns.prepare(load_campaign(path, workloads=lambda design: {"gemm": picky}),
                          build_root=tmp_path / "build", engine_factory=StandInEngine)


# ------------------------------------------------- end to end: npuforge inject, the real engine

def _npuforge(*args, **popen):
    executable = Path(sys.executable).parent / "npuforge"
    command = [str(executable), *map(str, args)]
    env = {**os.environ, "NPUFORGE_BUILD_DIR": str(BUILD_ROOT)}
    if popen:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                **popen)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
            return connection.execute("SELECT COUNT(*) FROM injections").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.rtl
@pytest.mark.xdist_group("tpe_3x5_w8")
def test_inject_killed_and_resumed_equals_an_uninterrupted_run(tmp_path):
    """2,000 SEUs on the 3x5 array: a clean run on 2 workers (default database path), a run on 2 workers
    killed with SIGKILL after some batches are stored and resumed on 1 worker: identical rows."""
    clean = BUILD_ROOT / "campaigns" / "tpe_3x5_seu.sqlite"
    for stale in clean.parent.glob(clean.name + "*"):
        stale.unlink()
    done = _npuforge("inject", TEST_CAMPAIGN, "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"database {clean} (new)" in done.stdout
    assert "done     2000 of 2000 injections stored (2000 now, 0 before)" in done.stdout
    assert f"next     npuforge report {clean}" in done.stdout

    killed = tmp_path / "killed.sqlite"
    # Batches of 2 faults: hundreds of transactions, so the kill lands in the middle of the run.
    process = _npuforge("inject", TEST_CAMPAIGN, "--db", killed, "--workers", "2", "--batch", "2",
                        start_new_session=True)
    deadline = time.monotonic() + 300
    while _stored(killed) < 100 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its worker processes
    process.wait()
    partial = _stored(killed)
    assert 100 <= partial < 2000, partial

    done = _npuforge("inject", TEST_CAMPAIGN, "--db", killed, "--workers", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    resumed_from = int(done.stdout.split("resuming: ")[1].split(" of 2000 stored")[0])
    assert resumed_from >= partial
    assert f"({2000 - resumed_from} now, {resumed_from} before)" in done.stdout
    rows = _rows(killed)
    assert rows == _rows(clean)
    assert [r.fault.index for r in rows] == list(range(2000))

    # What the rows say about the unprotected array: all classes an SEU can cause, detail consistent.
    with CampaignStore.open(clean) as store:
        meta = store.meta()
    window = meta["window"]
    counts = Counter(r.outcome for r in rows)
    assert counts[Outcome.MASKED] > 0 and counts[Outcome.SDC] > 0
    assert counts[Outcome.DETECTED] == counts[Outcome.CORRECTED] == 0  # no alarms in this design
    for r in rows:
        assert 0 <= r.fault.cycle < window and r.alarms == ()
        if r.outcome is Outcome.MASKED:
            assert r.differing == r.max_abs_diff == 0
        if r.outcome is Outcome.HANG:
            assert r.cycles == math.ceil(4 * window)
    assert any(r.differing > 0 and r.max_abs_diff > 0 for r in rows if r.outcome is Outcome.SDC)
    assert meta["population"] == window * sum(s["width"] for s in meta["manifest"]["fault_sites"])
    assert meta["config"]["faults"]["seed"] == 7 and meta["reference"]["cycles"] == window


@pytest.mark.rtl
@pytest.mark.xdist_group("tpe_3x5_w8")
def test_campaign_rows_are_the_engine_results_of_the_sample(tmp_path):
    """The pipeline (sample -> batches on 2 workers -> store) neither loses nor alters a result."""
    from npuforge.registry import kind_workloads

    loaded = load_campaign(TEST_CAMPAIGN, workloads=kind_workloads)
    prepared = campaigns.prepare(loaded, build_root=BUILD_ROOT)
    faults = prepared.sample.faults[:600]
    prepared.sample = dataclasses.replace(prepared.sample, faults=faults)
    summary = campaigns.run(prepared, db=tmp_path / "c.sqlite", workers=2, batch_size=37)
    assert summary.complete and summary.ran == 600
    assert _rows(tmp_path / "c.sqlite") == prepared.engine.run(faults, timeout_factor=4)

    # The same database for a changed campaign: refused, one line, exit code 2.
    changed = tmp_path / "changed.yaml"
    data = yaml.safe_load(TEST_CAMPAIGN.read_text())
    data["design"] = str(TEST_CAMPAIGN.parent / data["design"])
    data["faults"]["seed"] = 8
    changed.write_text(yaml.safe_dump(data))
    done = _npuforge("inject", changed, "--db", tmp_path / "c.sqlite", "--workers", "1")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "faults.seed: got 8, but" in done.stderr and "holds another campaign with 7" in done.stderr


def _read_workload_file(path: Path) -> tuple[list[str], dict, dict]:
    """A workload file read as docs/campaigns.md specifies it, with no npuforge code: its comment lines,
    input beats per sink index, (element fields, expected beats) per source index."""
    lines = path.read_text().splitlines()
    assert lines[0] == "npuforge-fault-spec 1"
    comments = [line for line in lines[1:] if line.startswith("#")]
    words = iter(" ".join(line for line in lines[1:] if not line.startswith("#")).split())
    sinks, sources = {}, {}
    for word in words:
        if word == "sink":
            index, count = int(next(words)), int(next(words))
            sinks[index] = [int(next(words), 16) for _ in range(count)]
        else:
            assert word == "source", word
            index, count, fields = (int(next(words)) for _ in range(3))
            layout = [tuple(int(next(words)) for _ in range(5)) for _ in range(fields)]
            sources[index] = (layout, [int(next(words), 16) for _ in range(count)])
    return comments, sinks, sources


def _element(word: int, offset: int, width: int, signed: int) -> int:
    value = word >> offset & ((1 << width) - 1)
    return value - (1 << width) if signed and value >> (width - 1) else value


def _amaranth_replay(component, beats: list[int], cycles: int) -> list[int]:
    """Drive ``operands`` with ``beats`` at full rate and keep ``results`` ready for ``cycles`` cycles from
    reset, in Amaranth's simulator (the protocol of docs/fault_engine.md); the result beats that left."""
    from amaranth.sim import Simulator

    got = []

    async def bench(ctx):
        sent = 0
        for _ in range(cycles):
            offered = sent < len(beats)
            ctx.set(component.operands.valid, offered)
            ctx.set(component.operands.payload.as_value(), beats[sent] if offered else 0)
            ctx.set(component.results.ready, 1)
            if offered and ctx.get(component.operands.ready):
                sent += 1
            if ctx.get(component.results.valid):
                got.append(ctx.get(component.results.payload.as_value()))
            await ctx.tick()

    simulator = Simulator(component)
    simulator.add_clock(1e-8)
    simulator.add_testbench(bench)
    simulator.run()
    return got


@pytest.mark.xdist_group("tpe_3x5_w8")
def test_exported_workload_replays_in_another_simulator(tmp_path, capsys):
    """``--export-workload`` writes the workload file; read back with the documented format and drawn
    again with the documented generator, it replays in Amaranth's simulator (no harness, no engine) to
    its expected beats, which are the documented draws' products."""
    from gen.registry import kind_of
    from npuforge.cli.inject import kind_workloads
    from sim.fault.workload import spec_text

    path = tmp_path / "exported" / "workload.spec"
    assert main(["inject", str(TEST_CAMPAIGN), "--export-workload", str(path), "--build-dir", str(BUILD_ROOT)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {path}: gemm(jobs=2, k=4, seed=3) on tpe_3x5_w8, 8 input "
                                              "beats, 6 expected output beats; design ")
    assert [p.name for p in path.parent.iterdir()] == ["workload.spec"]  # no temporary left
    comments, sinks, sources = _read_workload_file(path)
    params = json.loads(next(c for c in comments if c.startswith("# params "))[len("# params "):])
    assert params == {"type": "gemm", "jobs": 2, "k": 4, "seed": 3}
    assert "# sink 0 = operands: valid operands__valid, ready operands__ready, payload operands__payload (65 bits)" \
        in comments and "#   field c offset 0 width 21 signed 1 count 5 stride 21" in comments

    # The workload is the engine's: the file is the one Engine.prepare writes for the harness.
    loaded = load_campaign(TEST_CAMPAIGN, workloads=kind_workloads)
    made = campaigns.design_and_workload(loaded, build_root=BUILD_ROOT)
    assert path.read_text() == spec_text(made.manifest, made.workload)

    # The documented generator: numpy's default_rng(seed); per job A (c_rows x K), then B (K x cols).
    cfg = loaded.design
    rng = np.random.default_rng(params["seed"])
    low, high = -(1 << (cfg.operand.width - 1)), (1 << (cfg.operand.width - 1)) - 1
    jobs = [(rng.integers(low, high + 1, size=(cfg.rows, params["k"]), dtype=np.int64),
             rng.integers(low, high + 1, size=(params["k"], cfg.cols), dtype=np.int64)) for _ in range(params["jobs"])]
    # Beat order (k_steps, one step a beat): step k of job j is A[:, k] and B[k, :], last on the job's final step.
    operands = made.manifest["interfaces"][0]["payload"]["fields"]
    a, b, last = (next(f for f in operands if f["name"] == name) for name in ("a", "b", "last"))
    decoded = [([_element(w, a["offset"] + i * a["stride"], a["width"], 1) for i in range(a["count"])],
                [_element(w, b["offset"] + j * b["stride"], b["width"], 1) for j in range(b["count"])],
                _element(w, last["offset"], 1, 0)) for w in sinks[0]]
    assert decoded == [(list(A[:, k]), list(B[k]), int(k == params["k"] - 1))
                       for A, B in jobs for k in range(params["k"])]
    # Expected beats: the rows of each job's C = A @ B (no wrap at K = 4 in 21 bits).
    (layout,), expected = sources[0]
    offset, width, signed, count, stride = layout
    rows = [[_element(w, offset + e * stride, width, signed) for e in range(count)] for w in expected]
    assert rows == [list(row) for A, B in jobs for row in A @ B]

    # Replayed without the campaign engine: the same beats leave, and none after them.
    component = kind_of(cfg).build(cfg)
    assert _amaranth_replay(component, sinks[0], cycles=4 * (len(sinks[0]) + len(expected)) + 20) == expected


def test_export_workload_refuses_bad_paths_in_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for bad, message in ((tmp_path, "which is a directory"), (tmp_path / "file" / "w.spec", "is a file")):
        assert main(["inject", str(TEST_CAMPAIGN), "--export-workload", str(bad), "--build-dir", str(BUILD_ROOT)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("npuforge: error: --export-workload: got ") and message in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_validate_accepts_campaigns(capsys, tmp_path):
    assert main(["validate", str(TEST_CAMPAIGN)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["campaign"]["faults"]["samples"] == 2000 and shown["design"]["name"] == "tpe_3x5_w8"
    bad = tmp_path / "bad.yaml"
    data = yaml.safe_load(TEST_CAMPAIGN.read_text())
    data["design"] = str(TEST_CAMPAIGN.parent / data["design"])
    data["workload"]["type"] = "conv"
    bad.write_text(yaml.safe_dump(data))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"npuforge: error: {bad}: workload.type: got 'conv'; allowed: one of 'gemm' " \
                  "(the workloads of kind 'tpe')\n"


def test_campaign_guide_lists_the_current_config_keys():
    from gen.docs import _rows
    from sim.fault.config import CampaignConfig

    guide = (ROOT / "docs" / "campaigns.md").read_text()
    table = "\n".join(_rows(CampaignConfig))
    assert table in guide, "update the key table of docs/campaigns.md from gen.docs._rows(CampaignConfig)"


def test_progress_prints_plain_lines_when_not_on_a_terminal(capsys):
    """Not on a terminal: one line each time another 10 % of the campaign is done, none in between."""
    import io

    from rich.console import Console

    from npuforge.cli import inject

    progress = inject.Progress(Console(file=io.StringIO()))
    progress.start(100, 4, Counter({"masked": 4}))
    progress.advance([_result(4, Outcome.SDC), _result(5)])  # 6 %: no line
    assert capsys.readouterr().out == ""
    progress.advance([_result(i) for i in range(6, 12)] + [_result(12, Outcome.HANG)])  # 13 %
    line = capsys.readouterr().out
    assert line.startswith("progress 13/100 (13.0%)  ") and line.endswith("masked 11  sdc 1  hang 1\n")
    assert " inj/s  ETA " in line and line.count("\n") == 1
    progress.advance([_result(i) for i in range(13, 19)])  # 19 %: still in the 10-20 % step
    assert capsys.readouterr().out == ""
    progress.advance([_result(i) for i in range(19, 55)])  # 55 %: one line, however many steps it passes
    assert capsys.readouterr().out.startswith("progress 55/100 (55.0%)  ")
    progress.advance([_result(i) for i in range(55, 100)])
    progress.stop()
    assert capsys.readouterr().out.startswith("progress 100/100 (100.0%)  ")
