"""``mac:`` on ``kind: tpe``: config rules, what the manifest says, and OPT1 engines beyond the shared tests.

The bit-exact cocotb runs every TPE config gets (edge cases, random jobs, back to
back at full rate with latency and job interval checked, fault-site deposits)
cover the ``*_opt1`` configs through ``RTL_CONFIGS``; here: one-line config
errors, the manifest's ``mac`` and fault sites, sums that wrap past ``k_max`` in
carry-save form, reset mid-job, and a bit flipped in a carry register.
"""

import re

import numpy as np
import pytest
import yaml
from conftest import RTL_CONFIGS, per_config
from test_tpe_rtl import _job
from test_tpe_rtl import test_reset_mid_job_discards_everything_in_flight as _reset_mid_job

from gen.config import load_config, parse_config_data
from gen.elaborate import elaborate
from gen.errors import ConfigError
from npuforge.cli import main
from npuforge.registry import sim_testbench
from sim.runner import run

OPT1 = tuple(name for name in RTL_CONFIGS if "_opt1" in name)

OS = {"kind": "tpe", "name": "os", "arch": "systolic_os", "rows": 2, "cols": 3,
      "operand": {"width": 8, "signed": True}, "k_max": 8}
SHAPES = {
    "systolic_os": {},
    "systolic_ws": {"k_max": None},
    "cube": {"depth": 2},
    "adder_tree": {"rows": None, "k_tile": 4},
    "matrix2d": {},
}


def _config(arch, **changes):
    data = {**OS, "arch": arch, **SHAPES[arch], **changes}
    return {key: value for key, value in data.items() if value is not None}


# (data, substrings the one-line message must contain)
REJECTED = [
    (_config("adder_tree", mac="opt1"),
     ["mac", "got 'opt1'", "one of 'baseline', 'opt2' for arch 'adder_tree'",
      "'opt1' applies to systolic_os, systolic_ws, cube only"]),
    (_config("matrix2d", mac="opt1"), ["mac", "got 'opt1'", "'opt2', 'opt3', 'opt4c', 'laconic' for arch 'matrix2d'",
                                       "'opt1' applies to systolic_os, systolic_ws, cube only"]),
    (_config("systolic_os", mac="opt2"),
     ["mac", "got 'opt2'", "one of 'baseline', 'opt1' for arch 'systolic_os'",
      "'opt2' applies to cube, adder_tree, matrix2d only"]),
    (_config("systolic_ws", mac="opt3"), ["mac", "got 'opt3'", "for arch 'systolic_ws'",
                                          "'opt3' applies to matrix2d only"]),
    (_config("cube", mac="opt4c"), ["mac", "got 'opt4c'", "for arch 'cube'", "'opt4c' applies to matrix2d only"]),
    (_config("adder_tree", mac="laconic"), ["mac", "got 'laconic'", "for arch 'adder_tree'",
                                            "'laconic' applies to matrix2d only"]),
    (_config("systolic_os", mac="OPT1"), ["mac", "got 'OPT1'", "one of 'baseline', 'opt1' for arch 'systolic_os'"]),
    (_config("systolic_os", mac=1), ["mac", "got 1", "one of 'baseline', 'opt1'"]),
    (_config("systolic_os", mac=None) | {"mac": None}, ["mac", "got null", "one of 'baseline', 'opt1'"]),
]


@pytest.mark.parametrize("data,parts", REJECTED, ids=[str(i) for i in range(len(REJECTED))])
def test_mac_that_does_not_apply_is_one_line(data, parts, tmp_path, capsys):
    with pytest.raises(ConfigError) as caught:
        parse_config_data(data, "cfg.yaml")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cfg.yaml: mac: ")
    for part in parts:
        assert part in message, (part, message)

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == f"npuforge: error: {path}: {message.removeprefix('cfg.yaml: ')}\n"


@pytest.mark.parametrize("arch", ["systolic_os", "systolic_ws", "cube"])
def test_opt1_is_accepted_where_it_applies(arch):
    cfg = parse_config_data(_config(arch, mac="opt1"), "a")
    assert cfg.mac == "opt1" and "mac opt1" in cfg.describe()


