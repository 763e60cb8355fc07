"""The model-level injector against RTL injection on the same faults (issue 21), and its campaign path.

One harness build per design, shared with the campaign tests (the same Verilog: tpe_3x5_seu,
npu_tile_2x3_seu); the matrix2d grid is the one new build. Each design gets >= 2,000
injections, stratified by block; per block, at least 99% must agree at both levels in
outcome and corruption (elements that differ, largest difference).
"""

import dataclasses

import numpy as np
import pytest
import yaml
from conftest import BUILD_ROOT, ROOT

from gen.errors import ConfigError
from npuforge.registry import kind_workloads
from sim.fault.campaign import design_and_workload, prepare, run
from sim.fault.config import load_campaign
from sim.fault.crosscheck import crosscheck
from sim.fault.engine import Engine
from sim.fault.model import Fault, FaultModel, Outcome
from sim.fault.exposure import flip_change
from sim.fault.model_level import ModelEngine
from sim.fault.report import ReportError, build_report
from sim.fault.store import CampaignStore

CAMPAIGNS = ROOT / "tests" / "configs" / "campaigns"
DESIGNS = {  # campaign file, fault models, injections per block and model
    "systolic_os": ("tpe_3x5_seu.yaml", [FaultModel.SEU], 120),
    "matrix2d": ("m2d_4x2_seu.yaml", [FaultModel.SEU, FaultModel.MBU], 170),
    "npu_tile": ("npu_tile_2x3_seu.yaml", [FaultModel.SEU, FaultModel.MEM_SEU, FaultModel.MBU], 700),
}


@pytest.fixture(scope="module")
def engines():
    cache = {}

    def get(arch: str):
        if arch not in cache:
            campaign = load_campaign(CAMPAIGNS / DESIGNS[arch][0], workloads=kind_workloads)
            made = design_and_workload(campaign, build_root=BUILD_ROOT)
            rtl = Engine.prepare(made.build_dir, made.verilog, made.manifest, made.workload, build_root=BUILD_ROOT)
            model = ModelEngine.prepare(made.build_dir, made.verilog, made.manifest, made.workload,
                                        build_root=BUILD_ROOT)
            cache[arch] = (rtl, model)
        return cache[arch]
    return get


@pytest.mark.parametrize("arch", list(DESIGNS))
def test_model_level_agrees_with_rtl_per_block(engines, arch):
    rtl, model = engines(arch)
    _, models, samples = DESIGNS[arch]
    check = crosscheck(rtl, model, models=models, samples=samples, seed=11)
    assert check.injections >= 2000
    for block, entry in check.per_block.items():
        assert entry["agreement"] >= 0.99, (block, entry, check.disagreements[:5])
    assert len(check.disagreements) == check.injections - sum(b["agree"] for b in check.per_block.values())
    assert all(d["cause"] for d in check.disagreements)
    # Both outcome classes occur, so agreement is not the trivial all-masked one.
    assert {"masked", "sdc"} <= set(check.per_outcome)
    assert 0 < check.coverage["mapped_bits"] <= check.coverage["all_bits"]


def test_a_wrong_timing_model_is_caught(engines):
    """The comparison can fail: the same model with every exposure one cycle late disagrees widely."""
    rtl, model = engines("systolic_os")
    table = model.plan.exposures
    late = dataclasses.replace(table, first=table.first + 1, last=table.last + 1)
    shifted = dataclasses.replace(model, plan=dataclasses.replace(model.plan, exposures=late))
    check = crosscheck(rtl, shifted, samples=40, seed=2)
    assert check.agreement < 0.9
    assert any("timing model" in d["cause"] for d in check.disagreements)


def test_flip_change_is_the_twos_complement_difference():
    rng = np.random.default_rng(0)
    for width, signed in ((1, False), (4, True), (8, True), (7, False), (21, True)):
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        value = rng.integers(lo, hi + 1, 200)
        position = rng.integers(0, width, 200)
        got = flip_change(value, position, np.full(200, width), np.full(200, int(signed)))
        code = (value & ((1 << width) - 1)) ^ (1 << position)
        flipped = np.where(signed & (code >> (width - 1) == 1), code - (1 << width), code)
        assert np.array_equal(got, flipped - value)


def test_unmapped_faults_and_designs_are_refused_in_one_line(engines, tmp_path):
    rtl, model = engines("systolic_os")
    with pytest.raises(ValueError, match=r"core.pe_0_0.tag_out.*not mapped.*allowed"):
        model.run([Fault(index=0, model=FaultModel.SEU, site="core.pe_0_0.tag_out", bit=0, cycle=3)])
    data = {"kind": "campaign", "name": "ws_model", "design": str(ROOT / "tests" / "configs" / "ws_3x4_s8.yaml"),
            "level": "model", "workload": {"type": "gemm", "jobs": 1, "k": 3, "seed": 1},
            "faults": {"models": ["seu"], "samples": 10}}
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        prepare(load_campaign(path, workloads=kind_workloads), build_root=BUILD_ROOT)
    message = str(error.value)
    assert "\n" not in message and "arch 'systolic_ws'" in message and "allowed" in message
    data["level"] = "gate"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"level: got 'gate'.*'rtl'.*'model'"):
        load_campaign(path)


def test_model_level_campaign_stores_and_reports(tmp_path):
    """``level: model`` runs through the same sampling, store and report; only mapped sites are sampled."""
    data = yaml.safe_load((CAMPAIGNS / "tpe_3x5_seu.yaml").read_text())
    data.update(level="model", design=str(CAMPAIGNS / data["design"]))
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(data))
    prepared = prepare(load_campaign(path, workloads=kind_workloads), build_root=BUILD_ROOT)
    assert prepared.meta["level"] == "model" and isinstance(prepared.engine, ModelEngine)
    assert not any(s["path"].endswith(("tag_out", "in_job", "row")) for s in prepared.manifest["fault_sites"])
    summary = run(prepared, db=tmp_path / "m.sqlite")
    assert summary.complete and summary.counts[Outcome.SDC.value] > 0 and summary.counts[Outcome.MASKED.value] > 0
    with CampaignStore.open(tmp_path / "m.sqlite") as store:
        meta, results = store.meta(), list(store.results())
    assert meta["level"] == "model"
    report = build_report(meta, results)
    assert report["total"]["injections"] == 2000
    assert any("Model-level injections" in line for line in report["assumptions"])
    # Critical vs tolerable SDC: small corruptions count as safe, and the report says so.
    sdcs = [r for r in results if r.outcome is Outcome.SDC]
    threshold = sorted(r.max_abs_diff for r in sdcs)[len(sdcs) // 2]
    tolerant = build_report(meta, results, tolerable_sdc=threshold)
    small = sum(r.max_abs_diff <= threshold and not r.extra_beats for r in sdcs)
    assert tolerant["tolerable_sdc"] == {"threshold": threshold, "count": small} and small > 0
    assert tolerant["total"]["dangerous"] == report["total"]["dangerous"] - small
    assert tolerant["spfm"] > report["spfm"]
    assert any("Critical versus tolerable SDC" in line for line in tolerant["assumptions"])
    with pytest.raises(ReportError, match="tolerable-sdc: got -1; allowed"):
        build_report(meta, results, tolerable_sdc=-1)
