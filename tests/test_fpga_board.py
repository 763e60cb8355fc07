"""``npuforge fpga``: the board project of an accelerator, checked without Vivado.

The micro accelerator (``tests/configs/accel_micro_os.yaml``: 32-bit addresses, two 64-bit ports) for
both boards, from the elaboration the harness tests use (the shared build directory, one worker):
every generated Vivado script runs in tclsh with Vivado's commands stubbed (``fpga/tcl/vivado_stub.tcl``)
and the recorded calls are held to the design's ports and address map (``fpga/tcl_check.py``);
so is the project script Edalize writes from the FuseSoC core (``fusesoc run --setup``), and
``fusesoc core show`` parses the core. The checks find a missing connection and a wrong clock;
``build.sh`` without Vivado is one line and exit 3; the resource table refuses a design over a
board's capacity.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUILD_ROOT, ROOT

from fpga import tcl_check
from fpga.boards import BOARDS
from fpga.integrate import board_files
from fpga.resources import check_fit, resource_table
from gen.errors import ConfigError

#: The worker of the micro accelerator's harness tests runs the module: one elaboration for both
#: (``gen.emit.generate_in_build`` in the shared build root).
pytestmark = pytest.mark.xdist_group("accel_micro_os")

MICRO = ROOT / "tests" / "configs" / "accel_micro_os.yaml"
FUSESOC = Path(sys.executable).with_name("fusesoc")
#: The micro accelerator's synth_xilinx counts (docs/fpga.md), in the shape fpga.synth returns.
MICRO_XCUP = {"lut": 15_590, "ff": 14_555, "carry": 2_136, "dsp": 63, "bram": 2, "cell_types": {"RAM64M8": 28},
              "tools": {"yosys": "0.23"}, "verilog_sha256": "0" * 64}


def _npuforge(capsys, *args) -> tuple[int, str]:
    """``npuforge ARGS`` in this process: the exit code and stderr."""
    from npuforge.cli import main

    code = main(list(args))
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """``{board: output dir}``: zcu104 through the command line (Yosys replaced by the micro accelerator's
    counts: resources.json and the fit check without minutes of synthesis), zcu102 from its manifest and
    files (no synthesis result: no resources.json)."""
    from types import SimpleNamespace

    import fpga.cost
    from npuforge.cli import main

    root = tmp_path_factory.mktemp("fpga")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fpga.cost, "synthesize_config", lambda cfg, target, **kw: SimpleNamespace(data=MICRO_XCUP))
        assert main(["fpga", str(MICRO), "--board", "zcu104", "-o", str(root / "zcu104"),
                     "--build-dir", str(BUILD_ROOT)]) == 0
    assert json.loads((root / "zcu104" / "resources.json").read_text())["table"][0]["used"] == 15_590 + 8 * 28
    generated = {p.name: p.read_text() for p in (root / "zcu104").iterdir()
                 if p.name == "manifest.json" or p.name.startswith("accel_micro_os") and not p.name.endswith(".core")}
    manifest = json.loads(generated["manifest.json"])
    (root / "zcu102").mkdir()
    for name, text in board_files(manifest, generated, BOARDS["zcu102"], 300.0).items():
        (root / "zcu102" / name).write_text(text)
    return {"zcu104": root / "zcu104", "zcu102": root / "zcu102", "manifest": manifest}


@pytest.mark.parametrize("board", ["zcu102", "zcu104"])
def test_stubbed_vivado_scripts_match_the_design(projects, board, tmp_path):
    out, manifest, spec = projects[board], projects["manifest"], BOARDS[board]
    ip = tcl_check.run_stubbed(out / "package_ip.tcl", tmp_path / "ip")
    assert tcl_check.check_ip(ip, manifest) == []
    assert any(c.name == "create_project" and "-in_memory" in c.args for c in ip), "standalone: its own project"
    bd = tcl_check.run_stubbed(out / "block_design.tcl", tmp_path / "bd")
    assert tcl_check.check_block_design(bd, manifest, spec, 300.0) == []
    project = tcl_check.run_stubbed(out / "project.tcl", tmp_path / "project")
    assert tcl_check.check_project(project, manifest, spec, 300.0) == []
    assigned = [c for c in project if c.name == "assign_bd_address"]
    assert len(assigned) == 1 + len(manifest["axi"]["masters"])
    # The same checks find what a broken script leaves out.
    assert any("pl_clk0 at 300 MHz" in p for p in tcl_check.check_block_design(bd, manifest, spec, 250.0))
    broken = out / "broken.tcl"
    broken.write_text("\n".join(line for line in (out / "block_design.tcl").read_text().splitlines()
                                if "smc_hp1/M00_AXI" not in line and "accel_0/irq" not in line))
    problems = tcl_check.check_block_design(tcl_check.run_stubbed(broken, tmp_path / "broken"), manifest, spec, 300.0)
    broken.unlink()
    assert any("m_axi1 reaches HP ports []" in p for p in problems), problems
    assert any("irq is not on pl_ps_irq0" in p for p in problems) and any("port irq" in p for p in problems)


@pytest.mark.parametrize("board", ["zcu102", "zcu104"])
def test_fusesoc_core_lists_every_file_and_edalize_project_checks(projects, board, tmp_path):
    out, manifest = projects[board], projects["manifest"]
    core_text = (out / "accel_micro_os.core").read_text()
    listed = set(re.findall(r'"([\w.]+\.\w+)"', core_text.split('"targets"')[0]))
    assert listed == {p.name for p in out.iterdir() if p.suffix != ".core"}
    assert ("resources.json" in listed) == (board == "zcu104")
    vlnv = "npuforge:accel:accel_micro_os:0.1.0"
    shown = subprocess.run([str(FUSESOC), "--cores-root", str(out), "core", "show", vlnv], capture_output=True,
                           text=True, cwd=tmp_path)
    assert shown.returncode == 0 and vlnv in shown.stdout and board in shown.stdout, shown.stderr
    work = tmp_path / "work"
    setup = subprocess.run([str(FUSESOC), "--cores-root", str(out), "run", "--no-export", "--setup", "--work-root",
                            str(work), "--target", board, vlnv], capture_output=True, text=True, cwd=tmp_path)
    assert setup.returncode == 0, setup.stderr
    calls = tcl_check.run_stubbed(work / "npuforge_accel_accel_micro_os_0.1.0.tcl", work)
    assert tcl_check.check_ip(calls, manifest) + tcl_check.check_block_design(calls, manifest, BOARDS[board], 300.0) == []
    assert ("board_part", BOARDS[board].board_part) == next(c.args[:2] for c in calls if c.name == "set_property"
                                                             and c.args[0] == "board_part")


def test_build_sh_without_vivado_is_one_line(projects, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    done = subprocess.run(["/bin/sh", str(projects["zcu104"] / "build.sh")], capture_output=True, text=True,
                          env={"PATH": str(bare)})
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1 and "vivado not found" in done.stderr


def test_outputs_are_deterministic_and_path_free(projects):
    manifest = projects["manifest"]
    generated = {p.name: p.read_text() for p in projects["zcu102"].iterdir()
                 if p.name == "manifest.json" or p.name.startswith("accel_micro_os") and not p.name.endswith(".core")}
    again = board_files(manifest, generated, BOARDS["zcu102"], 300.0)
    for name, text in again.items():
        assert (projects["zcu102"] / name).read_text() == text, name
        if not name.endswith((".v", ".json")):
            assert str(ROOT) not in text and "/tmp" not in text, name


def test_resource_table_refuses_what_does_not_fit():
    board = BOARDS["zcu104"]
    synth = {"lut": 1000, "ff": 2000, "carry": 10, "dsp": 1728, "bram": 624, "cell_types": {"RAM64M": 10, "SRLC32E": 3}}
    table = {row["resource"]: row for row in resource_table(synth, board)}
    assert table["LUT"]["used"] == 1000 + 40 + 3 and table["BRAM18"]["available"] == 624
    assert table["DSP48E2"]["percent"] == 100.0
    check_fit(list(table.values()), "acc", board)  # exactly full fits
    with pytest.raises(ConfigError) as error:
        check_fit(resource_table({**synth, "dsp": 1729}, board), "acc", board)
    assert "\n" not in str(error.value) and "1,729 DSP48E2" in str(error.value) and "zcu104" in str(error.value)
    check_fit(resource_table({**synth, "dsp": 1729}, BOARDS["zcu102"]), "acc", BOARDS["zcu102"])


@pytest.mark.parametrize("args,piece", [
    (["tests/configs/accel_micro_cube.yaml", "--board", "zcu104", "-o", "{tmp}/o"], "memory.addr_width: got 20"),
    (["tests/configs/os_2x3_u6_opt1.yaml", "--board", "zcu104", "-o", "{tmp}/o"], "kind: got 'tpe'"),
    (["tests/configs/accel_micro_os.yaml", "--board", "zcu106", "-o", "{tmp}/o"], "--board"),
    (["tests/configs/accel_micro_os.yaml", "--board", "zcu104", "-o", "{tmp}/file"], "-o: got"),
])
def test_cli_errors_are_one_line(args, piece, tmp_path, capsys, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.chdir(ROOT)
    code, err = _npuforge(capsys, "fpga", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2 and err.count("\n") == 1 and piece in err, err
    assert not (tmp_path / "o").exists()


def test_tclsh_and_fusesoc_are_there():
    """The checks above need both; a machine without them fails here with the reason."""
    assert shutil.which("tclsh"), "tclsh (apt-get install tcl)"
    assert FUSESOC.exists(), "fusesoc (pip install -e .[dev])"


def test_cli_refuses_a_design_over_the_board_before_writing(tmp_path, capsys, monkeypatch):
    """The synthesis result decides before anything is elaborated or written (Yosys replaced by a result
    of the shape fpga.synth returns: the micro accelerator's counts with the DSPs of a bigger one)."""
    from types import SimpleNamespace

    import fpga.cost

    config = MICRO
    numbers = {**MICRO_XCUP, "dsp": 2_000}
    calls = []
    monkeypatch.setattr(fpga.cost, "synthesize_config",
                        lambda cfg, target, **kw: calls.append(target) or SimpleNamespace(data=numbers))
    code, err = _npuforge(capsys, "fpga", str(config), "--board", "zcu104", "-o", str(tmp_path / "o"))
    assert calls == ["xcup"] and code == 2 and err.count("\n") == 1, err
    assert "2,000 DSP48E2" in err and "at most 1,728 on zcu104" in err
    assert not (tmp_path / "o").exists()