def test_baseline_is_the_default_and_keeps_the_config_hash():
    implicit = parse_config_data(_config("systolic_os"), "a")
    explicit = parse_config_data(_config("systolic_os", mac="baseline"), "b")
    opt1 = parse_config_data(_config("systolic_os", mac="opt1"), "c")
    assert implicit.mac == "baseline" and "mac" not in implicit.normalized()
    assert implicit.config_hash() == explicit.config_hash() != opt1.config_hash()
    assert opt1.normalized()["mac"] == "opt1"


@pytest.mark.parametrize("name", OPT1)
def test_manifest_records_mac_and_carry_save_fault_sites(name):
    cfg = load_config(RTL_CONFIGS[name])
    elab = elaborate(cfg)
    baseline = elaborate(cfg.model_copy(update={"mac": "baseline"}))
    assert elab.parameters["mac"] == "opt1" and baseline.parameters["mac"] == "baseline"
    sites = {site.path: site.width for site in elab.fault_sites}
    old = {site.path for site in baseline.fault_sites}
    value = {"systolic_ws": "psum_out"}.get(cfg.arch, "acc")
    # Every PE's accumulator (WS: partial sum) is a sum/carry pair of acc_width bits each; split
    # (systolic_os), a pair of L bits, the bits above resolved in acc_high, and the tree's G upper
    # bits of the last step waiting in acc_top_sum/acc_top_carry.
    held = [path for path in old if path.endswith(f".{value}")]
    assert len(held) == elab.parameters["mac_units"] // (cfg.depth or 1)
    split = _split(cfg) if cfg.arch == "systolic_os" else None
    for path in held:
        assert path not in sites
        stem = path[:-len(value)] + ("psum" if cfg.arch == "systolic_ws" else "acc")
        pair_width = split[0] if split else cfg.acc_width
        assert sites[f"{stem}_sum{'_out' if cfg.arch == 'systolic_ws' else ''}"] == pair_width
        assert sites[f"{stem}_carry{'_out' if cfg.arch == 'systolic_ws' else ''}"] == pair_width
        if split:
            assert sites[f"{stem}_high"] == cfg.acc_width - split[0]
            assert sites[f"{stem}_top_sum"] == sites[f"{stem}_top_carry"] == split[1]
        else:
            assert f"{stem}_high" not in sites and f"{stem}_top_sum" not in sites
    # Nothing else changes but the latency: the cube loses its tree register (opt1 folds the tree into the
    # accumulator's compressor), the streaming OS array gains a readout register before its one adder per column.
    keep = {"job", "job_interval", "flow_control", "mac_units", "acc_width", "k_max"}
    assert {k: elab.parameters[k] for k in keep} == {k: baseline.parameters[k] for k in keep}
    change = {"cube": -1, "systolic_os": 1 if cfg.result_buffers == 2 else 0}.get(cfg.arch, 0)
    assert elab.parameters["latency"] == baseline.parameters["latency"] + change
    if change == 1:  # the readout register holds a sum/carry pair per column
        for j in range(cfg.cols):
            assert sites[f"core.bus_sum_{j}"] == sites[f"core.bus_carry_{j}"] == cfg.acc_width
    # No multiplier and no carry-propagate adder inside a PE (the baseline's PEs have both), but the
    # split accumulation's adder above the tree: every add reads bits from L up only (of the tree's
    # outputs, or of either addend packed in one vector of 2 x acc_width bits).
    pe_text, split = _pe_verilog(elab.verilog), _split(cfg)
    assert " * " not in pe_text and " * " in _pe_verilog(baseline.verilog) and " + " in _pe_verilog(baseline.verilog)
    adds = [line for line in pe_text.splitlines() if " + " in line or " - " in line]
    assert bool(adds) == (split is not None)
    for line in adds:
        assert all(int(low) % cfg.acc_width == split[0] for low in re.findall(r"\[\d+:(\d+)\]", line.split("=", 1)[1])), line


def _split(cfg):
    from amaranth.hdl import Shape

    from hw.tpe.mac import split_widths

    shape = Shape(cfg.operand.width, cfg.operand.signed)
    return split_widths(cfg.depth if cfg.arch == "cube" else 1, shape, shape, cfg.acc_width)


