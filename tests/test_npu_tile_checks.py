"""Result checks of the NPU tile's protection: ``residue`` and ``abft`` on compute, ``clip`` on post.

Config rules, the golden clip, the residue checker in Amaranth's simulator, the
ABFT- and clip-protected tile (``npu_tile_2x3_chk``) bit-exact against the golden
interpreter, its manifest, and a single-upset campaign in its compute block that
measures ABFT's diagnostic coverage (Clopper-Pearson interval).
"""

import random
from collections import Counter

import numpy as np
import pytest
from conftest import BUILD_ROOT, per_config

from gen.config.loader import parse_config_data
from gen.errors import ConfigError
from sim.fault.metrics import clopper_pearson_interval, diagnostic_coverage
from sim.golden import npu_tile as golden
from sim.runner import run
from sim.tb import npu_tile as tb
from sim.tb.npu_tile_workload import npu_gemm

CHECKED = "npu_tile_2x3_chk"  # abft on compute, clip to [-6, 5] on post


def _tile(*protect, **changes):
    data = {"kind": "npu_tile", "name": "t",
            "compute": {"arch": "systolic_os", "rows": 2, "cols": 3, "operand": {"width": 4, "signed": True},
                        "k_max": 4},
            "out_width": 4, "protect": [dict(entry) for entry in protect]} | changes
    return parse_config_data(data, "t.yaml")


# ------------------------------------------------------------------------------------------ config

def test_residue_and_clip_are_accepted():
    cfg = _tile({"match": "compute", "mechanism": "residue"}, {"match": "post", "mechanism": "clip", "low": -8,
                                                                "high": 3})
    assert cfg.mechanisms == {"compute": "residue", "post": "clip"} and cfg.clip_bounds == (-8, 3)
    assert _tile().clip_bounds is None
    assert _tile({"match": "post", "mechanism": "clip", "low": 2, "high": 2}).clip_bounds == (2, 2)


@pytest.mark.parametrize("entry, extra, parts", [
    ({"match": "post", "mechanism": "clip", "low": -9, "high": 3}, {},
     ["protect[0].low: -9 is outside the output codes", "allowed: -8 to 7 (4-bit signed)"]),
    ({"match": "post", "mechanism": "clip", "low": 0, "high": 16},
     {"compute": {"arch": "systolic_os", "rows": 2, "cols": 3, "operand": {"width": 4, "signed": False},
                  "k_max": 4}}, ["protect[0].high: 16 is outside", "allowed: 0 to 15 (4-bit unsigned)"]),
    ({"match": "post", "mechanism": "clip", "low": 3, "high": 2}, {}, ["protect[0]: low 3 is above high 2"]),
    ({"match": "post", "mechanism": "clip", "low": 3}, {}, ["clip needs both"]),
    ({"match": "buf_a", "mechanism": "residue"}, {}, ["'residue' does not fit block buf_a (memory",
                                                     "allowed: parity, secded"]),
    ({"match": "compute", "mechanism": "clip", "low": 0, "high": 1}, {},
     ["'clip' does not fit block compute", "allowed: dmr, tmr, residue, abft"]),
    ({"match": "acc", "mechanism": "residue"}, {}, ["'residue' does not fit block acc (registers"]),
])
def test_misfits_give_one_line(entry, extra, parts):
    with pytest.raises(ConfigError) as error:
        _tile(entry, **extra)
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


# ------------------------------------------------------------------------------------------ golden

