"""Every registered kind with the modules of every layer that serve it.

``gen/registry.py`` lists what generation needs (config model, ``hw`` builder,
parameters, doc). This table adds, per kind, the ``sim/`` modules: the golden
model and the testbench. It lives here, above ``gen``, ``sim`` and ``fpga``,
because it names modules of all of them.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from gen.config.base import KindConfig
from gen.errors import ConfigError
from gen.registry import KINDS, Kind, kind_named


@dataclass(frozen=True)
class KindSupport:
    """The simulation side of one kind."""

    kind: Kind
    golden: str  # module path of the bit-exact model
    testbench: str  # module path: make_vectors, first_mismatch, describe_mismatch, the cocotb test
    # fault-campaign workloads: name -> "module:function" taking (cfg, manifest, **params) -> Workload
    workloads: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.kind.name


SUPPORT: dict[str, KindSupport] = {
    "tpe": KindSupport(kind=kind_named("tpe"), golden="sim.golden.tpe",
                       testbench="sim.tb.tpe", workloads={"gemm": "sim.tb.tpe_workload:gemm"}),
    "exp": KindSupport(kind=kind_named("exp"), golden="sim.golden.exp", testbench="sim.tb.nonlinear"),
    "reciprocal": KindSupport(kind=kind_named("reciprocal"), golden="sim.golden.reciprocal",
                              testbench="sim.tb.nonlinear"),
    "rsqrt": KindSupport(kind=kind_named("rsqrt"), golden="sim.golden.rsqrt", testbench="sim.tb.nonlinear"),
    "softmax": KindSupport(kind=kind_named("softmax"), golden="sim.golden.softmax", testbench="sim.tb.nonlinear"),
    "layernorm": KindSupport(kind=kind_named("layernorm"), golden="sim.golden.layernorm",
                             testbench="sim.tb.nonlinear"),
    "gelu": KindSupport(kind=kind_named("gelu"), golden="sim.golden.gelu", testbench="sim.tb.nonlinear"),
    "moevit_accel": KindSupport(kind=kind_named("moevit_accel"), golden="sim.golden.moevit.fixed",
                                testbench="sim.tb.moevit_accel"),
    "npu_tile": KindSupport(kind=kind_named("npu_tile"), golden="sim.golden.npu_tile", testbench="sim.tb.npu_tile",
                            workloads={"npu_gemm": "sim.tb.npu_tile_workload:npu_gemm"}),
}


def support_for(cfg: KindConfig) -> KindSupport:
    return SUPPORT[cfg.kind]


def sim_testbench(cfg: KindConfig) -> ModuleType:
    """The testbench module of ``cfg``'s kind (host side and cocotb test)."""
    return importlib.import_module(support_for(cfg).testbench)


def workload_for(cfg: KindConfig, name: str) -> Callable:
    """Workload function ``name`` of ``cfg``'s kind: ``f(cfg, manifest, **params) -> sim.fault.workload.Workload``."""
    table = support_for(cfg).workloads
    if name not in table:
        allowed = ", ".join(sorted(table)) or "none"
        raise ConfigError(f"workload.type: {name!r} is not a workload of kind {cfg.kind}; allowed: {allowed}")
    module, function = table[name].split(":")
    return getattr(importlib.import_module(module), function)


def kind_workloads(cfg: KindConfig) -> dict[str, Callable]:
    """Name -> workload function, every workload of ``cfg``'s kind: what
    ``sim.fault.config.load_campaign(path, workloads=kind_workloads)`` takes."""
    return {name: workload_for(cfg, name) for name in support_for(cfg).workloads}


def golden_for(cfg: KindConfig) -> ModuleType:
    return importlib.import_module(support_for(cfg).golden)


def unsupported() -> list[str]:
    """Kinds registered for generation that have no simulation support (should be empty)."""
    return [kind.name for kind in KINDS if kind.name not in SUPPORT]
