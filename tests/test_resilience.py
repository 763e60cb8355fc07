"""``npuforge resilience``: bit flips in the MoE-ViT golden, per layer type, with activation clipping (small sweep)."""

import json

import numpy as np
import pytest
from conftest import ROOT

from gen.config.moevit import load_moevit
from gen.errors import ConfigError
from npuforge.cli import main
from sim.golden.moevit import fixed
from sim.golden.moevit.params import seeded_params
from sim.moevit.resilience import Bounds, flip_bits, sweep, weight_type

MICRO = ROOT / "tests" / "configs" / "moevit" / "micro.yaml"


def test_flip_bits_flips_at_the_rate_and_keeps_the_format():
    rng = np.random.default_rng(0)
    codes = rng.integers(-(1 << 15), 1 << 15, 20000)
    flipped = flip_bits(codes, 16, True, 0.01, rng)
    changed_bits = sum(bin(int(x) & 0xFFFF).count("1") for x in (codes ^ flipped))
    assert 0.8 * 3200 < changed_bits < 1.2 * 3200  # 20,000 x 16 bits x 1%
    assert flipped.min() >= -(1 << 15) and flipped.max() < 1 << 15
    assert np.array_equal(flip_bits(codes, 16, True, 1e-12, rng), codes)


def test_weights_map_to_layer_types():
    cfg = load_moevit(MICRO)
    kinds = {weight_type(key) for key in seeded_params(cfg)}
    assert {"attention", "mlp", "experts", "gate", "layernorm", None} == kinds


def test_small_sweep_measures_clipping(tmp_path):
    cfg = load_moevit(MICRO)
    report = sweep(cfg, seeded_params(cfg, 3), bers=[1e-3, 3e-2], targets=["activations", "weights"],
                   clips=["none", "ranger", "proact"], layers=["all", "experts"], images=2, calibration=2, trials=1)
    points = report["points"]
    assert len(points) == 2 * 3 * 2 * 2 * 2  # tasks x clips x targets x layers x bers
    assert {p["metric"] for p in points} == {"miou", "rmse"}
    # The draws are the same for every protection; without faults "none" is the plain golden.
    assert report["fault_free"]["seg"]["none"]["miou"] >= 0
    heavy = {p["clip"]: p["mean"] for p in points
             if (p["task"], p["target"], p["layer"], p["ber"]) == ("depth", "activations", "all", 3e-2)}
    assert heavy["none"] != report["fault_free"]["depth"]["none"]["rmse"]  # the flips do something
    assert heavy["ranger"] < heavy["none"] and heavy["proact"] < heavy["none"]  # clipping bounds the damage


def test_clip_bounds_are_per_layer_and_per_channel():
    bounds = Bounds(layer={"x": (-2, 3)}, channel={"x": (np.array([-1, 0]), np.array([1, 5]))})
    values = np.array([[-9, 9], [0, 4]])
    assert np.array_equal(bounds.clip("ranger", "x", values), [[-2, 3], [0, 3]])
    assert np.array_equal(bounds.clip("proact", "x", values), [[-1, 5], [0, 4]])
    assert np.array_equal(bounds.clip("none", "x", values), values)


def test_bad_arguments_are_one_line(capsys):
    cfg = load_moevit(MICRO)
    with pytest.raises(ConfigError, match=r"^--clip: got 'tmr'; allowed: none, ranger, proact$"):
        sweep(cfg, seeded_params(cfg), bers=[1e-3], targets=["weights"], clips=["tmr"], layers=["all"])
    for argv, wanted in ((["--ber", "2"], "--ber: .*got '2'; allowed: comma-separated numbers above 0"),
                         (["--ber", "1e-3", "--targets", "bias"], "--targets: got 'bias'; allowed: weights, activations"),
                         (["--ber", "1e-3", "--layers", "conv"], "--layers: got 'conv'; allowed: attention")):
        assert main(["resilience", str(MICRO), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert __import__("re").search(wanted, err), err


def test_command_writes_json_and_plot(tmp_path, capsys):
    out, picture = tmp_path / "r.json", tmp_path / "r.png"
    argv = ["resilience", str(ROOT / "configs" / "moevit" / "tiny.yaml"), "--ber", "1e-3", "--layers", "all",
            "--targets", "activations", "--images", "1", "--calibration", "1", "--trials", "1",
            "--json", str(out), "--plot", str(picture)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert {p["clip"] for p in data["points"]} == {"none", "ranger", "proact"}
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tiny_moevit" in capsys.readouterr().out
