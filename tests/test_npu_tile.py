"""The NPU tile (``kind: npu_tile``): config rules, the golden interpreter, the RTL against it, a campaign."""

import json
import os
from collections import Counter
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import BUILD_ROOT, ROOT, RTL_CONFIGS, per_config

from gen.config import load_config
from gen.config.loader import parse_config_data
from gen.errors import ConfigError
from sim.golden import npu_tile as golden
from sim.runner import run
from sim.tb import npu_tile as tb
from sim.tb.npu_tile_workload import npu_gemm

TINY = "npu_tile_2x3"
PROTECTED = "npu_tile_2x3_prot"
TEST_CAMPAIGN = ROOT / "tests" / "configs" / "campaigns" / "npu_tile_2x3_seu.yaml"


@pytest.fixture(scope="module")
def tiny():
    return load_config(RTL_CONFIGS[TINY])


def _tile(**changes):
    data = {"kind": "npu_tile", "name": "t",
            "compute": {"arch": "systolic_os", "rows": 2, "cols": 3, "operand": {"width": 4, "signed": True},
                        "k_max": 4}}
    for key, value in changes.items():
        node = data["compute"] if key.startswith("compute_") else data
        key = key.removeprefix("compute_")
        if value is None:
            node.pop(key)
        else:
            node[key] = value
    return parse_config_data(data, "t.yaml")


# ------------------------------------------------------------------------------------------ config

def test_defaults_are_derived_from_the_engine():
    cfg = _tile()
    assert cfg.k_beats_max == 4 and cfg.a_depth == cfg.b_depth == 8
    assert cfg.k_total_max == 16 and cfg.acc_width == 12  # 16 * (-8)**2 = 2**10 needs 12 signed bits
    assert cfg.shift_max == 12 + 16 - 1
    assert "kind" not in cfg.normalized()["compute"] and "name" not in cfg.normalized()["compute"]
    cube = _tile(compute_arch="cube", compute_depth=2, compute_k_max=6)
    assert cube.steps == 2 and cube.k_beats_max == 3


@pytest.mark.parametrize("changes, parts", [
    ({"compute_arch": "matrix2d", "compute_k_max": 4}, None),  # accepted: a second engine
    ({"compute_arch": "systolic_ws", "compute_k_max": None}, ["'systolic_ws' is not supported by npu_tile",
                                                            "systolic_os, cube, adder_tree, matrix2d"]),
    ({"acc_width": 5}, ["acc_width 5 is narrower than compute.acc_width 10"]),
    ({"compute_name": "x"}, ["compute.name: got 'x'"]),
    ({"cmd_depth": 1}, ["cmd_depth: got 1"]),
    ({"cmd_depth": 6}, ["cmd_depth: got 6; allowed: an integer from 7 to 1024"]),  # no room for one GEMM
    ({"rounding": "up"}, ["rounding: got 'up'", "round_half_even"]),
    ({"compute_arch": "cube", "compute_depth": 4, "compute_k_max": 3}, ["compute.k_max 3 is below the 4"]),
    ({"compute_arch": "cube", "compute_depth": 2, "compute_k_max": 4, "compute_result_rows": 2},
     ["compute.result_rows: 2 is not supported by npu_tile", "allowed: 1"]),
    # one operand format: the tile's words, checks and output codes are built for one
    ({"compute_operand": None, "compute_operand_a": {"width": 8, "signed": False},
      "compute_operand_b": {"width": 4, "signed": True}},
     ["compute.operand_a: 8-bit unsigned A with 4-bit signed B is not supported by npu_tile",
      "allowed: compute.operand, one format for A and B"]),
    ({"compute_operand": None, "compute_operand_a": {"width": 4, "signed": True},
      "compute_operand_b": {"width": 4, "signed": True}}, None),  # accepted: equal formats are operand
])
def test_bad_configs_give_one_line(changes, parts):
    if parts is None:
        accepted = _tile(**changes)
        assert accepted.compute.arch == changes.get("compute_arch", "systolic_os")
        assert accepted.config_hash() == _tile(**{k: v for k, v in changes.items() if "operand" not in k}).config_hash()
        return
    with pytest.raises(ConfigError) as error:
        _tile(**changes)
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


