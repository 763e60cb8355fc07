"""The one place where hardware kinds are registered (generation side).

Adding a kind means writing its config model and ``hw`` generator and listing
them here; its golden model and testbench are listed one floor up, in
``npuforge/registry.py``, because ``gen`` imports only ``hw``:

* ``gen/kinds/<kind>.py`` -- the pydantic config model (``kind: Literal[...]``),
  ``build(cfg)`` returning the ``hw`` component, and ``parameters(cfg, component)``
  returning derived values for the manifest;
* the ``hw`` generator it builds;
* ``docs/<kind>.md`` -- the interface description.
"""

from dataclasses import dataclass
from typing import Any, Callable

from .config.base import KindConfig
from .kinds import exp, reciprocal, rsqrt, tpe
from .kinds import layernorm, softmax
from .kinds import gelu
from .kinds import moevit_accel, npu_tile


@dataclass(frozen=True)
class Kind:
    """What the generation layer knows about one hardware kind."""

    name: str
    config: type[KindConfig]
    build: Callable[[Any], Any]
    parameters: Callable[[Any, Any], dict]
    doc: str
    # optional: (cfg, component, fault_sites) -> extra top-level manifest entries (e.g. protectable)
    manifest_sections: Callable[[Any, Any, list], dict] | None = None
    # optional: (cfg, component) -> {file name: text} written beside the Verilog (e.g. a register map)
    files: Callable[[Any, Any], dict] | None = None


KINDS: tuple[Kind, ...] = (
    Kind(name="tpe", config=tpe.TpeConfig, build=tpe.build, parameters=tpe.parameters, doc="docs/tpe.md"),
    Kind(name="exp", config=exp.ExpConfig, build=exp.build, parameters=exp.parameters, doc="docs/nonlinear.md"),
    Kind(name="reciprocal", config=reciprocal.ReciprocalConfig, build=reciprocal.build,
         parameters=reciprocal.parameters, doc="docs/nonlinear.md"),
    Kind(name="rsqrt", config=rsqrt.RsqrtConfig, build=rsqrt.build, parameters=rsqrt.parameters,
         doc="docs/nonlinear.md"),
    Kind(name="softmax", config=softmax.SoftmaxConfig, build=softmax.build, parameters=softmax.parameters,
         doc="docs/nonlinear.md"),
    Kind(name="layernorm", config=layernorm.LayerNormConfig, build=layernorm.build,
         parameters=layernorm.parameters, doc="docs/nonlinear.md"),
    Kind(name="gelu", config=gelu.GeluConfig, build=gelu.build, parameters=gelu.parameters, doc="docs/nonlinear.md"),
    Kind(name="npu_tile", config=npu_tile.NpuTileConfig, build=npu_tile.build, parameters=npu_tile.parameters,
         doc="docs/npu_tile.md", manifest_sections=npu_tile.manifest_sections),
    Kind(name="moevit_accel", config=moevit_accel.MoevitAccelConfig, build=moevit_accel.build,
         parameters=moevit_accel.parameters, doc="docs/accelerator.md",
         manifest_sections=moevit_accel.manifest_sections, files=moevit_accel.files),
)


def kind_named(name: str) -> Kind:
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise KeyError(name)


def kind_of(cfg: KindConfig) -> Kind:
    return kind_named(cfg.kind)
