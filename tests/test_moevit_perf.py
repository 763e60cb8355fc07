"""Analytic performance model of a MoE-ViT (``sim/perf/moevit.py``) and ``npuforge perf``."""

import json

import pytest
import yaml
from conftest import ROOT

from gen.config.moevit import MoevitConfig, load_moevit, load_moevit_hw
from gen.errors import ConfigError
from npuforge.cli import main
from sim.perf.moevit import analyse, edge_moe_cycles, operators

CONFIGS = ROOT / "configs" / "moevit"


@pytest.fixture(scope="module")
def edge():
    return load_moevit(CONFIGS / "edge_moe.yaml")


@pytest.fixture(scope="module")
def hw():
    return load_moevit_hw(CONFIGS / "edge_moe_hw.yaml")


def test_edge_moe_work_matches_the_reference(edge, hw):
    """edge-moe.md: about 780M MACs per image (QKV+proj 19.0M, QK and AV 6.4M, MLP or top-2 MoE 38.0M per
    layer; patch embed 18.9M); weights about 5.3 MB (dense layers) + 30 MB (MoE layers, all experts)."""
    ops = {op.name: op for op in operators(edge)}
    assert ops["patch_embed"].macs == 128 * 768 * 192
    assert ops["layer0.qkv"].macs + ops["layer0.proj"].macs == 129 * 192 * 768  # 19.0M
    assert ops["layer0.qk"].macs + ops["layer0.av"].macs == 2 * 3 * 129 * 129 * 64  # 6.39M
    assert ops["layer0.fc1"].macs + ops["layer0.fc2"].macs == 2 * 129 * 192 * 768  # 38.0M
    assert ops["layer1.expert_fc1"].macs + ops["layer1.expert_fc2"].macs == 2 * 129 * 2 * 192 * 384  # 38.0M
    result = analyse(edge, hw)
    totals = result["totals"]
    assert abs(totals["macs"] / 780e6 - 1) < 0.01
    def weights(layers):
        return sum(op.weight_bytes for op in operators(edge) if op.name.startswith(tuple(f"layer{i}." for i in layers)))

    dense, moe = weights(range(0, 12, 2)), weights(range(1, 12, 2))
    assert abs(dense / 5.3e6 - 1) < 0.02 and abs(moe / 30e6 - 1) < 0.02