# ------------------------------------------------------------------------------------------ golden

def test_requantisation_is_the_exact_rational_rule(tiny):
    """round_half_away of acc * scale / 2**shift, saturated to 4 bits, then the activation; exhaustive over
    a grid of accumulators, scales and shifts (independent of hw/arith/fixed.py)."""
    lo, hi = tiny.out_format.min_code, tiny.out_format.max_code
    accs = np.arange(-1024, 1024, 7)
    for scale in (0, 1, 5, 31):
        for shift in (0, 1, 3, 9):
            got = golden.requant(tiny, accs, scale, shift, 0, lo, hi)
            for acc, y in zip(accs, got):
                exact = Fraction(int(acc) * scale, 2 ** shift)
                rounded = int(abs(exact) + Fraction(1, 2)) * (1 if exact >= 0 else -1)
                assert y == min(max(rounded, lo), hi), (acc, scale, shift)
            assert (golden.requant(tiny, accs, scale, shift, 1, lo, hi) == np.maximum(got, 0)).all()
            assert (golden.requant(tiny, accs, scale, shift, 2, -3, 2) == np.clip(got, -3, 2)).all()


def test_golden_k_loop_equals_one_long_product(tiny):
    """A K loop of GEMM commands accumulates: 3 tiles of K = 4 give A @ B over K = 12."""
    rng = np.random.default_rng(4)
    a, b = rng.integers(-8, 8, (2, 12)), rng.integers(-8, 8, (12, 3))
    tiles = [(a[:, 4 * t:4 * t + 4], b[4 * t:4 * t + 4]) for t in range(3)]
    tile = golden.results_of(tiny, golden.gemm_program(tiny, tiles, scale=1, shift=4))
    want = golden.requant(tiny, a @ b, 1, 4, 0, -8, 7)
    assert tile.done and not tile.error
    assert [row for row, _ in tile.results] == want.tolist()
    assert [last for _, last in tile.results] == [0, 1]


def test_commands_round_trip_through_the_layouts(tiny):
    word = golden.command(tiny, "GEMM", a_addr=5, b_addr=3, k=4, acc=1)
    assert golden.decode(tiny, word) == (3, {"a_addr": 5, "b_addr": 3, "k": 4, "acc": 1})
    assert golden.decode(tiny, golden.command(tiny, "ACT", mode=2, lo=-8, hi=7)) == (5, {"mode": 2, "lo": -8,
                                                                                       "hi": 7})
    with pytest.raises(ValueError, match="takes the fields"):
        golden.command(tiny, "QUANT", scale=1)


@pytest.mark.parametrize("cmd_depth", [7, 8, 9, 10])
def test_vectors_fit_the_smallest_command_memories(cmd_depth):
    """The edge programs shrink to the tile: with 7 commands, one K tile per program (a config fuzz run
    found a tile of 4 commands accepted and its vectors impossible to build)."""
    cfg = _tile(cmd_depth=cmd_depth, a_depth=2, b_depth=2)
    vectors = tb.make_vectors(cfg, seed=3, n_random=4)
    for program in vectors["programs"]:
        if not program["error"]:
            assert sum(1 for is_command, _ in program["words"] if is_command) <= cmd_depth, program["label"]