def test_golden_clips_every_result_and_counts_clamped_rows():
    """With clip on post the golden results are the unclipped ones clamped to [low, high], and ``clipped``
    counts the rows that had an element outside; without clip nothing changes."""
    plain = _tile()
    clipped = _tile({"match": "post", "mechanism": "clip", "low": -5, "high": 4})
    rng = np.random.default_rng(3)
    rows_out = clamped_rows = 0
    for _ in range(20):
        tiles = [(rng.integers(-8, 8, (2, 4)), rng.integers(-8, 8, (4, 3))) for _ in range(2)]
        words = golden.gemm_program(plain, tiles, scale=int(rng.integers(1, 40)), shift=int(rng.integers(0, 8)))
        want = golden.results_of(plain, words)
        got = golden.results_of(clipped, words)
        assert want.clipped == 0
        assert [last for _, last in got.results] == [last for _, last in want.results]
        for (row, _), (raw, _) in zip(got.results, want.results):
            assert row == np.clip(raw, -5, 4).tolist()
        rows_out += len(want.results)
        clamped_rows += sum(any(v < -5 or v > 4 for v in raw) for raw, _ in want.results)
        assert got.clipped == sum(any(v < -5 or v > 4 for v in raw) for raw, _ in want.results)
    assert 0 < clamped_rows < rows_out  # both cases occurred
    tile = golden.results_of(clipped, words)
    tile.reset()
    assert tile.clipped == 0  # a reset clears the counter, like the hardware's


# ------------------------------------------------------------------------------------------ residue checker

@pytest.mark.parametrize("signed_operands, steps, rows", [
    (True, 1, 2), (True, 2, 2), (False, 3, 2), (True, 1, 1), (False, 2, 3), (True, 1, 8)])
def test_residue_check_flags_every_single_bit_error_of_a_result(signed_operands, steps, rows):
    """Random jobs of random length (steps reduction steps per beat), with idle cycles between beats: correct
    result rows never raise ``error``; every single-bit flip of every element of every row does. Rows 1 to 8:
    the row select is a chain of multiplexers from the third row on."""
    from amaranth.hdl import signed, unsigned
    from amaranth.sim import Simulator

    from hw.npu.checks import ResidueCheck

    cols, width = 3, 4
    jobs = 6 if rows <= 3 else 2
    operand = signed(width) if signed_operands else unsigned(width)
    res_shape = signed(12) if signed_operands else unsigned(12)
    check = ResidueCheck(rows, cols, steps, operand, res_shape)
    lo, hi = (-8, 7) if signed_operands else (0, 15)
    rng = random.Random(steps)
    flips = []

    def as_value(raw):
        return raw - (1 << 12) if signed_operands and raw >> 11 else raw

    async def bench(ctx):
        for job in range(jobs):
            beats = rng.randint(1, 3)
            a = [[rng.randint(lo, hi) for _ in range(beats * steps)] for _ in range(rows)]
            b = [[rng.randint(lo, hi) for _ in range(cols)] for _ in range(beats * steps)]
            for t in range(beats):
                ctx.set(check.beat, 1)
                ctx.set(check.beat_last, t == beats - 1)
                for s in range(steps):
                    for i in range(rows):
                        ctx.set(check.a[s * rows + i], a[i][t * steps + s])
                    for j in range(cols):
                        ctx.set(check.b[s * cols + j], b[t * steps + s][j])
                await ctx.tick()
                ctx.set(check.beat, 0)
                if rng.random() < 0.5:
                    await ctx.tick()  # an idle cycle
            c = np.array(a) @ np.array(b)
            for i in range(rows):
                ctx.set(check.res_valid, 1)
                ctx.set(check.res_last, i == rows - 1)
                for j in range(cols):
                    ctx.set(check.res_c[j], int(c[i, j]))
                assert ctx.get(check.error) == 0, (job, i)
                for j in range(cols):
                    for bit in range(12):
                        ctx.set(check.res_c[j], as_value((int(c[i, j]) & 0xFFF) ^ 1 << bit))
                        flips.append(ctx.get(check.error))
                    ctx.set(check.res_c[j], int(c[i, j]))
                await ctx.tick()
            ctx.set(check.res_valid, 0)
            await ctx.tick()

    sim = Simulator(check)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(flips) == jobs * rows * cols * 12 and all(flips)


# ------------------------------------------------------------------------------------------ RTL

FLOWS = {"full_rate": (1.0, 1.0), "gaps_and_backpressure": (0.6, 0.4)}


