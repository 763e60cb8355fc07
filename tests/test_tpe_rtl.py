"""The generated engines in Verilator, driven by cocotb, against the golden model (bit-exact)."""

import numpy as np
import pytest
from conftest import ONE_PER_ARCH, TPE_CONFIGS, per_config

from npuforge.registry import sim_testbench
from sim.golden import tpe as golden
from sim.runner import check_fault_sites, run
from sim.tb.tpe_beats import rows_per_result_beat

FLOWS = {
    "full_rate": (1.0, 1.0),  # back-to-back jobs, sink always ready
    "gaps_and_backpressure": (0.7, 0.45),  # idle input cycles, random output stalls
}


@per_config(*TPE_CONFIGS)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_random_and_edge_jobs_bit_exact(built, config_name, flow, tmp_path):
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    valid_prob, ready_prob = FLOWS[flow]
    vectors = tb.make_vectors(cfg, seed=len(flow) * 7 + cfg.cols, n_random=12,
                              valid_prob=valid_prob, ready_prob=ready_prob)
    labels = [job["label"] for job in vectors["jobs"]]
    assert any(label.startswith("all max") for label in labels) and any(label.startswith("zeros") for label in labels)
    ks = {len(job["b"]) for job in vectors["jobs"]}
    assert {1, cfg.k_bound} <= ks
    if cfg.acc_signed:
        assert any(label.startswith("all min") for label in labels)
    if cfg.a_format != cfg.b_format:  # each side's extremes meet the other's
        assert any(label.startswith("A max x B min") for label in labels)

    result = run(model, tb, vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems, result.log)
    params = model.manifest["parameters"]
    assert len(result.results["jobs"]) == len(vectors["jobs"])
    if flow == "full_rate" or params["flow_control"] == "hold_last_until_drained":
        assert result.results["latency"] == [params["latency"]] * len(vectors["jobs"])
    assert result.results["operand_beats"] == _expected_beats(params["job"], vectors["jobs"])