def test_vectors_cover_the_edge_cases_and_every_error(tiny):
    vectors = tb.make_vectors(tiny, seed=2, n_random=6)
    labels = [p["label"] for p in vectors["programs"]]
    for wanted in ("zeros", "saturates high", "saturates low", "K loop of 4 tiles", "ReLU", "clip", "scale 0",
                   "largest shift", "invalid opcode", "past the end of buf_a", "k = 0", "longer than the engine",
                   "shift above", "lo > hi", "data word where", "command word where", "more than 16 commands"):
        assert any(wanted in label for label in labels), wanted
    codes = [v for p in vectors["programs"] for row, _ in p["results"] for v in row]
    assert {-8, 7} <= set(codes)  # both saturation ends reached
    errors = [p for p in vectors["programs"] if p["error"]]
    assert len(errors) == 13 and all(not p["done"] for p in errors)
    # After an error the next program starts with a reset; the rest run back to back.
    flags = [p["reset_before"] for p in vectors["programs"]]
    assert flags == [False] + [vectors["programs"][n - 1]["error"] == 1 for n in range(1, len(flags))]
    randoms = [p for p in vectors["programs"] if p["label"].startswith("random")]
    assert all(p["done"] and not p["error"] for p in randoms)
    assert len({str(p["results"]) for p in randoms}) > 3


def test_workload_rejects_bad_parameters(tiny):
    manifest = {"interfaces": []}
    for params, part in [({"tiles": 0, "k": 2, "seed": 1}, "workload.tiles: 0"),
                         ({"tiles": 9, "k": 2, "seed": 1}, "holds 16 commands"),
                         ({"tiles": 1, "k": 5, "seed": 1}, "workload.k: 5"),
                         ({"tiles": 1, "k": 2, "seed": 1, "mode": "clip"}, "workload.mode")]:
        with pytest.raises(ConfigError) as error:
            npu_gemm(tiny, manifest, **params)
        assert part in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------ RTL

FLOWS = {"full_rate": (1.0, 1.0), "gaps_and_backpressure": (0.6, 0.4)}


@per_config(TINY, PROTECTED)
@pytest.mark.parametrize("flow", list(FLOWS))
def test_random_and_edge_programs_bit_exact(built, config_name, flow, tmp_path):
    """Every edge, error and random program, with and without protection (and no alarm fault-free)."""
    model = built(config_name)
    cfg = model.config
    valid_prob, ready_prob = FLOWS[flow]
    vectors = tb.make_vectors(cfg, seed=len(flow), n_random=25, valid_prob=valid_prob, ready_prob=ready_prob)
    result = run(model, tb, vectors, tmp_path)
    assert result.ok, (result.mismatch, result.problems, result.log)
    assert result.results["result_beats"] == sum(len(p["results"]) for p in vectors["programs"])
    assert [f["error"] for f in result.results["flags"]].count(1) == 13


@per_config("npu_tile_3x5_u7")
def test_unsigned_matrix2d_tile_bit_exact(built, config_name, tmp_path):
    """The 3x5 unsigned tile whose ReLU and shift check were constant comparisons (Verilator stopped the
    build): it builds, and its edge, error and random programs (ReLU among them) are bit-exact."""
    model = built(config_name)
    vectors = tb.make_vectors(model.config, seed=5, n_random=12, valid_prob=0.8, ready_prob=0.7)
    assert any("relu" in program["label"].lower() for program in vectors["programs"])
    result = run(model, tb, vectors, tmp_path)
    assert result.ok, (result.mismatch, result.problems, result.log)


@per_config(TINY)
def test_manifest_groups_every_fault_site_into_one_block(built, config_name):
    manifest = built(config_name).manifest
    blocks = {b["name"]: b for b in manifest["protectable"]}
    assert list(blocks) == ["buf_a", "buf_b", "cmd", "ctrl", "compute", "acc", "post"]
    assert {name: b["kind"] for name, b in blocks.items()} == {
        "buf_a": "memory", "buf_b": "memory", "cmd": "memory", "ctrl": "registers", "compute": "compute",
        "acc": "registers", "post": "activation"}
    listed = [path for b in blocks.values() for path in b["sites"]]
    assert sorted(listed) == sorted(s["path"] for s in manifest["fault_sites"])
    assert sum(b["bits"] for b in blocks.values()) == manifest["fault_site_bits"]
    sites = {s["path"]: s for s in manifest["fault_sites"]}
    assert sites["core.buf_a.mem"]["kind"] == "memory" and sites["core.buf_a.mem"]["depth"] == 6
    assert sites["core.buf_b.mem"]["width"] == 12 and sites["core.cmd.mem"]["depth"] == 16
    assert sites["core.acc.acc_1_2"]["width"] == 11
    assert "core.ctrl.regs" in blocks["ctrl"]["sites"] and "core.compute.pe_1_2.acc" in blocks["compute"]["sites"]


