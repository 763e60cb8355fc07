"""Generated files: byte-identical, free of machine paths, lint-clean, truthfully described."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUILD_ROOT, ROOT, RTL_CONFIGS, per_config

from npuforge.cli import main
from gen.config import load_config
from gen.emit import generate
from gen.lint import lint
from gen.manifest import MANIFEST_NAME, verilog_filename
from sim.runner import generated


@pytest.fixture(scope="module")
def small_cfg():
    return load_config(RTL_CONFIGS["tpe_3x5_w8"])


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_config_gives_identical_bytes_across_processes(tmp_path, small_cfg):
    first = generate(small_cfg, tmp_path / "a").out_dir
    # A second process, another working directory, another hash seed and output path.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-m", "npuforge", "generate", str(RTL_CONFIGS["tpe_3x5_w8"]),
                    "-o", str(tmp_path / "deep" / "b")], cwd=tmp_path, env=env, check=True,
                   capture_output=True)
    assert _files(first) == _files(tmp_path / "deep" / "b")
    assert sorted(_files(first)) == ["manifest.json", "tpe_3x5_w8.v"]


@per_config()
def test_lint_clean_and_free_of_machine_paths(config_name):
    """Every test config's files (generated once, where the simulation tests build them): Verilator's lint
    finds nothing, and no file names this machine."""
    cfg = load_config(RTL_CONFIGS[config_name])
    out, _ = generated(cfg, BUILD_ROOT)
    assert lint(out / verilog_filename(cfg.name), cfg.name) == []
    forbidden = {str(ROOT), str(BUILD_ROOT), sys.prefix, os.path.expanduser("~"), "/home/", "/tmp/",
                 "site-packages", ".py:"}
    for file_name, data in _files(out).items():
        text = data.decode()
        for needle in forbidden:
            assert needle not in text, f"{file_name} contains {needle!r}"


def test_lint_would_report_a_problem(tmp_path):
    """The lint wrapper is not blind: a width mismatch in hand-written Verilog is reported."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input [7:0] a, output [3:0] y);\n  assign y = a;\nendmodule\n")
    assert any("WIDTHTRUNC" in line for line in lint(bad, "bad"))


def test_manifest_describes_the_design(tmp_path):
    cfg = load_config(RTL_CONFIGS["tpe_3x5_w8"])
    result = generate(cfg, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    verilog = (tmp_path / "tpe_3x5_w8.v").read_text()

    assert manifest["top"] == "tpe_3x5_w8" and manifest["kind"] == "tpe"
    assert manifest["config"] == cfg.normalized() and manifest["config_hash"] == cfg.config_hash()
    assert manifest["files"] == [{"path": "tpe_3x5_w8.v", "sha256": hashlib.sha256(verilog.encode()).hexdigest()}]
    # 32 * (-128)**2 = 2**19 needs 21 signed bits.
    assert manifest["parameters"] == {
        "mac": "baseline", "acc_width": 21, "k_max": 32, "latency": 9, "job_interval": 12, "mac_units": 15,
        "job": {"format": "k_steps", "steps_per_beat": 1, "c_rows": 3},
        "flow_control": "hold_last_until_drained"}

    ports = {p["name"]: (p["direction"], p["width"]) for p in manifest["ports"]}
    # operands: 3 + 5 operands of 8 bits and last; results: 5 accumulators of 21 bits and last.
    assert ports == {
        "clk": ("input", 1), "rst": ("input", 1),
        "operands__valid": ("input", 1), "operands__ready": ("output", 1), "operands__payload": ("input", 65),
        "results__valid": ("output", 1), "results__ready": ("input", 1), "results__payload": ("output", 106),
    }
    for interface in manifest["interfaces"]:
        payload = interface["payload"]
        assert sum(f["width"] * f.get("count", 1) for f in payload["fields"]) == payload["width"]
        assert ports[payload["port"]][1] == payload["width"]

    sites = {s["path"]: s for s in manifest["fault_sites"]}
    for i in range(3):
        for j in range(5):
            assert sites[f"core.pe_{i}_{j}.acc"]["width"] == 21
            assert sites[f"core.pe_{i}_{j}.result"]["block"] == f"core.pe_{i}_{j}"
            # Operands are forwarded only where a neighbour reads them.
            assert (f"core.pe_{i}_{j}.a_out" in sites) == (j < 4)
            assert (f"core.pe_{i}_{j}.b_out" in sites) == (i < 2)
    # The register keeps its own name (gen/elaborate.py emits registers first); the port it drives is an alias.
    assert sites["core.draining"]["aliases"] == ["results__valid"]
    # Skew buffers: lane l of A (8-bit operand + 3-bit tag) has l + 1 stages.
    assert sorted(p for p in sites if p.startswith("core.skew_a.")) == sorted(
        f"core.skew_a.lane{lane}_{stage}" for lane in range(3) for stage in range(lane + 1))
    assert all(sites[f"core.skew_a.lane{lane}_0"]["width"] == 11 for lane in range(3))
    assert manifest["fault_site_bits"] == sum(s["width"] for s in manifest["fault_sites"])
    assert result.manifest == manifest


def test_bad_output_dir_leaves_nothing(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    assert main(["generate", str(RTL_CONFIGS["tpe_1x1_w4"]), "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "-o: got" in err and "allowed: a directory" in err
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_regenerate_replaces_previous_design(tmp_path):
    out = tmp_path / "out"
    generate(load_config(RTL_CONFIGS["tpe_1x1_w4"]), out)
    (out / "notes.txt").write_text("mine")
    generate(load_config(RTL_CONFIGS["tpe_4x3_u8"]), out)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "notes.txt", "tpe_4x3_u8.v"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging directory left


def test_foreign_manifest_never_deletes_files(tmp_path):
    """Only .v files named by an npuforge manifest, inside the directory, are ever removed."""
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.v"
    victim.write_text("keep")
    (out / "mine.v").write_text("keep too")
    (out / "manifest.json").write_text(json.dumps(
        {"format": 1, "npuforge": "0", "files": [{"path": "../victim.v"}, {"path": "notes.txt"}]}))
    (out / "notes.txt").write_text("keep as well")
    generate(load_config(RTL_CONFIGS["tpe_1x1_w4"]), out)
    assert victim.read_text() == "keep"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "mine.v", "notes.txt", "tpe_1x1_w4.v"]


def test_new_output_directory_has_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        out = generate(load_config(RTL_CONFIGS["tpe_1x1_w4"]), tmp_path / "fresh").out_dir
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755
