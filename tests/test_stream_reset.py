"""Streams during reset: every valid and ready is low while ``rst`` is high (the AXI4-Stream rule), every kind.

``sim/tb/reset.py`` offers a beat on every consumed stream and is ready on every
produced one in every cycle, holds ``rst`` high from power-on and again between
stretches of traffic, and reports any handshake signal high in a reset cycle.
"""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from conftest import BUILD_ROOT, RTL_CONFIGS, per_config

import gen.elaborate
from gen.config import load_config
from gen.registry import KINDS
from sim import verilator_runtime
from sim.runner import build, check_reset_handshakes

#: One config of every kind (the TPE's two beat formats and the digit-serial matrix2d that once raised
#: results.valid in a reset cycle; the softmax gate): models the RTL tests build anyway.
RESET_CONFIGS = ("tpe_3x5_w8", "ws_3x4_s8", "m2d_2x3_s8_opt3", "exp_s10", "recip_u10_l2", "rsqrt_u12_n2",
                 "gelu_table", "softmax_l1_n8", "gate_e6_k2_l2", "layernorm_l1_n8", "npu_tile_2x3")


#: Kinds whose ports are AXI, not streams: the AXI reset rule (no VALID high in a reset cycle, on every
#: channel) is checked by their own testbench, named here so that a new kind must be placed somewhere.
AXI_KINDS = {"moevit_accel": "sim/tb/moevit_accel.py (the AXI monitors, run by "
                             "tests/test_moevit_accel.py::test_cocotb_axi_models_bad_descriptors_and_reset)"}


def test_every_kind_is_covered():
    kinds = {load_config(RTL_CONFIGS[name]).kind for name in RESET_CONFIGS}
    assert kinds | set(AXI_KINDS) == {kind.name for kind in KINDS}
    assert not kinds & set(AXI_KINDS)


@per_config(*RESET_CONFIGS)
def test_no_handshake_in_reset(built, config_name, tmp_path):
    assert check_reset_handshakes(built(config_name), tmp_path, seed=len(config_name)) == []


def _ungated(self, platform):
    """The wrapper as it was before the reset rule: ports straight through."""
    m = Module()
    m.submodules[gen.elaborate.CORE_INSTANCE] = self._core
    wiring.connect(m, wiring.flipped(self), self._core)
    return m


@pytest.mark.xdist_group("reset_ungated")
def test_the_check_sees_an_engine_ready_in_reset(monkeypatch, tmp_path):
    """Without the gating, the systolic array's operands.ready is high in reset cycles: the check says so."""
    monkeypatch.setattr(gen.elaborate._PassThroughTop, "elaborate", _ungated)
    # The patched generator needs a build root of its own; Verilator's runtime objects and precompiled header
    # are the suite's (compiling them again is 19 of this test's 30 s).
    shared_dir = verilator_runtime.shared_dir
    monkeypatch.setattr(verilator_runtime, "shared_dir",
                        lambda root, family, facts: shared_dir(BUILD_ROOT, family, facts))
    model = build(load_config(RTL_CONFIGS["tpe_1x1_w4"]), build_root=tmp_path / "build")
    problems = check_reset_handshakes(model, tmp_path / "run")
    assert any("operands__ready is high" in problem for problem in problems), problems
