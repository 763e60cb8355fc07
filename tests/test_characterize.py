"""``npuforge characterize`` and ``sim/characterize.py``: error tables of every nonlinear kind.

The issue's requirement is checked here through the user config: GELU ``table`` with
a 16-bit input and a 16-bit output of 12 fraction bits has a max abs error of at most
1e-4 plus one output LSB over every input code. Synthesis runs once, on a 10-bit
config (about two seconds), and is skipped without Yosys.
"""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import ROOT, RTL_CONFIGS

from gen.config import load_config, parse_config_data
from npuforge import cli
from npuforge.registry import golden_for
from sim.characterize import DISTRIBUTIONS, EXHAUSTIVE_MAX_BITS, characterize, supports

TOP_KEYS = {"kind", "method", "inputs_tested", "exhaustive", "max_abs_error", "mean_abs_error", "max_error_lsb",
            "cost"}
NONLINEAR_CONFIGS = sorted((ROOT / "configs" / "nonlinear").glob("*.yaml"))


#: A smaller sweep for row kinds keeps these tests fast (their goldens work row by row).
SMALL_ROWS = {"row_elements": 3000, "max_rows": 200}


def _report(path, **kwargs):
    cfg = load_config(path)
    return cfg, characterize(cfg, golden_for(cfg), **kwargs)


def test_gelu_table_16_bit_meets_the_accuracy_requirement():
    cfg, report = _report(ROOT / "configs" / "nonlinear" / "gelu_table.yaml")
    assert (cfg.input.width, cfg.output.width, cfg.output.frac, cfg.method) == (16, 16, 12, "table")
    assert report["exhaustive"] and report["inputs_tested"] == 1 << 16
    assert report["max_abs_error"] <= 1e-4 + 2.0 ** -12
    assert report["saturated"] == 0 and report["excluded"] == 0
    assert report["max_error_lsb"] == pytest.approx(report["max_abs_error"] * 4096)


