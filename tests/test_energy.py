"""The energy proxy (``sim/energy.py``, ``fpga/modules.py``): parsers, operand data, and one tiny
toggle-counting model (a 1x2 signed 8-bit output-stationary array) run on several workloads."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import BUILD_ROOT

from gen.config import parse_config_data
from gen.errors import ToolError
from sim import energy
from sim.golden.tpe import matmul

TINY = {"kind": "tpe", "name": "energy_os_1x2_s8", "arch": "systolic_os", "rows": 1, "cols": 2,
        "operand": {"width": 8, "signed": True}, "k_max": 16}
#: The PE registers that carry data (fault sites of ``core.pe_<i>_<j>``); the rest is framing.
PE_DATA = ("a_out", "b_out", "acc")


# ---------------------------------------------------------------- pure functions

def _point(hier: str, name: str, count: int, kind: str = "toggle") -> str:
    pairs = {"f": "design.v", "l": "1", "t": kind, "page": f"v_{kind}/x", "o": name, "h": hier}
    return "C '" + "".join(f"\x01{k}\x02{v}" for k, v in pairs.items()) + f"' {count}"


def test_parse_coverage_sums_both_directions_per_bit_and_skips_clock_and_other_points():
    text = "\n".join([
        "# SystemC::Coverage-3",
        _point("TOP.t", "x[0]:0->1", 3), _point("TOP.t", "x[0]:1->0", 2),
        _point("TOP.t", "x[1]:0->1", 0), _point("TOP.t", "x[1]:1->0", 0),
        _point("TOP.t.core.pe_0_0", "done:0->1", 4), _point("TOP.t.core.pe_0_0", "done:1->0", 4),
        _point("TOP.t.core.pe_0_0", "clk:0->1", 9), _point("TOP.t.core.pe_0_0", "clk[0]:1->0", 9),
        _point("TOP.t", "legacy[2]", 5),                   # a point without direction (older Verilator)
        _point("TOP.t", "x[0]:0->1", 7, kind="line"),      # not a toggle point
    ])
    assert energy.parse_coverage(text, {"clk"}) == {
        "t": {"x[0]": 5, "x[1]": 0, "legacy[2]": 5},
        "t.core.pe_0_0": {"done": 8},
    }


def test_operands_gaussian_clipped_grows_with_sigma_and_uniform_covers_the_range():
    rng = np.random.default_rng(3)
    spreads = []
    for dist in ("sigma10", "sigma30", "sigma50"):
        x = energy.operands(rng, (20000,), dist, 8, True)
        assert x.dtype == np.int64 and x.min() >= -128 and x.max() <= 127
        spreads.append(np.abs(x).mean())
    assert spreads[0] < spreads[1] < spreads[2]
    assert 7 < spreads[0] < 9  # E|N(0, 10)| = 7.98
    wide = energy.operands(rng, (20000,), "sigma50", 8, True)
    assert (wide == 127).any() and (wide == -128).any()  # clipped, not wrapped
    magnitude = energy.operands(rng, (1000,), "sigma30", 6, False)
    assert magnitude.min() >= 0 and magnitude.max() <= 63
    uniform = energy.operands(rng, (20000,), "uniform", 8, True)
    assert uniform.min() == -128 and uniform.max() == 127
    for bad in ("gauss", "sigma", "sigma0", "sigma-3", "sigmaX"):
        with pytest.raises(ValueError, match="distribution"):
            energy.sigma_of(bad)


@pytest.mark.parametrize("arch, size", [
    ("systolic_os", {"rows": 2, "cols": 3, "k_max": 8}),
    ("systolic_ws", {"rows": 3, "cols": 2}),
    ("adder_tree", {"cols": 3, "k_tile": 4, "k_max": 8}),
    ("cube", {"rows": 2, "cols": 3, "depth": 2, "k_max": 8}),
])
def test_tile_gemm_jobs_add_up_to_the_whole_product(arch, size):
    cfg = parse_config_data({"kind": "tpe", "name": "t", "arch": arch, "operand": {"width": 8, "signed": True},
                             **size}, "test")
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, size=(6, 8)), rng.integers(-128, 128, size=(8, 6))
    jobs = energy.tile_gemm(cfg, a, b)
    total = np.zeros((6, 6), dtype=np.int64)
    rows = cfg.rows if arch == "systolic_ws" else cfg.c_rows
    tiles = [(r, c) for r in range(0, 6, rows) for c in range(0, 6, cfg.cols)]
    per_tile = len(jobs) // len(tiles)
    for index, job in enumerate(jobs):
        r, c = tiles[index // per_tile]
        assert np.array_equal(job["c"], matmul(np.array(job["a"]), np.array(job["b"]), width=8, signed=True,
                                               acc_width=cfg.acc_width))
        total[r:r + rows, c:c + cfg.cols] += np.array(job["c"])
    assert np.array_equal(total, a @ b)


def test_energy_proxy_weights_each_instance_by_its_gates_per_signal_bit():
    activity = energy.Activity(toggles={"t": {"x[0]": 4, "x[1]": 0}, "t.core": {"y": 6, "z": 0, "w": 0}},
                               cycles=10, macs=4)
    modules = {"t": {"cells": 0, "transistors": 0}, "t.core": {"cells": 30, "transistors": 300},
               "t.core.pe_0_0": {"cells": 0, "transistors": 0}}
    result = energy.energy_proxy(activity, modules)
    assert result["total"] == pytest.approx(30 * 6 / 3)
    assert result["per_op"] == pytest.approx(60 / 4)
    assert result["toggle_rate"] == pytest.approx(10 / (5 * 10))
    assert result["unmatched"] == []
    assert energy.energy_proxy(activity, modules, "transistors")["per_op"] == pytest.approx(600 / 4)
    # An instance with toggles but no gate count, or gates but no toggles, is reported.
    assert energy.energy_proxy(activity, {"t.core": {"cells": 30}, "t.gone": {"cells": 5}})["unmatched"] == \
        ["t", "t.gone"]


#: What Yosys 0.23 writes for ``stat -json -tech cmos`` of a hierarchical design: valid JSON up
#: to the end of ``modules``, then a text table of the hierarchy inside the ``design`` section.
HIER_STAT = r'''{
   "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
   "invocation": "stat -json -tech cmos ",
   "modules": {
      "\\t": {
         "num_wires":         3,
         "num_cells":         1,
         "num_cells_by_type": {
            "t.core": 1
         },
         "estimated_num_transistors": "0+"
      },
      "\\t.core": {
         "num_cells":         5,
         "num_cells_by_type": {
            "$_AND_": 2,
            "$_DFF_P_": 2,
            "$_XOR_": 1
         },
         "estimated_num_transistors": "56"
      }
   },
   "design": {
       t                             1
       t.core                        1
      "num_cells": 5
   }
}
'''


def test_parse_module_stat_reads_every_module_of_yosys_hierarchical_output():
    from fpga.modules import parse_module_stat

    assert parse_module_stat(HIER_STAT) == {
        "t": {"cells": 0, "transistors": 0, "ff": 0},
        "t.core": {"cells": 5, "transistors": 56, "ff": 2},
    }
    with pytest.raises(ValueError, match=r"no CMOS cost for cell types \$_SDFFE_PP0P_"):
        parse_module_stat(HIER_STAT.replace('"$_XOR_": 1', '"$_SDFFE_PP0P_": 1'))
    with pytest.raises(ValueError, match="no 'modules'"):
        parse_module_stat("{}")


# ---------------------------------------------------------------- one tiny toggle model

@pytest.fixture(scope="module")
def tiny():
    # Verilator comes with the Python dependencies: a failed build is a failure, not a skip.
    design = energy.prepare(parse_config_data(TINY, "test"), build_root=BUILD_ROOT)
    return design


def _run(design, distribution, *, seed=1, repeats=6):
    jobs, macs = energy.gemm_workload(design.config, distribution, m=2, k=16, n=4, repeats=repeats, seed=seed)
    return energy.measure(design, jobs, macs, f"{distribution}-s{seed}-r{repeats}")


def _pe_data_toggles(activity) -> int:
    return sum(count for inst, bits in activity.toggles.items() if ".pe_" in inst
               for bit, count in bits.items() if bit.split("[")[0] in PE_DATA)


def test_zero_operands_toggle_only_the_handshake_and_framing(tiny):
    zeros = energy.tile_gemm(tiny.config, np.zeros((2, 16), dtype=np.int64), np.zeros((16, 4), dtype=np.int64))
    quiet = energy.measure(tiny, zeros * 6, 6 * 2 * 16 * 4, "zeros")
    busy = _run(tiny, "uniform")
    assert quiet.cycles == busy.cycles  # fixed timing: the same jobs take the same cycles
    assert _pe_data_toggles(quiet) == 0 and _pe_data_toggles(busy) > 1000
    # The operand payload's a and b bits never move; its `last` bit does (job framing).
    layout = next(i for i in tiny.manifest["interfaces"] if i["name"] == "operands")["payload"]
    last = next(f["offset"] for f in layout["fields"] if f["name"] == "last")
    top = quiet.toggles[TINY["name"]]
    payload = {bit: count for bit, count in top.items() if bit.startswith("operands___05Fpayload[")}
    assert set(payload) == {f"operands___05Fpayload[{n}]" for n in range(layout["width"])}
    assert all(count == 0 for bit, count in payload.items() if bit != f"operands___05Fpayload[{last}]")
    assert payload[f"operands___05Fpayload[{last}]"] > 0
    assert 0 < quiet.total() < busy.total() / 10
    assert all("clk" != bit.split("[")[0] for bits in busy.toggles.values() for bit in bits)


def test_activity_grows_with_sigma_and_is_deterministic_for_a_seed(tiny):
    from fpga.modules import module_cells

    if shutil.which("yosys") is None:
        pytest.skip("Debian yosys is not installed (make sysdeps)")
    modules = module_cells(tiny.verilog, TINY["name"], config_hash=tiny.config.config_hash(),
                           cache_dir=tiny.home / "synth-modules")["modules"]
    assert {name for name, m in modules.items() if m["cells"]} <= set(_run(tiny, "sigma10").toggles)
    runs = {dist: _run(tiny, dist) for dist in energy.DISTRIBUTIONS}
    proxies = [energy.energy_proxy(runs[dist], modules) for dist in energy.DISTRIBUTIONS]
    assert all(p["unmatched"] == [] for p in proxies)
    per_op = [p["per_op"] for p in proxies]
    assert per_op == sorted(per_op) and len(set(per_op)) == 4, per_op
    rates = [p["toggle_rate"] for p in proxies]
    assert rates == sorted(rates), rates
    again = _run(tiny, "sigma30")
    assert again.toggles == runs["sigma30"].toggles and again.cycles == runs["sigma30"].cycles
    assert _run(tiny, "sigma30", seed=2).toggles != runs["sigma30"].toggles


def test_a_run_whose_results_differ_from_the_golden_model_is_refused(tiny):
    jobs, macs = energy.gemm_workload(tiny.config, "sigma30", m=1, k=4, n=2, repeats=1)
    jobs[0]["c"][0][1] += 1
    with pytest.raises(ToolError, match="did not reproduce the golden results"):
        energy.measure(tiny, jobs, macs, "wrong")


def test_toggle_model_build_is_reused(tiny):
    built = tiny.binary.stat().st_mtime_ns
    again = energy.toggle_model(tiny.verilog, tiny.manifest, BUILD_ROOT)
    assert again == tiny.binary and again.stat().st_mtime_ns == built
    assert (again.parent / "stamp").read_text().strip().startswith(again.parent.name.rsplit("-", 1)[1])


# ---------------------------------------------------------------- the gate-level measure

def _netlist_json():
    """A hand-written ``write_json`` module: an AND of two inputs into a flip-flop whose output is
    the port ``q`` and also bit 1 of the vector ``bus`` (an alias), bit 0 of ``bus`` constant."""
    gate = {"type": "$_AND_", "port_directions": {"A": "input", "B": "input", "Y": "output"},
            "connections": {"A": [2], "B": [3], "Y": [5]}}
    flop = {"type": "$_DFF_P_", "port_directions": {"C": "input", "D": "input", "Q": "output"},
            "connections": {"C": [4], "D": [5], "Q": [6]}}
    echo = {"type": "$_NOT_", "port_directions": {"A": "input", "Y": "output"},
            "connections": {"A": [2], "Y": [7]}}
    return {"modules": {"top": {
        "ports": {"a": {"direction": "input", "bits": [2]}, "b": {"direction": "input", "bits": [3]},
                  "clk": {"direction": "input", "bits": [4]}, "q": {"direction": "output", "bits": [6]}},
        "cells": {"g": gate, "f": flop, "n": echo},
        "netnames": {"a": {"bits": [2]}, "b": {"bits": [3]}, "clk": {"bits": [4]}, "n1": {"bits": [5]},
                     "q": {"bits": [6]}, "bus": {"bits": ["0", 6], "offset": 3}, "n2": {"bits": [7]}}}}}


def test_net_loads_counts_input_pins_and_output_ports_and_names_every_alias():
    from fpga.netlist import net_loads

    nets = net_loads(_netlist_json(), "top")
    # bus[3] is a constant, bus[4] another name of q's net; n2 drives nothing.
    assert nets["bits"] == {"a": 2, "b": 3, "clk": 4, "n1": 5, "q": 6, "bus[4]": 6, "n2": 7}
    assert nets["loads"] == {"2": 2, "3": 1, "4": 1, "5": 1, "6": 1, "7": 0}
    assert nets["constants"] == ["bus[3]"]
    with pytest.raises(ValueError, match="no module other"):
        net_loads(_netlist_json(), "other")


def test_gate_proxy_counts_each_net_once_by_load_whatever_name_verilator_reports():
    from fpga.netlist import net_loads

    nets = net_loads(_netlist_json(), "top")
    # Verilator escapes '_' after '_' as ___05F and writes a flip-flop's reg as <wire>_reg.
    toggles = {"top": {"a": 4, "b": 2, "n1": 3, "q": 3, "bus[4]": 3, "bus_reg[4]": 3, "n2": 4, "bus[3]": 1}}
    run = energy.Activity(toggles=toggles, cycles=10, macs=2)
    result = energy.gate_proxy(run, nets)
    # a: 4 x 2 pins, b: 2 x 1, n1: 3 x 1, q's net (three names) once: 3 x 1, n2: 4 x 0.
    assert result["per_op"] == (8 + 2 + 3 + 3 + 0) / 2
    assert result["toggles_per_op"] == (4 + 2 + 3 + 3 + 4) / 2
    assert result["unmatched"] == [] and result["nets"] == 6
    escaped = energy.Activity(toggles={"top": {"my___05Fnet": 1, "n1": 0, "stray[2]": 5}}, cycles=1, macs=1)
    assert energy.gate_proxy(escaped, {"bits": {"my__net": 9}, "loads": {"9": 2}})["per_op"] == 2
    assert energy.gate_proxy(escaped, {"bits": {"my__net": 9}, "loads": {"9": 2}})["unmatched"] == ["stray[2]"]


@pytest.fixture(scope="module")
def tiny_gates(tiny):
    from fpga.netlist import gate_netlist

    if shutil.which("yosys") is None:
        pytest.skip("Debian yosys is not installed (make sysdeps)")
    netlist = gate_netlist(tiny.verilog, TINY["name"], config_hash=tiny.config.config_hash(),
                           cache_dir=tiny.home / "gate-netlist")
    return netlist, energy.prepare_netlist(tiny.config, netlist["netlist"], tiny.manifest, build_root=BUILD_ROOT)


def test_the_gate_netlist_runs_the_workload_bit_exact_and_every_toggle_finds_its_net(tiny, tiny_gates):
    netlist, design = tiny_gates
    assert netlist["cells"] > 0 and netlist["transistors"] > netlist["cells"] and netlist["ff"] > 0
    assert "$" not in Path(netlist["netlist"]).read_text()  # every net has a plain name
    rtl_run = _run(tiny, "sigma30")
    per_op = []
    for dist in energy.DISTRIBUTIONS:
        run = _run(design, dist)  # measure() refuses a run that differs from the golden model
        assert run.cycles == rtl_run.cycles
        result = energy.gate_proxy(run, netlist["nets"])
        assert result["unmatched"] == []
        per_op.append(result["per_op"])
    assert per_op == sorted(per_op) and len(set(per_op)) == 4, per_op
    # The RTL's signal names are not the netlist's nets: read against them, nearly all are unmatched.
    assert len(energy.gate_proxy(rtl_run, netlist["nets"])["unmatched"]) > 20
    zeros = energy.tile_gemm(tiny.config, np.zeros((2, 16), dtype=np.int64), np.zeros((16, 4), dtype=np.int64))
    quiet = energy.gate_proxy(energy.measure(design, zeros * 6, 6 * 2 * 16 * 4, "zeros"), netlist["nets"])
    assert 0 < quiet["per_op"] < per_op[0] / 10


def test_the_gate_netlist_is_cached_by_the_verilog(tiny, tiny_gates):
    from fpga.netlist import gate_netlist

    netlist, _ = tiny_gates
    again = gate_netlist(tiny.verilog, TINY["name"], config_hash=tiny.config.config_hash(),
                         cache_dir=tiny.home / "gate-netlist")
    assert again["cache_key"] == netlist["cache_key"] and again["nets"] == netlist["nets"]
    assert Path(again["netlist"]).stat().st_mtime_ns == Path(netlist["netlist"]).stat().st_mtime_ns