@per_config(CHECKED)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_checked_tile_is_bit_exact(built, config_name, flow, tmp_path):
    """Edge, error and random programs: results (clipped), done/error, clip_count equal the golden; no alarm
    rises fault-free (the ABFT check never fires on correct results, and never corrects them)."""
    model = built(config_name)
    valid_prob, ready_prob = FLOWS[flow]
    vectors = tb.make_vectors(model.config, seed=7 + len(flow), n_random=25, valid_prob=valid_prob,
                              ready_prob=ready_prob)
    assert any(p["clipped"] for p in vectors["programs"])  # the clip counter is exercised
    result = run(model, tb, vectors, tmp_path)
    assert result.ok, (result.mismatch, result.problems, result.log)
    assert [f["clip_count"] for f in result.results["flags"]] == [
        vectors["programs"][seg[-1]]["clipped"] for seg in tb.segments(vectors)]


@per_config(CHECKED)
def test_manifest_declares_the_checks(built, config_name):
    manifest = built(config_name).manifest
    blocks = {b["name"]: b for b in manifest["protectable"]}
    mechanisms = {m["name"]: m for m in manifest["mechanisms"]}
    assert sorted(mechanisms) == ["compute_abft", "post_clip"]
    assert mechanisms["compute_abft"]["alarm"] == "alarm_corrected"
    assert "alarm" not in mechanisms["post_clip"]  # clip bounds values, it raises no alarm
    # The checker's own registers are fault sites of the compute block it protects.
    assert {"core.compute_abft.sums", "core.compute_abft.rows.col_sum"} <= set(blocks["compute"]["sites"])
    assert mechanisms["compute_abft"]["covers"] == blocks["compute"]["sites"]
    assert "core.post.clipped" in blocks["post"]["sites"]
    listed = [path for b in blocks.values() for path in b["sites"]]
    assert sorted(listed + ["core.alarm_log.regs"]) == sorted(s["path"] for s in manifest["fault_sites"])


def _compute_campaign(model, samples: int, seed: int):
    """``samples`` single upsets uniformly over the compute block's bits and the workload's cycles."""
    from sim.fault.engine import Engine
    from sim.fault.model import Fault, FaultModel

    workload = npu_gemm(model.config, model.manifest, programs=2, tiles=2, k=4, seed=seed, mode="none")
    engine = Engine.prepare(model.root, model.verilog, model.manifest, workload, build_root=BUILD_ROOT)
    sites = {s["path"]: s for s in model.manifest["fault_sites"]}
    compute = next(b for b in model.manifest["protectable"] if b["name"] == "compute")
    bits = [(path, bit) for path in compute["sites"] for bit in range(sites[path]["width"])]
    rng = random.Random(seed)
    faults = []
    for index in range(samples):
        path, bit = rng.choice(bits)
        faults.append(Fault(index, FaultModel.SEU, path, bit, rng.randrange(engine.window)))
    return engine.run(faults, timeout_factor=4)


@pytest.mark.rtl
@pytest.mark.xdist_group(CHECKED)
def test_abft_coverage_of_the_compute_block(built):
    """1,500 random SEUs in the compute block (engine and checker): ABFT corrects or detects nearly every
    dangerous one (measured 99.7% on 3,000; asserted loosely: the 95% Clopper-Pearson lower bound above 95%);
    corrected ones really end with the right results (the engine checks the outputs), among them upsets of
    the engine's accumulators, which are single wrong elements."""
    from sim.fault.model import Outcome

    results = _compute_campaign(built(CHECKED), 1500, seed=11)
    counts = Counter(r.outcome for r in results)
    escapes = counts[Outcome.SDC] + counts[Outcome.HANG]
    caught = counts[Outcome.DETECTED] + counts[Outcome.CORRECTED]
    low, _ = clopper_pearson_interval(caught, caught + escapes)
    assert low > 0.95, (diagnostic_coverage(escapes, caught + escapes), counts)
    pe_acc = Counter(r.outcome for r in results if r.fault.site.endswith(".acc") and ".pe_" in r.fault.site)
    assert pe_acc[Outcome.CORRECTED] > 0 and pe_acc[Outcome.SDC] == pe_acc[Outcome.DETECTED] == 0, pe_acc
    # Upsets of the checksums themselves are located in the checksum row or column: corrected, never silent.
    sums = Counter(r.outcome for r in results if r.fault.site == "core.compute_abft.sums")
    assert sums[Outcome.CORRECTED] > 0 and sums[Outcome.SDC] == 0, sums