@pytest.mark.rtl
@pytest.mark.xdist_group(TINY)
def test_short_campaign_runs_end_to_end(built, tmp_path):
    """``npuforge inject`` on the tiny tile: 150 register SEUs and 150 memory SEUs, stored and reported."""
    built(TINY)  # the campaign reuses the generated design
    db = tmp_path / "c.sqlite"
    env = {**os.environ, "NPUFORGE_BUILD_DIR": str(BUILD_ROOT)}
    npuforge = str(Path(sys.executable).parent / "npuforge")
    done = subprocess.run([npuforge, "inject", str(TEST_CAMPAIGN), "--db", str(db), "--workers", "1"],
                          cwd=ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done     300 of 300 injections stored" in done.stdout
    report = tmp_path / "r.json"
    shown = subprocess.run([npuforge, "report", str(db), "--json", str(report), "--by", "block"],
                           cwd=ROOT, capture_output=True, text=True, env=env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    data = json.loads(report.read_text())
    total = data["total"]
    assert total["injections"] == 300 and total["by_model"]["mem_seu"]["injections"] == 150
    assert total["masked"] > 0 and total["sdc"] > 0 and total["detected"] == total["corrected"] == 0
    assert total["masked"] + total["sdc"] + total["hang"] == 300
    assert {"core.buf_a", "core.cmd", "core.ctrl", "core.acc"} <= {row["name"] for row in data["blocks"]}


# ------------------------------------------------------------------------------------------ protection

def _protected(*entries):
    return _tile(protect=[dict(entry) for entry in entries])


def test_protect_section_selects_a_mechanism_per_block():
    cfg = _protected({"match": "buf_*", "mechanism": "secded"}, {"match": "c[mt]*", "mechanism": "parity"},
                     {"match": "post", "mechanism": "tmr"})
    assert cfg.mechanisms == {"buf_a": "secded", "buf_b": "secded", "cmd": "parity", "ctrl": "parity",
                              "post": "tmr"}
    assert "protect" not in _tile().normalized() and cfg.normalized()["protect"][0]["match"] == "buf_*"


@pytest.mark.parametrize("entries, parts", [
    ([{"match": "buf_c", "mechanism": "parity"}], ["protect[0].match: 'buf_c' matches no block",
                                                  "buf_a, buf_b, cmd, ctrl, compute, acc, post"]),
    ([{"match": "buf_a", "mechanism": "tmr"}], ["'tmr' does not fit block buf_a (memory", "allowed: parity, secded"]),
    ([{"match": "acc", "mechanism": "secded"}], ["'secded' does not fit block acc (registers, narrowest group 1 bits)",
                                                "allowed: parity, dmr, tmr"]),
    ([{"match": "compute", "mechanism": "parity"}], ["'parity' does not fit block compute (compute",
                                                    "allowed: dmr, tmr, residue, abft"]),
    ([{"match": "ctrl", "mechanism": "tmr"}, {"match": "c*", "mechanism": "parity"}],
     ["protect[1]: block ctrl already has a mechanism from protect[0]"]),
    ([{"match": "post", "mechanism": "tmr", "low": 0, "high": 3}], ["low and high go with mechanism clip"]),
    ([{"match": "post", "mechanism": "lockstep"}], ["protect[0].mechanism: got 'lockstep'"]),
])
def test_bad_protect_sections_give_one_line(entries, parts):
    with pytest.raises(ConfigError) as error:
        _protected(*entries)
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message


@per_config(PROTECTED)
def test_protected_manifest_declares_alarms_and_mechanisms(built, config_name):
    manifest = built(config_name).manifest
    assert manifest["alarms"] == [{"port": "alarm_corrected", "corrects": True},
                                  {"port": "alarm_detected", "corrects": False}]
    blocks = {b["name"]: b for b in manifest["protectable"]}
    mechanisms = {m["name"]: m for m in manifest["mechanisms"]}
    assert sorted(mechanisms) == ["acc_dmr", "buf_a_secded", "buf_b_secded", "cmd_parity", "compute_dmr",
                                  "ctrl_tmr", "post_tmr"]
    # the engine's replica belongs to the compute block
    assert "core.compute_r1.pe_1_2.acc" in blocks["compute"]["sites"] and "core.compute.pe_1_2.acc" in \
        mechanisms["compute_dmr"]["covers"]
    assert mechanisms["ctrl_tmr"]["covers"] == ["core.ctrl.regs_r0", "core.ctrl.regs_r1", "core.ctrl.regs_r2"]
    assert mechanisms["buf_a_secded"]["covers"] == blocks["buf_a"]["sites"]
    sites = {s["path"]: s for s in manifest["fault_sites"]}
    # SECDED words: 8 data bits + 4 Hamming bits + 1 overall parity; parity: one bit more
    assert sites["core.buf_a.words.mem"]["width"] == 13 and sites["core.cmd.words.mem"]["width"] == 14
    # the alarm collector's registers belong to no block (their flips reach no output)
    assert [s for s in sites if not any(s in b["sites"] for b in blocks.values())] == ["core.alarm_log.regs"]


@pytest.mark.rtl
@pytest.mark.xdist_group(PROTECTED)
def test_single_upsets_in_protected_blocks_cause_no_sdc(built):
    """Every bit of the TMR-protected ctrl and post registers, of the DMR acc registers and of both DMR
    engines, flipped at every 7th cycle of a GEMM program, and every bit of every SECDED/parity memory word
    at 3 cycles: no SDC and no hang; TMR and SECDED flips that matter are corrected, DMR and parity ones
    detected."""
    from sim.fault.engine import Engine
    from sim.fault.model import Fault, FaultModel, Outcome

    model = built(PROTECTED)
    workload = npu_gemm(model.config, model.manifest, programs=1, tiles=2, k=3, seed=9)
    engine = Engine.prepare(model.root, model.verilog, model.manifest, workload, build_root=BUILD_ROOT)
    blocks = {b["name"]: b for b in model.manifest["protectable"]}
    sites = {s["path"]: s for s in model.manifest["fault_sites"]}
    faults = []
    for block in ("ctrl", "post", "acc", "compute"):
        for path in blocks[block]["sites"]:
            for bit in range(sites[path]["width"]):
                for cycle in range(bit % 7, engine.window, 7):
                    faults.append(Fault(len(faults), FaultModel.SEU, path, bit, cycle))
    for block in ("buf_a", "buf_b", "cmd"):
        path = next(p for p in blocks[block]["sites"] if sites[p]["kind"] == "memory")
        for word in range(sites[path]["depth"]):
            for bit in range(sites[path]["width"]):
                for cycle in (0, engine.window // 3, 2 * engine.window // 3):
                    faults.append(Fault(len(faults), FaultModel.MEM_SEU, path, bit, cycle, word=word))
    results = engine.run(faults, timeout_factor=4)
    by_block = {}
    for result in results:
        block = next(name for name, b in blocks.items() if result.fault.site in b["sites"])
        by_block.setdefault(block, Counter())[result.outcome] += 1
    for block, counts in by_block.items():
        assert counts[Outcome.SDC] == counts[Outcome.HANG] == 0, (block, counts)
    for block in ("ctrl", "post", "buf_a", "buf_b"):  # TMR, SECDED: corrected
        assert by_block[block][Outcome.CORRECTED] > 0 and by_block[block][Outcome.DETECTED] == 0, by_block[block]
    for block in ("acc", "compute", "cmd"):  # DMR, parity: detected
        assert by_block[block][Outcome.DETECTED] > 0 and by_block[block][Outcome.CORRECTED] == 0, by_block[block]
    assert len(results) > 8000
