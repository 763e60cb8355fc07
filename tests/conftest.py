"""Shared fixtures: the configs the RTL tests cover and one Verilator build per config.

RTL tests are grouped by config (``xdist_group``) and run with ``--dist loadgroup``,
so each model is built once, by one worker, under ``build/tests/``.
"""

import os
from pathlib import Path

import pytest
import yaml

from gen.config import load_config

ROOT = Path(__file__).resolve().parent.parent
BUILD_ROOT = ROOT / "build" / "tests"
# Test models simulate a few hundred cycles each, so compiling dominates: build them
# unoptimised (halves a small model's build, 12.1 s -> 6.7 s measured). The fault and energy
# harnesses append their own OPT_* after this, and the last definition wins.
os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0").strip()
# The accelerator's harnesses too, in their own way (sim.fault.harness.ACCEL_BUILDS: about half the build
# time, half the simulation speed); a test that needs the run build asks for it.
os.environ.setdefault("NPUFORGE_ACCEL_BUILD", "quick")

_TESTS = ROOT / "tests" / "configs"

#: name -> config file. Every architecture at two sizes, signed and unsigned.
#: systolic_os: shapes 1x1, 3x5, 8x8, a single row and a single column; widths
#: 4, 5, 8, 16 signed and 6, 8 unsigned; both result_buffers settings.
RTL_CONFIGS = {
    "tpe_1x4_u6": _TESTS / "tpe_1x4_u6.yaml",
    "tpe_5x1_w5": _TESTS / "tpe_5x1_w5.yaml",
    "tpe_1x1_w4": _TESTS / "tpe_1x1_w4.yaml",
    "tpe_3x5_w8": _TESTS / "tpe_3x5_w8.yaml",
    "tpe_3x5_w16": _TESTS / "tpe_3x5_w16.yaml",
    "tpe_4x3_u8": _TESTS / "tpe_4x3_u8.yaml",
    "os_8x8": ROOT / "configs" / "os_8x8.yaml",
    "ws_3x4_s8": _TESTS / "ws_3x4_s8.yaml",
    "ws_4x2_u6": _TESTS / "ws_4x2_u6.yaml",
    "cube_2x3x4_s8": _TESTS / "cube_2x3x4_s8.yaml",
    "cube_3x2x2_u5": _TESTS / "cube_3x2x2_u5.yaml",
    "tree_4x8_s8": _TESTS / "tree_4x8_s8.yaml",
    "tree_3x4_u7": _TESTS / "tree_3x4_u7.yaml",
    "m2d_3x4_s8": _TESTS / "m2d_3x4_s8.yaml",
    "m2d_4x2_u4": _TESTS / "m2d_4x2_u4.yaml",
    # mac: opt1 (carry-save PEs, tests/test_tpe_mac.py): both OS readouts, WS, cube; signed and unsigned
    "os_3x4_s8_opt1": _TESTS / "os_3x4_s8_opt1.yaml",  # k_max 40: its tree is split (hw.tpe.mac.split_widths)
    "os_2x3_u6_opt1": _TESTS / "os_2x3_u6_opt1.yaml",
    "os_2x2_s8_opt1_shift": _TESTS / "os_2x2_s8_opt1_shift.yaml",  # split, shift readout
    "ws_3x4_s8_opt1": _TESTS / "ws_3x4_s8_opt1.yaml",
    "cube_2x2x3_u6_opt1": _TESTS / "cube_2x2x3_u6_opt1.yaml",
    # mac: opt2 (bit-weight sums, tests/test_tpe_opt2.py): adder_tree signed INT8, cube and matrix2d unsigned
    "tree_2x4_s8_opt2": _TESTS / "tree_2x4_s8_opt2.yaml",
    "cube_2x2x3_u6_opt2": _TESTS / "cube_2x2x3_u6_opt2.yaml",
    "m2d_2x3_u5_opt2": _TESTS / "m2d_2x3_u5_opt2.yaml",
    # fanout (registered copies of the broadcast operands, one more cycle of latency): cube opt2, matrix2d
    "cube_3x4x2_s6_opt2_fan2": _TESTS / "cube_3x4x2_s6_opt2_fan2.yaml",
    "m2d_3x5_s8xu6_fan2": _TESTS / "m2d_3x5_s8xu6_fan2.yaml",
    # mac: opt3, opt4c, laconic (digit-serial matrix2d, data-dependent cycles, tests/test_tpe_sparse.py)
    "m2d_2x3_s8_opt3": _TESTS / "m2d_2x3_s8_opt3.yaml",
    "m2d_3x2_u6_opt4c": _TESTS / "m2d_3x2_u6_opt4c.yaml",
    "m2d_3x2_s5_laconic": _TESTS / "m2d_3x2_s5_laconic.yaml",
    "m2d_1x3_u4_laconic": _TESTS / "m2d_1x3_u4_laconic.yaml",
    # decoupled rows (row_queue): opt4c with a queue of 2, opt3 with a queue of 3 (tests/test_tpe_sparse.py)
    "m2d_3x2_s6_opt4c_q2": _TESTS / "m2d_3x2_s6_opt4c_q2.yaml",
    "m2d_4x2_u5_opt3_q3": _TESTS / "m2d_4x2_u5_opt3_q3.yaml",
    # two operand formats (operand_a, operand_b): 24 x 16 bits, and mixed signedness both ways
    # (more in Amaranth's simulator: tests/test_broadcast_amaranth.py, tests/test_systolic_ws_amaranth.py)
    "os_2x3_s24xs16": _TESTS / "os_2x3_s24xs16.yaml",
    "ws_3x2_u8xs16": _TESTS / "ws_3x2_u8xs16.yaml",
    "m2d_3x2_s16xu9": _TESTS / "m2d_3x2_s16xu9.yaml",
    # nonlinear element-wise kinds (tests/test_nonlinear_blocks.py)
    "exp_s10": ROOT / "configs" / "nonlinear" / "exp_s10.yaml",
    "reciprocal_u16": ROOT / "configs" / "nonlinear" / "reciprocal_u16.yaml",
    "rsqrt_u16": ROOT / "configs" / "nonlinear" / "rsqrt_u16.yaml",
    "exp_s10_l3": _TESTS / "exp_s10_l3.yaml",
    "exp_s8_table": _TESTS / "exp_s8_table.yaml",
    "recip_u10_l2": _TESTS / "recip_u10_l2.yaml",
    "rsqrt_u12_n2": _TESTS / "rsqrt_u12_n2.yaml",
    "rsqrt_u16_l4": _TESTS / "rsqrt_u16_l4.yaml",
    # GELU (tests/test_gelu.py): every method, lanes 1..4, signed and unsigned input
    "gelu_table": ROOT / "configs" / "nonlinear" / "gelu_table.yaml",
    "gelu_table_s10": _TESTS / "gelu_table_s10.yaml",
    "gelu_poly_s8_l3": _TESTS / "gelu_poly_s8_l3.yaml",
    "gelu_pwl_s9_l2": _TESTS / "gelu_pwl_s9_l2.yaml",
    "gelu_table_u7_l4": _TESTS / "gelu_table_u7_l4.yaml",
    # softmax and its top-k gate (tests/test_softmax.py)
    "softmax_l1_n8": _TESTS / "softmax_l1_n8.yaml",
    "softmax_l3_n13": _TESTS / "softmax_l3_n13.yaml",
    "gate_e6_k2_l2": _TESTS / "gate_e6_k2_l2.yaml",
    # LayerNorm (tests/test_layernorm.py)
    "layernorm_l1_n8": _TESTS / "layernorm_l1_n8.yaml",
    "layernorm_l3_n13": _TESTS / "layernorm_l3_n13.yaml",
    "layernorm_w32_n24": _TESTS / "layernorm_w32_n24.yaml",
    # the NPU tile (tests/test_npu_tile.py)
    "npu_tile_2x3": _TESTS / "npu_tile_2x3.yaml",
    "npu_tile_2x3_prot": _TESTS / "npu_tile_2x3_prot.yaml",
    "npu_tile_2x3_chk": _TESTS / "npu_tile_2x3_chk.yaml",  # tests/test_npu_tile_checks.py
    # unsigned 7-bit matrix2d 3x5: once constant comparisons stopped its build (tests/test_npu_tile.py)
    "npu_tile_3x5_u7": _TESTS / "npu_tile_3x5_u7.yaml",
}