def _pe_verilog(text: str) -> str:
    """The bodies of the PE modules (and their Booth and compressor submodules) in ``text``."""
    bodies = [module for module in text.split("\nmodule ")[1:] if ".pe_" in module.split("(", 1)[0]]
    assert bodies
    return "\n".join(line for body in bodies for line in body.splitlines() if not line.lstrip().startswith("//"))


@per_config("os_3x4_s8_opt1", "os_2x3_u6_opt1", "os_2x2_s8_opt1_shift")
def test_carry_save_sums_wrap_past_k_max_like_the_golden_model(built, config_name, tmp_path):
    model = built(config_name)
    cfg = model.config
    lo = -(1 << (cfg.operand.width - 1)) if cfg.operand.signed else (1 << cfg.operand.width) - 1
    k = 10 * cfg.k_max  # K * lo**2 exceeds 2**acc_width: the sum wraps
    assert k * lo * lo >= 1 << (cfg.acc_width - (1 if cfg.operand.signed else 0))
    rng = np.random.default_rng(4)
    a = np.full((cfg.rows, k), lo)
    b = np.full((k, cfg.cols), lo)
    b[:, 0] = rng.integers(0, abs(lo), k)
    tb = sim_testbench(cfg)
    vectors = tb.make_vectors(cfg, seed=6, n_random=0, edge_cases=False)
    vectors["jobs"] = [_job("wraps", a, b, cfg), _job("after", a[:, :3], b[:3], cfg)]

    result = run(model, tb, vectors, tmp_path)
    assert result.ok, (result.mismatch, result.log)


@per_config(*OPT1)
def test_opt1_reset_mid_job_discards_everything_in_flight(built, config_name, tmp_path):
    _reset_mid_job(built, config_name, tmp_path)


@per_config("os_3x4_s8_opt1")
@pytest.mark.parametrize("register, bit, weight", [("acc_carry", 6, 6), ("acc_top_carry", 1, 17), ("acc_top_sum", 0, 16),
                                                   ("acc_high", 3, 19)],
                         ids=["carry_low", "top_carry", "top_sum", "high"])
def test_bit_flipped_in_a_carry_register_changes_one_element_by_its_weight(built, config_name, tmp_path,
                                                                           register, bit, weight):
    """A split accumulator's value is ``(acc_high + top_sum + top_carry - constants) * 2**L + sum + carry``
    (``L = 16``): a flipped bit of any of its registers moves one element by that bit's weight there,
    whether the tree's top waits for its add (``acc_top_*``) or was added (``acc_high``)."""
    model = built(config_name)
    cfg = model.config
    tb = sim_testbench(cfg)
    rng = np.random.default_rng(9)
    a = rng.integers(-128, 128, size=(cfg.rows, cfg.k_max))
    b = rng.integers(-128, 128, size=(cfg.k_max, cfg.cols))
    vectors = tb.make_vectors(cfg, seed=5, n_random=0, edge_cases=False)
    vectors["jobs"] = [_job("victim", a, b, cfg)]
    # PE (1, 2) accumulates steps 0..39 in cycles 4..43; cycle 12 is mid-job.
    vectors["inject"] = [{"path": f"core.pe_1_2.{register}", "bit": bit, "cycle": 12}]

    result = run(model, tb, vectors, tmp_path)

    assert result.results["injected"][0]["applied_at"] == 12
    m = result.mismatch
    assert m is not None and (m["job"], m["index"]) == (0, [1, 2])
    assert abs(m["got"] - m["expected"]) == 1 << weight
    got = np.array(result.results["jobs"][0])
    assert (got != np.array(vectors["jobs"][0]["c"])).sum() == 1


def test_config_offers_only_what_the_hardware_implements():
    from gen.kinds.tpe import MAC_BY_ARCH, MAC_PLANNED
    from hw.tpe.mac import MAC_OPTIONS

    offered = {option for options in MAC_BY_ARCH.values() for option in options}
    assert offered == set(MAC_OPTIONS) and not offered & set(MAC_PLANNED)
    assert all(options[0] == "baseline" for options in MAC_BY_ARCH.values())