def test_edge_moe_schedule_matches_the_reference(edge, hw):
    """edge-moe.md: about 427K cycles per layer, 5.20M per image (17.3 ms at 300 MHz), attention about half."""
    totals = analyse(edge, hw)["totals"]
    assert abs(totals["edge_moe_cycles"] / 5.2e6 - 1) < 0.05
    assert abs(totals["edge_moe_cycles_per_layer"] / 427e3 - 1) < 0.01
    assert 0.4 < totals["edge_moe_attention_share"] < 0.6
    assert totals["edge_moe_ms"] == pytest.approx(totals["edge_moe_cycles"] / 300e3)
    assert totals["mac_units"] == 448
    # the loop trip counts, one by one
    ops = {op.name: op for op in operators(edge)}
    assert edge_moe_cycles(ops["patch_embed"], edge, hw) == 3 * 128 * (256 // 32) * (192 // 8)
    assert edge_moe_cycles(ops["layer0.qkv"], edge, hw) == 129 * (576 // 16) * (192 // 16)
    assert edge_moe_cycles(ops["layer0.qk"], edge, hw) == 33 * 129 * (192 // 8)
    assert edge_moe_cycles(ops["layer1.expert_fc2"], edge, hw) == 129 * 2 * (192 // 16) * (384 // 16)


def test_roofline_is_the_larger_bound_per_operator(edge, hw):
    result = analyse(edge, hw)
    for row in result["operators"]:
        assert row["roofline_cycles"] == max(row["compute_cycles"], row["memory_cycles"])
        assert row["memory_cycles"] == pytest.approx(row["bytes"] / hw.bytes_per_cycle)
        if row["engine"] in ("linear", "attention", "patch_embed"):
            # the schedule never beats its own engine's compute bound
            assert row["edge_moe_cycles"] >= row["compute_cycles"]
    totals = result["totals"]
    assert totals["roofline_cycles"] == pytest.approx(sum(r["roofline_cycles"] for r in result["operators"]))
    assert totals["roofline_cycles"] <= totals["edge_moe_cycles"] + totals["other_cycles"]
    # halving the bandwidth makes the expert layers memory-bound
    slow = hw.model_copy(update={"ports": 1})
    experts = [r for r in analyse(edge, slow)["operators"] if r["kind"] == "expert_fc1"]
    assert all(r["bound"] == "memory" for r in experts)


def test_small_random_configs_scale():
    data = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    hw = load_moevit_hw(CONFIGS / "edge_moe_hw.yaml")
    base = analyse(MoevitConfig.model_validate(data), hw)["totals"]
    deeper = analyse(MoevitConfig.model_validate(data | {"layers": 8}), hw)["totals"]
    assert deeper["edge_moe_cycles_per_layer"] == pytest.approx(base["edge_moe_cycles_per_layer"])
    top1 = analyse(MoevitConfig.model_validate(data | {"top_k": 1}), hw)["totals"]
    assert top1["macs"] == base["macs"] - 2 * 65 * 2 * 64 * 128  # two MoE layers, one expert fewer per token


def test_cli_prints_the_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "perf.json"
    assert main(["perf", str(CONFIGS / "edge_moe.yaml"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for expected in ("expert_fc1", "roofline", "Edge-MoE schedule       5,200,704 cycles", "782,719,488"):
        assert expected in text
    data = json.loads(out.read_text())
    assert data["totals"]["edge_moe_cycles"] == 5_200_704 and len(data["operators"]) == 1 + 12 * 10 + 6 + 1
    assert main(["perf", str(CONFIGS / "tiny.yaml"), "--per-layer", "--task", "depth"]) == 0
    assert "layer3.expert_fc2" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["perf", str(CONFIGS / "tiny.yaml"), "--task", "normals"]) == 2
    assert main(["perf", str(CONFIGS / "tiny.yaml"), "--hw", str(CONFIGS / "tiny.yaml")]) == 2
    assert main(["perf", str(ROOT / "configs" / "os_8x8.yaml")]) == 2
    assert main(["perf", str(CONFIGS / "tiny.yaml"), "--json", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4
    assert "--task: got 'normals'; allowed: one of seg, depth" in err[0]
    assert "kind: got 'moevit'; allowed: 'moevit_hw'" in err[1]
    assert "kind: got 'tpe'; allowed: 'moevit'" in err[2]
    assert "which is a directory" in err[3]
    bad = tmp_path / "hw.yaml"
    bad.write_text(yaml.safe_dump(yaml.safe_load((CONFIGS / "edge_moe_hw.yaml").read_text()) | {"port_bits": 0}))
    with pytest.raises(ConfigError, match="port_bits: got 0"):
        load_moevit_hw(bad)


def test_cli_predicts_an_accelerators_own_schedule(tmp_path, capsys):
    """``npuforge perf`` of a ``kind: moevit_accel`` config: sim/perf/accel.py's cycles per operator of the
    compiled network (tests/test_moevit_accel.py holds them against the harness's counters)."""
    accel = ROOT / "tests" / "configs" / "accel_micro_os.yaml"
    out = tmp_path / "accel.json"
    assert main(["perf", str(accel), "--json", str(out), "--latency", "40"]) == 0
    text = capsys.readouterr().out
    for expected in ("ATTENTION", "expert.fc2", "route", "predicted "):
        assert expected in text
    data = json.loads(out.read_text())
    assert data["latency"] == 40 and data["total_cycles"] == sum(op["cycles"] for op in data["operators"])
    assert {op["opcode"] for op in data["operators"]} == {"IM2COL", "LINEAR", "ADD", "LAYERNORM", "ATTENTION", "GATE"}
    assert main(["perf", str(accel), "--latency", "24", "--json", str(out)]) == 0
    faster = json.loads(out.read_text())["total_cycles"]
    assert faster < data["total_cycles"]  # the latency terms follow the memory
    capsys.readouterr()
    assert main(["perf", str(accel), "--hw", str(CONFIGS / "edge_moe_hw.yaml")]) == 2
    assert main(["perf", str(accel), "--task", "normals"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--hw" in err[0] and "--task: got 'normals'" in err[1]