def _kind_of(path: Path) -> str:
    return yaml.safe_load(path.read_text())["kind"]


#: The RTL configs of ``kind: tpe``: the TPE testbench's scenarios run on these.
TPE_CONFIGS = tuple(name for name, path in RTL_CONFIGS.items() if _kind_of(path) == "tpe")

#: One config per architecture (and per systolic_os readout), for the slower scenarios.
ONE_PER_ARCH = ("tpe_3x5_w8", "tpe_5x1_w5", "ws_3x4_s8", "cube_2x3x4_s8", "tree_3x4_u7", "m2d_4x2_u4")


def per_config(*names):
    """Parametrize over configs, keeping each config's tests on one xdist worker."""
    names = names or tuple(RTL_CONFIGS)
    return pytest.mark.parametrize(
        "config_name", [pytest.param(n, marks=pytest.mark.xdist_group(n), id=n) for n in names])


@pytest.fixture(scope="session")
def built():
    """``built(name, waves=False)`` -> :class:`sim.runner.Build`, built at most once per session."""
    from sim.runner import build

    cache = {}

    def get(name: str, waves: bool = False):
        if (name, waves) not in cache:
            cache[name, waves] = build(load_config(RTL_CONFIGS[name]), build_root=BUILD_ROOT, waves=waves)
        return cache[name, waves]

    return get
