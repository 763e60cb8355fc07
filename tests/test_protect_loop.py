"""The whole protection loop on the 2x3 NPU tile: campaign -> optimiser -> protected design -> campaign.

Runs ``run_loop`` of ``bench/protect.py`` (the loop the benchmark runs at 8x8 and 16x16):
an unprotected campaign (SEUs in every register and memory word, 1000 per block and model),
``npuforge protect --target D --headroom 0.4`` through its Python entry point (areas: the
analytic model calibrated by one generic synthesis of the tile, cached), the protected tile
regenerated from the written config and the same campaign on it. Two harness builds, both
cached under ``build/tests``; the campaigns take seconds.
"""

import importlib.util

import pytest
import yaml

from conftest import BUILD_ROOT, ROOT
from gen.config import load_config, parse_config_data
from sim.fault import metrics

# One worker runs the module (its fixture is the whole loop) beside the other tests of the 2x3 tile.
pytestmark = [pytest.mark.rtl, pytest.mark.xdist_group("npu_tile_2x3")]

DESIGN = ROOT / "tests" / "configs" / "npu_tile_2x3.yaml"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_protect", ROOT / "bench" / "protect.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    bench = _bench()
    design = load_config(DESIGN).normalized()
    work = tmp_path_factory.mktemp("protect_loop")
    record = bench.run_loop(design, work, build_root=BUILD_ROOT, samples=1000,
                            workload={**bench.WORKLOAD, "k": 4}, target="D", headroom=0.4,
                            area_model="estimate", synth=False, log=lambda message: None)
    return record, work


def _row(record, key):
    return next(row for row in record["predicted_vs_measured"] if row["key"] == key)


def test_the_unprotected_tile_misses_asil_d(loop):
    record, _ = loop
    unprotected = record["unprotected_measured"]
    assert unprotected["spfm_high"] < metrics.ASIL_TARGETS["D"].spfm  # protection is needed at all
    assert record["outcomes"]["unprotected"].get("sdc", 0) > 0
    assert not record["outcomes"]["unprotected"].get("detected")  # no mechanism, no alarm


def test_the_written_config_is_the_assignment_and_validates(loop):
    record, work = loop
    assert record["protect"], "the optimiser chose no protection"
    data = yaml.safe_load((work / "protected.yaml").read_text())
    assert data["protect"] == record["protect"]
    config = parse_config_data(data, "protected.yaml")  # a valid npu_tile config with its protect: section
    assert config.kind == "npu_tile"
    chosen = {row["name"]: row["mechanism"] for row in record["blocks"]}
    assert {entry["match"]: entry["mechanism"] for entry in record["protect"]} == \
        {name: m for name, m in chosen.items() if m != "none"}
    assert 0 < record["area"]["table"]["selected_pct"] < record["area"]["table"]["full_dmr_pct"]


def test_the_protected_tile_measures_asil_d_at_the_bound(loop):
    record, _ = loop
    spfm = _row(record, "spfm")
    assert spfm["measured_low"] >= metrics.ASIL_TARGETS["D"].spfm, spfm  # the done-when
    assert record["asil"]["measured_bound"] == "D"
    # The mechanisms work: faults in protected blocks are now detected, not silent.
    assert record["outcomes"]["protected"].get("detected", 0) > 0
    assert record["outcomes"]["protected"].get("sdc", 0) < record["outcomes"]["unprotected"]["sdc"]


def test_prediction_agrees_with_measurement(loop):
    record, _ = loop
    for key, close in (("spfm", 0.002), ("pmhf_fit", 0.2 * _row(record, "pmhf_fit")["measured"])):
        row = _row(record, key)  # inside the measured 95% interval, or within 0.2 points / 20%
        inside = row["measured_low"] <= row["predicted"] <= row["measured_high"]
        assert inside or abs(row["predicted"] - row["measured"]) <= close, row
    spfm = _row(record, "spfm")
    # The prediction's pessimistic bound is pessimistic: at or below the measured point.
    assert spfm["predicted_bound"] <= spfm["measured"]
    assert record["asil"]["predicted_bound"] == "D"
