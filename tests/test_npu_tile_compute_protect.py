"""Every mechanism on ``compute`` on tiles of 1, 3 and 8 rows of two architectures (``matrix2d``, ``cube``).

The checks beside the engine select a result row by a chain of multiplexers from the third
row on (the residue check once failed to elaborate there), and replicas scale with the
engine, so the rows matter. Every (architecture, rows, mechanism) generates and lints
(24 elaborations of tiny tiles); a subset is built and simulated bit-exact against the
golden interpreter with no alarm (each build is a Verilator model): residue at 3 and 8
rows, TMR at 1 row, ABFT on a one-row cube (DMR and ABFT at 2 rows are the
``npu_tile_2x3_prot`` and ``npu_tile_2x3_chk`` tiles of the RTL configs).
``NPUFORGE_PROTECT_MATRIX=full`` simulates all 24 (24 builds, run before a change to the
checks or the tile; not in ``make test``).
"""

import itertools
import os

import pytest
from conftest import BUILD_ROOT

from gen.config import parse_config_data
from gen.emit import generate
from gen.lint import lint, with_source
from sim.runner import build, run
from sim.tb import npu_tile as tb

ARCHS = ("matrix2d", "cube")
ROWS = (1, 3, 8)
MECHANISMS = ("dmr", "tmr", "residue", "abft")
ALL = tuple(itertools.product(ARCHS, ROWS, MECHANISMS))
#: Each row count, both architectures, signed and unsigned operands: residue and TMR (no RTL config has them
#: on compute) and ABFT on a cube.
SUBSET = (("cube", 3, "residue"), ("matrix2d", 8, "residue"), ("matrix2d", 1, "tmr"), ("cube", 1, "abft"))
SIMULATED = ALL if os.environ.get("NPUFORGE_PROTECT_MATRIX") == "full" else SUBSET


def _config(arch: str, rows: int, mechanism: str):
    """A small tile: cols 2 (1 at 8 rows), 4-bit operands (unsigned at 3 rows), cube depth 2."""
    compute = {"arch": arch, "rows": rows, "cols": 1 if rows == 8 else 2,
               "operand": {"width": 4, "signed": rows != 3}, "k_max": 4}
    if arch == "cube":
        compute["depth"] = 2
    return parse_config_data({
        "kind": "npu_tile", "name": f"tile_{arch}_{rows}_{mechanism}", "compute": compute, "a_depth": 4,
        "b_depth": 4, "cmd_depth": 10, "k_total_max": 8, "scale_width": 4, "out_width": 4,
        "protect": [{"match": "compute", "mechanism": mechanism}]}, "test")


@pytest.mark.parametrize("arch, rows, mechanism", ALL)
def test_every_compute_mechanism_generates_lint_clean(arch, rows, mechanism, tmp_path):
    cfg = _config(arch, rows, mechanism)
    result = generate(cfg, tmp_path)
    verilog = result.files[0]
    assert with_source(lint(verilog, cfg.name), verilog) == []
    names = [entry["name"] for entry in result.manifest["mechanisms"]]
    assert names == [f"compute_{mechanism}"]


@pytest.mark.rtl
@pytest.mark.parametrize("arch, rows, mechanism", [
    pytest.param(*case, marks=pytest.mark.xdist_group("tile_{}_{}_{}".format(*case)), id="{}-{}-{}".format(*case))
    for case in SIMULATED])
def test_compute_mechanism_simulates_bit_exact(arch, rows, mechanism, tmp_path):
    cfg = _config(arch, rows, mechanism)
    model = build(cfg, build_root=BUILD_ROOT)
    vectors = tb.make_vectors(cfg, seed=rows, n_random=6, valid_prob=0.8, ready_prob=0.7)
    result = run(model, tb, vectors, tmp_path)
    # ok: every row and flag as the golden's, and no alarm raised (the testbench's fault-free rule)
    assert result.ok, (result.mismatch, result.problems, result.log)
    assert all(flags["alarms"] == 0 for flags in result.results["flags"])
