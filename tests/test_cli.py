"""The npuforge command end to end, as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUILD_ROOT, ROOT, RTL_CONFIGS, per_config

from npuforge import cli
from sim import runner


def _npuforge(*args, cwd=ROOT):
    executable = Path(sys.executable).parent / "npuforge"
    return subprocess.run([str(executable), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NPUFORGE_BUILD_DIR": str(BUILD_ROOT)})


@per_config("tpe_1x1_w4")
def test_sim_command_passes_and_summarises(config_name):
    done = _npuforge("sim", RTL_CONFIGS[config_name], "--vectors", "5", "--seed", "9", "--valid-prob", "0.6")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "PASS     15 jobs bit-exact" in out  # 10 edge cases + 5 random
    assert "latency 4 cycles (documented 4)" in out  # cols + 3 with two result buffers
    assert "useful MACs / (1 MAC units x " in out
    assert f"{BUILD_ROOT}/tpe_1x1_w4-" in out


@per_config("tpe_1x1_w4")
def test_sim_with_a_relative_build_root(built, config_name, tmp_path):
    """The default build root is ``build`` in the working directory: every path a build hands to a tool
    (the model's control file among them) still resolves."""
    built(config_name)  # Verilator's runtime objects, as the suite's builds keep them: copied, the model
    for shared in (BUILD_ROOT / "verilator-runtime").glob("cocotb-*"):  # compiles in seconds
        shutil.copytree(shared, tmp_path / "relative" / "build" / "verilator-runtime" / shared.name)
    done = subprocess.run([str(Path(sys.executable).parent / "npuforge"), "sim", str(RTL_CONFIGS[config_name]),
                           "--vectors", "2", "--build-dir", "relative/build"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "relative" / "build").is_dir()


def test_generate_and_validate_commands(tmp_path):
    done = _npuforge("generate", RTL_CONFIGS["tpe_1x1_w4"], "-o", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'out' / 'tpe_1x1_w4.v'}" in done.stdout
    done = _npuforge("validate", RTL_CONFIGS["tpe_1x1_w4"])
    normalised = json.loads(done.stdout)
    assert normalised["config"]["acc_width"] == 12
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config_hash"] == normalised["config_hash"]
    assert "tpe " in _npuforge("kinds").stdout


def test_sim_reports_first_mismatch_and_exits_1(monkeypatch, capsys, tmp_path):
    """The report format on failure (the detection itself is tested in test_tpe_rtl.py)."""
    def fake_simulate(cfg, testbench, **kwargs):
        vectors = {"jobs": [{"label": f"job{i}"} for i in range(12)]}
        result = runner.RunResult(
            run_dir=tmp_path, vectors=vectors, results={},
            mismatch={"job": 11, "label": "random #1 K=3", "index": [0, 0], "expected": 5, "got": -3},
            cocotb_failed=True, seconds=0.1)
        model = runner.Build(config=cfg, root=tmp_path, rtl_dir=tmp_path, sim_dir=tmp_path,
                             manifest={"top": cfg.name, "parameters": {}}, waves=False, reused=True, seconds=0.0)
        return runner.Simulation(build=model, run=result)

    monkeypatch.setattr(runner, "simulate", fake_simulate)
    assert cli.main(["sim", str(RTL_CONFIGS["tpe_1x1_w4"]), "--vectors", "2"]) == 1
    out = capsys.readouterr().out
    assert "FAIL     job 11 (random #1 K=3): C[0][0] expected 5, got -3" in out
    assert f"log      {tmp_path / 'sim.log'}" in out


def test_sim_k_runs_jobs_of_one_shape(monkeypatch, capsys, tmp_path):
    """``--k K``: every job has reduction length K, no edge cases (what the MAC utilisation of K back to back is
    measured on, docs/tpe.md); the shape reaches the testbench's vectors."""
    from gen.config import load_config
    from sim.tb import tpe as tpe_tb

    seen = {}

    def fake_simulate(cfg, testbench, **kwargs):
        seen.update(kwargs)
        vectors = testbench.make_vectors(cfg, seed=kwargs["seed"], n_random=kwargs["n_random"], k=kwargs["k"])
        result = runner.RunResult(run_dir=tmp_path, vectors=vectors, results={}, mismatch=None,
                                  cocotb_failed=False, seconds=0.0)
        model = runner.Build(config=cfg, root=tmp_path, rtl_dir=tmp_path, sim_dir=tmp_path,
                             manifest={"top": cfg.name, "parameters": {}}, waves=False, reused=True, seconds=0.0)
        return runner.Simulation(build=model, run=result)

    monkeypatch.setattr(runner, "simulate", fake_simulate)
    assert cli.main(["sim", str(RTL_CONFIGS["tpe_3x5_w8"]), "--vectors", "3", "--k", "7"]) == 0
    assert seen["k"] == 7
    assert "vectors  3 jobs (0 edge cases + 3 random, every one K=7, seed 1)" in capsys.readouterr().out
    cfg = load_config(RTL_CONFIGS["ws_3x4_s8"])
    jobs = tpe_tb.make_vectors(cfg, seed=2, n_random=4, k=2)["jobs"]
    assert [(len(job["a"]), len(job["b"])) for job in jobs] == [(3, 2)] * 4  # systolic_ws: rows rows of A
    with pytest.raises(ValueError, match="allowed: 1 to 3"):
        tpe_tb.make_vectors(cfg, seed=2, n_random=1, k=4)
    cube = load_config(ROOT / "configs" / "cube_8x8x8_r4.yaml")  # the K = 16 config of docs/tpe.md
    assert cube.result_rows == 4 and cube.rows == 8
    assert {len(job["b"]) for job in tpe_tb.make_vectors(cube, seed=1, n_random=2, k=16)["jobs"]} == {16}


@pytest.mark.parametrize("config,k,part", [
    (RTL_CONFIGS["tpe_1x1_w4"], "17", "--k: got 17; allowed: an integer from 1 to 16 (the longest K of tpe_1x1_w4)"),
    (RTL_CONFIGS["exp_s10"], "4", "--k: got 4; allowed: only for kinds whose jobs have a reduction length"),
], ids=["above_k_max", "not_tpe"])
def test_sim_k_out_of_range_or_kind_is_one_line(config, k, part, capsys):
    assert cli.main(["sim", str(config), "--k", k]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and part in err, err


def test_missing_config_file_is_one_line(capsys):
    assert cli.main(["sim", "no/such.yaml"]) == 2
    err = capsys.readouterr().err
    assert err == "npuforge: error: no/such.yaml: cannot read: No such file or directory\n"


@pytest.mark.parametrize("module", ["npuforge"])
def test_module_entry_point(module):
    done = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("npuforge ")


@pytest.mark.synth
def test_synth_command_writes_json(tmp_path):
    done = _npuforge("synth", RTL_CONFIGS["tpe_1x1_w4"], "--target", "generic", "--json", tmp_path / "r.json",
                     "--build-dir", tmp_path / "build")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["target"] == "generic" and data["transistors"] > 1000 and data["logic_depth"] > 5
    assert "transistors (CMOS estimate)" in done.stdout
    again = _npuforge("synth", RTL_CONFIGS["tpe_1x1_w4"], "--target", "generic", "--build-dir", tmp_path / "build")
    assert "cached" in again.stdout


@pytest.mark.parametrize("argv,part", [
    (["--target", "ice40"], "--target: invalid choice: 'ice40'"),
    (["--seed", "-3"], "--seed: got '-3'"),
    (["--timeout", "0"], "--timeout: got '0'; allowed: an integer from 1 to 172800"),
])
def test_synth_bad_arguments_are_one_line(argv, part, capsys):
    assert cli.main(["synth", str(RTL_CONFIGS["tpe_1x1_w4"]), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and part in err, err


def test_synth_timeout_reaches_the_tools(monkeypatch, tmp_path):
    """A whole accelerator needs hours for xcup: --timeout replaces the 30-minute default of every tool run."""
    import fpga.cost
    from fpga.synth import SynthResult

    seen = {}

    def fake(verilog, top, target, **options):
        seen.update(options)
        return SynthResult(data={"target": target, "lut": 1}, cached=False, path=tmp_path / "r.json", log=tmp_path)

    monkeypatch.setattr(fpga.cost, "synthesize", fake)
    assert cli.main(["synth", str(RTL_CONFIGS["tpe_1x1_w4"]), "--target", "xcup", "--timeout", "7200",
                     "--build-dir", str(tmp_path / "b")]) == 0
    assert seen["timeout"] == 7200
    assert cli.main(["synth", str(RTL_CONFIGS["tpe_1x1_w4"]), "--build-dir", str(tmp_path / "b")]) == 0
    assert seen["timeout"] == 1800


def test_synth_json_to_a_directory_is_refused(tmp_path, capsys):
    assert cli.main(["synth", str(RTL_CONFIGS["tpe_1x1_w4"]), "--json", str(tmp_path),
                     "--build-dir", str(tmp_path / "b")]) == 2
    assert "--json: got" in capsys.readouterr().err


def test_a_failing_verilator_build_is_one_line_with_exit_code_3(monkeypatch, capsys, tmp_path):
    """A tool failure (here Verilator stopping on the warnings the documented suppressions would silence)
    is one line naming the tool and its log, exit code 3, not a traceback."""
    monkeypatch.setattr(runner, "build_args", lambda: [])
    assert cli.main(["sim", str(RTL_CONFIGS["tpe_1x1_w4"]), "--build-dir", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("npuforge: error: verilator: the build of tpe_1x1_w4 failed (%Warning-"), err
    log = Path(err.rstrip().rsplit("; see ", 1)[1])
    assert log.name == "build.log" and "%Warning" in log.read_text()