@pytest.mark.parametrize("path", NONLINEAR_CONFIGS, ids=lambda p: p.stem)
def test_every_nonlinear_kind_is_characterized(path):
    cfg, report = _report(path, **SMALL_ROWS)
    assert TOP_KEYS <= set(report) and report["cost"] is None
    assert report["kind"] == cfg.kind and report["method"] == getattr(cfg, "method", None)
    assert 0 <= report["mean_abs_error"] <= report["max_abs_error"] < float("inf")
    json.dumps(report)  # JSON-able as it is
    if getattr(cfg, "n_max", None) is None:
        assert report["exhaustive"] == (cfg.input.width <= EXHAUSTIVE_MAX_BITS)
        if report["exhaustive"]:
            assert report["inputs_tested"] == 1 << cfg.input.width
    else:
        assert not report["exhaustive"]
        assert set(DISTRIBUTIONS) <= set(report["by_distribution"])
        assert report["rows_tested"] >= len(DISTRIBUTIONS) * 4
        assert report["inputs_tested"] >= min(SMALL_ROWS["row_elements"] // 2, report["rows_tested"] * cfg.n_max // 4)


def test_wide_inputs_are_sampled_densely():
    cfg = parse_config_data({"kind": "gelu", "name": "g20", "input": {"width": 20, "frac": 16, "signed": True},
                             "output": {"width": 16, "frac": 12, "signed": True}}, "g20.yaml")
    report = characterize(cfg, golden_for(cfg), keep_samples=True)
    assert not report["exhaustive"]
    codes = np.rint(report["samples"]["input_values"] * 2 ** 16)
    assert 1 << 16 <= report["inputs_tested"] < 1 << 17
    assert codes.min() == -(1 << 19) and codes.max() == (1 << 19) - 1 and 0 in codes
    assert report["max_abs_error"] <= 1e-4 + 2.0 ** -12  # the same table, on a finer input grid


def test_error_arithmetic_on_a_known_unit():
    """Errors, LSB scaling, non-finite and out-of-range references, on a stub with known outputs."""
    cfg = parse_config_data({"kind": "gelu", "name": "g", "input": {"width": 3, "frac": 0, "signed": False},
                             "output": {"width": 4, "frac": 2, "signed": False}}, "g.yaml")
    exact = np.array([0.0, 0.25, np.inf, 3.75, 9.0, 1.0, 0.5, 2.0])
    stub = SimpleNamespace(golden_rows=lambda cfg, rows: [np.array([0, 1, 15, 14, 15, 5, 2, 8])],
                           float_rows=lambda cfg, rows: [exact])
    report = characterize(cfg, stub)
    # errors: 0, 0, (left out), 0.25, 5.25, 0.25, 0, 0
    assert report["excluded"] == 1 and report["saturated"] == 1
    assert report["max_abs_error"] == 5.25 and report["max_error_lsb"] == 21.0
    assert report["mean_abs_error"] == pytest.approx(5.75 / 7)
    # against the exact value clamped to [0, 3.75]: 0, 0, 0.25, 0, 0.25, 0, 0
    assert report["clamped"]["max_abs_error"] == 0.25 and report["clamped"]["max_error_lsb"] == 1.0
    assert report["clamped"]["mean_abs_error"] == pytest.approx(0.5 / 7)
    assert report["worst"] == {"input_code": 4, "input": 4.0, "output": 3.75, "exact": 9.0}


def test_gate_pairs_are_compared_by_score():
    cfg = load_config(ROOT / "configs" / "nonlinear" / "softmax_gate16.yaml")
    assert cfg.top_k is not None  # the shipped gate config; a change that drops top_k must fail here
    report = characterize(cfg, golden_for(cfg), row_elements=500, max_rows=60)
    assert report["inputs_tested"] > 0 and report["max_error_lsb"] < 16


def test_tpe_is_not_characterizable():
    cfg = load_config(RTL_CONFIGS["tpe_1x1_w4"])
    assert not supports(cfg, golden_for(cfg))


# ------------------------------------------------------------------------------- CLI

def test_cli_writes_the_json(tmp_path, capsys):
    path = tmp_path / "deep" / "report.json"
    assert cli.main(["characterize", str(RTL_CONFIGS["gelu_poly_s8_l3"]), "--no-cost", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "every input code" in out and f"wrote    {path}" in out
    data = json.loads(path.read_text())
    assert TOP_KEYS <= set(data)
    assert (data["kind"], data["method"], data["inputs_tested"], data["exhaustive"]) == ("gelu", "poly", 256, True)
    assert data["saturated"] > 0  # s2.6 cannot hold GELU(x) for x near 4


@pytest.mark.skipif(shutil.which("yosys") is None, reason="needs Yosys")
def test_cli_cost_from_yosys_generic(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NPUFORGE_BUILD_DIR", str(tmp_path))
    path = tmp_path / "r.json"
    args = ["characterize", str(RTL_CONFIGS["gelu_table_s10"]), "--json", str(path), "--build-dir", str(tmp_path)]
    assert cli.main(args) == 0
    cost = json.loads(path.read_text())["cost"]
    assert cost["target"] == "generic" and cost["transistors"] > 1000 and cost["cells"] > 100 and cost["ff"] > 20
    assert "transistors (Yosys generic)" in capsys.readouterr().out
    assert list(tmp_path.glob("gelu_table_s10-*/synth/generic/result.json"))  # shared with npuforge synth


@pytest.mark.parametrize("args, message", [
    (["characterize", str(RTL_CONFIGS["tpe_1x1_w4"])],
     "kind 'tpe' has no float reference to characterize against; allowed: a nonlinear unit"),
    (["characterize", str(RTL_CONFIGS["gelu_poly_s8_l3"]), "--json", "."],
     "--json: got '.', which is a directory; allowed: a file path"),
    (["characterize", "nonexistent.yaml"], "nonexistent.yaml"),
    (["characterize", str(RTL_CONFIGS["gelu_poly_s8_l3"]), "--seed", "-3"], "--seed"),
    (["characterize"], "the following arguments are required: CONFIG"),
])
def test_cli_errors_are_one_line(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "." is a directory, nonexistent.yaml does not exist
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_cli_writes_nothing_for_a_bad_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: gelu\nname: g\ninput: {width: 8, frac: 4, signed: true}\n"
                   "output: {width: 8, frac: 4, signed: true}\nmethod: poly\nsegments: 4\n")
    out = tmp_path / "out.json"
    assert cli.main(["characterize", str(bad), "--json", str(out)]) == 2
    assert not out.exists() and not (tmp_path / "build").exists()
