"""The trained tiny MoE-ViT (models/tiny_moevit.npz): numpy float model = PyTorch model, accuracy on
freshly generated held-out scenes against the trivial baseline, and the cost of the fixed-point
hardware approximations against float."""

import json
from pathlib import Path

import numpy as np
import pytest

from gen.config.moevit import load_moevit, weights_path
from sim.golden.moevit import fixed, reference
from sim.golden.moevit.params import init_params, load_params
from sim.moevit.data import HELD_OUT_SEED, TRAIN_SEED, make_dataset
from sim.moevit.evaluate import cost_against, run_variant
from sim.moevit.metrics import task_metrics, trivial_outputs

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "moevit" / "tiny.yaml"
KINDS = {"seg": "segmentation", "depth": "depth"}
#: Scenes for the accuracy check (the float numpy model takes about 0.1 s a scene and task) and for
#: the fixed-point hardware approximations (seconds a scene and task: the nonlinear goldens run row
#: by row).
ACCURACY_SCENES = 32
FIXED_SCENES = 2


@pytest.fixture(scope="module")
def cfg():
    return load_moevit(CONFIG)


@pytest.fixture(scope="module")
def weights(cfg):
    return load_params(cfg)


@pytest.fixture(scope="module")
def held_out():
    return make_dataset(ACCURACY_SCENES, HELD_OUT_SEED)


@pytest.fixture(scope="module")
def float_outputs(cfg, weights, held_out):
    return reference.forward_all(weights, held_out.images, cfg)


def test_weights_file_is_small_float32_and_complete(cfg, weights):
    path = weights_path(cfg)
    assert path.stat().st_size <= 2 * 1024 * 1024
    with np.load(path) as data:
        assert all(data[key].dtype == np.float32 for key in data.files)
    assert set(weights) >= {"patch_embed.w", "blocks.1.moe.gate.seg", "blocks.1.moe.gate.depth", "heads.depth.b"}


def _torch_outputs(cfg, params, images):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (optional extra: pip install -e '.[train]')")
    from models.torch_moevit import Arch, MoEViT

    model = MoEViT(Arch.from_config(cfg)).double().load(params).eval()
    with torch.no_grad():
        return {task: model(torch.from_numpy(images).double(), task).numpy() for task in cfg.task_names}


@pytest.mark.parametrize("which", ["trained", "random"])
def test_numpy_float_model_matches_torch(cfg, weights, which):
    # the same network twice: float64 numpy (sim/golden/moevit/reference.py) and PyTorch (models/),
    # on the trained weights and on random ones (larger gate logits: other experts win)
    params = weights if which == "trained" else init_params(cfg, seed=7, std=0.2)
    images = make_dataset(4, seed=11).images
    expected = _torch_outputs(cfg, params, images)
    for task in cfg.task_names:
        got = reference.forward(params, images, task, cfg)
        assert got.shape == expected[task].shape == (4, cfg.task(task).outputs, 32, 32)
        assert np.max(np.abs(got - expected[task])) <= 1e-5, task


def test_torch_export_round_trips(cfg, weights):
    pytest.importorskip("torch", reason="PyTorch is not installed (optional extra: pip install -e '.[train]')")
    from models.torch_moevit import Arch, MoEViT

    exported = MoEViT(Arch.from_config(cfg)).load(weights).export()
    assert set(exported) == set(weights)
    for key, value in weights.items():
        np.testing.assert_array_equal(exported[key], value)


def test_trained_model_beats_the_trivial_baseline(cfg, held_out, float_outputs):
    train = make_dataset(200, TRAIN_SEED)
    seg = task_metrics("segmentation", float_outputs["seg"], held_out)
    depth = task_metrics("depth", float_outputs["depth"], held_out)
    trivial_seg = task_metrics("segmentation", trivial_outputs("segmentation", train, len(held_out), 5), held_out)
    trivial_depth = task_metrics("depth", trivial_outputs("depth", train, len(held_out)), held_out)
    # a clear margin: 1.5 times the trivial mIoU and 10 points more; under 60% of the trivial RMSE
    assert seg["miou"] >= max(1.5 * trivial_seg["miou"], trivial_seg["miou"] + 0.10), (seg, trivial_seg)
    assert depth["rmse"] <= 0.6 * trivial_depth["rmse"], (depth, trivial_depth)
    assert depth["abs_rel"] < trivial_depth["abs_rel"]


def test_committed_facts_agree_with_the_weights(cfg, held_out, float_outputs):
    # the JSON beside the weights records held-out metrics of the torch model on 1000 scenes; the numpy
    # model on the first 32 of them lands near (a sampling difference, not an arithmetic one)
    facts = json.loads(weights_path(cfg).with_suffix(".json").read_text())
    recorded = facts["held_out"]["multi_task"]
    assert facts["training"]["data"]["held_out_seed"] == HELD_OUT_SEED
    assert facts["parameters"] == sum(v.size for v in load_params(cfg).values())
    measured = task_metrics("segmentation", float_outputs["seg"], held_out)["miou"]
    assert abs(measured - recorded["seg"]["miou"]) < 0.1
    rmse = task_metrics("depth", float_outputs["depth"], held_out)["rmse"]
    assert abs(rmse - recorded["depth"]["rmse"]) / recorded["depth"]["rmse"] < 0.2
    assert set(facts["held_out"]["single_task"]) == set(KINDS)


@pytest.mark.parametrize("variant", ["fixed-hw", "fixed-gelu-poly", "fixed-gelu-pwl"])
def test_hardware_approximations_cost_little(cfg, weights, held_out, float_outputs, variant):
    # fixed point with the config's hardware units (softmax, gate, GELU table, LayerNorm together),
    # and the other GELU methods, against float on the same scenes: < 1 mIoU point, < 2% RMSE
    approx = fixed.VARIANTS(cfg)[variant]
    scenes = held_out.batch(0, FIXED_SCENES)
    base, result = {}, {}
    for task, kind in KINDS.items():
        base[task] = task_metrics(kind, float_outputs[task][:FIXED_SCENES], scenes)
        out = run_variant(cfg, weights, scenes.images, task, approx)
        result[task] = task_metrics(kind, out, scenes)
        if kind == "segmentation":
            # the decisions themselves barely move: nearly every pixel keeps its float class
            assert np.mean(np.argmax(out, 1) == np.argmax(float_outputs[task][:FIXED_SCENES], 1)) > 0.99
    cost = cost_against(result, base, KINDS)
    assert cost["seg"]["miou_points"] < 1.0, cost
    assert cost["depth"]["rmse_percent"] < 2.0, cost


def test_npuforge_eval_report(tmp_path, capsys):
    from npuforge.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", str(CONFIG), "--images", "2", "--variant", "float", "--variant", "fixed-gelu-pwl",
                 "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["variants"]) == {"float", "fixed-gelu-pwl"}
    assert report["data"] == {"seed": HELD_OUT_SEED, "images": 2}
    for name in ("float", "fixed-gelu-pwl"):
        assert set(report["variants"][name]) == set(KINDS)
    assert set(report["multitask_delta_percent"]) == {"float", "fixed-gelu-pwl"}
    assert set(report["cost_vs_float"]) == {"fixed-gelu-pwl"}
    assert report["single_task"]["images"] == 1000
    macs = report["macs"]["seg"]
    assert 0 < macs["moe"] < macs["all_experts"]
    printed = capsys.readouterr().out
    assert "fixed-gelu-pwl" in printed and "MACs per image" in printed
    assert main(["eval", str(CONFIG), "--variant", "fixed-nope"]) == 2
    assert "fixed-nope" in capsys.readouterr().err
