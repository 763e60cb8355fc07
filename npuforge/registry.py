"""Every registered kind with the modules of every layer that serve it.

``gen/registry.py`` lists what generation needs (config model, ``hw`` builder,
parameters, doc). This table adds, per kind, the ``sim/`` modules: the golden
model and the testbench. It lives here, above ``gen``, ``sim`` and ``fpga``,
because it names modules of all of them.
"""

import importlib
from dataclasses import dataclass
from types import ModuleType

from gen.config.base import KindConfig
from gen.registry import KINDS, Kind, kind_named


@dataclass(frozen=True)
class KindSupport:
    """The simulation side of one kind."""

    kind: Kind
    golden: str  # module path of the bit-exact model
    testbench: str  # module path: make_vectors, first_mismatch, describe_mismatch, the cocotb test

    @property
    def name(self) -> str:
        return self.kind.name


SUPPORT: dict[str, KindSupport] = {
    "tpe": KindSupport(kind=kind_named("tpe"), golden="sim.golden.tpe",
                       testbench="sim.tb.tpe"),
}


def support_for(cfg: KindConfig) -> KindSupport:
    return SUPPORT[cfg.kind]


def sim_testbench(cfg: KindConfig) -> ModuleType:
    """The testbench module of ``cfg``'s kind (host side and cocotb test)."""
    return importlib.import_module(support_for(cfg).testbench)


def golden_for(cfg: KindConfig) -> ModuleType:
    return importlib.import_module(support_for(cfg).golden)


def unsupported() -> list[str]:
    """Kinds registered for generation that have no simulation support (should be empty)."""
    return [kind.name for kind in KINDS if kind.name not in SUPPORT]