def _expected_beats(job_format, jobs):
    """Operand beats of a run, counted independently of the packer."""
    if job_format["format"] == "k_steps":
        return sum(-(-len(job["b"]) // job_format["steps_per_beat"]) for job in jobs)
    # One beat per row of A; weights ride on the previous job's rows, the overflow goes alone.
    rows = [len(job["a"]) for job in jobs]
    ks = [len(job["b"]) for job in jobs]
    return sum(rows) + ks[0] + sum(max(0, ks[n + 1] - rows[n]) for n in range(len(jobs) - 1))


def _job(label, a, b, cfg):
    c = golden.for_config(cfg)(a, b)
    return {"label": label, "a": np.asarray(a).tolist(), "b": np.asarray(b).tolist(), "c": c.tolist()}


@per_config("os_8x8")
def test_streaming_os_runs_one_8x8_job_per_8_cycles(built, config_name, tmp_path):
    """Two result buffers: back-to-back 8x8 jobs of K = 8 leave one per 8 cycles."""
    model = built(config_name)
    cfg = model.config
    assert cfg.result_buffers == 2 and model.manifest["parameters"]["job_interval"] == 8
    rng = np.random.default_rng(8)
    vectors = sim_testbench(cfg).make_vectors(cfg, seed=8, n_random=0, edge_cases=False)
    vectors["jobs"] = [_job(f"K=8 #{n}", rng.integers(-128, 128, (8, 8)), rng.integers(-128, 128, (8, 8)), cfg)
                       for n in range(10)]

    result = run(model, sim_testbench(cfg), vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems, result.log)
    lasts = result.results["last_operand_cycles"]
    assert np.diff(lasts).tolist() == [8] * 9
    assert lasts[0] == 7  # the first job's 8 beats took cycles 0..7: no beat waited
    # 10 jobs x 8 rows in 80 cycles of operands plus the latency and one drain.
    assert result.results["cycles"] == 80 + model.manifest["parameters"]["latency"] + 7


@per_config("tpe_1x1_w4")
def test_longer_than_k_max_wraps_like_the_golden_model(built, config_name, tmp_path):
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=5, n_random=0, edge_cases=False)
    k = 4 * cfg.k_max  # 64 * (-8)**2 = 4096 overflows the 12-bit accumulator
    a, b = np.full((1, k), -8), np.full((k, 1), -8)
    vectors["jobs"] = [_job("wrap", a, b, cfg), _job("after wrap", np.full((1, 1), 7), np.full((1, 1), -8), cfg)]
    assert vectors["jobs"][0]["c"] == [[0]]

    result = run(model, tb, vectors, tmp_path)
    assert result.ok, (result.mismatch, result.log)


@per_config("tpe_3x5_w8", "ws_4x2_u6")
def test_wrong_golden_value_is_reported(built, config_name, tmp_path):
    """The comparison can fail, and says where: a corrupted expected element is caught."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=11, n_random=4)
    vectors["jobs"][7]["c"][0][1] += 1

    result = run(model, tb, vectors, tmp_path)

    assert not result.ok and result.cocotb_failed
    m = result.mismatch
    assert (m["job"], m["index"]) == (7, [0, 1])
    assert m["expected"] == m["got"] + 1


@per_config("os_8x8")
def test_single_event_upset_in_an_accumulator_is_caught(built, config_name, tmp_path):
    """A bit flipped in one PE's accumulator mid-job shows up in exactly that element of C."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, size=(8, cfg.k_max))
    b = rng.integers(-128, 128, size=(cfg.k_max, 8))
    vectors = tb.make_vectors(cfg, seed=5, n_random=0, edge_cases=False)
    vectors["jobs"] = [_job("victim", a, b, cfg)]
    # PE (2, 3) accumulates from cycle 1 + 2 + 3 on; cycle 20 is mid-job.
    vectors["inject"] = [{"path": "core.pe_2_3.acc", "bit": 5, "cycle": 20}]

    result = run(model, tb, vectors, tmp_path)

    assert result.results["injected"][0]["applied_at"] == 20
    m = result.mismatch
    assert m is not None and (m["job"], m["index"]) == (0, [2, 3])
    assert abs(m["got"] - m["expected"]) == 1 << 5
    got = np.array(result.results["jobs"][0])
    expected = np.array(vectors["jobs"][0]["c"])
    assert (got != expected).sum() == 1


@per_config(*ONE_PER_ARCH, "cube_3x2x2_u5")  # and a cube with several rows of C per result beat
def test_reset_mid_job_discards_everything_in_flight(built, config_name, tmp_path):
    """Reset while one job drains and the next is half streamed: only post-reset jobs come out."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=21, n_random=6, ready_prob=0.8)
    doomed = tb.make_vectors(cfg, seed=22, n_random=3, edge_cases=False)["jobs"]
    # Make the job after the draining one long, so the reset also cuts it mid-stream.
    if model.manifest["parameters"]["job"]["format"] == "k_steps":
        doomed[1]["a"] = [row * 3 for row in doomed[1]["a"]]
        doomed[1]["b"] = doomed[1]["b"] * 3
    else:
        doomed[1]["a"] = doomed[1]["a"] * 3
    vectors["abandon"] = {"jobs": doomed, "after_result_beats": 1}

    result = run(model, tb, vectors, tmp_path)

    assert result.ok, (result.mismatch, result.problems, result.log)
    per_beat = rows_per_result_beat(model.manifest["parameters"]["job"])
    assert result.results["result_beats"] == sum(len(job["c"]) // per_beat for job in vectors["jobs"])


@per_config()
def test_every_fault_site_is_reachable(built, config_name, tmp_path):
    model = built(config_name)
    assert check_fault_sites(model, tmp_path) == []


@per_config("tpe_1x1_w4")
def test_waves_are_recorded(built, config_name, tmp_path):
    model = built(config_name, waves=True)
    cfg = model.config
    tb = sim_testbench(cfg)
    result = run(model, tb, tb.make_vectors(cfg, seed=1, n_random=2), tmp_path)
    assert result.ok
    assert result.waves is not None and result.waves.stat().st_size > 1000
    assert b"operands__valid" in result.waves.read_bytes()[:20000]
