"""The one place where hardware kinds are registered.

Adding a kind means writing five things and listing them here:

* ``gen/kinds/<kind>.py`` -- the pydantic config model (``kind: Literal[...]``),
  ``build(cfg)`` returning the ``hw`` component, and ``parameters(cfg, component)``
  returning derived values for the manifest;
* the ``hw`` generator it builds;
* ``sim/golden/<kind>.py`` -- the bit-exact numpy model;
* ``sim/tb/<kind>.py`` -- ``make_vectors``, ``first_mismatch``, ``describe_mismatch``
  and the cocotb test;
* ``docs/<kind>.md`` -- the interface description.

``gen`` never imports ``sim``: the golden model and testbench are named by module
path and imported only by the simulation runner.
"""

from dataclasses import dataclass
from typing import Any, Callable

from .config.base import KindConfig
from .kinds import tpe


@dataclass(frozen=True)
class Kind:
    """Everything npuforge knows about one hardware kind."""

    name: str
    config: type[KindConfig]
    build: Callable[[Any], Any]
    parameters: Callable[[Any, Any], dict]
    golden: str
    testbench: str
    doc: str


KINDS: tuple[Kind, ...] = (
    Kind(name="tpe", config=tpe.TpeConfig, build=tpe.build, parameters=tpe.parameters,
         golden="sim.golden.tpe", testbench="sim.tb.tpe", doc="docs/tpe.md"),
)


def kind_named(name: str) -> Kind:
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise KeyError(name)


def kind_of(cfg: KindConfig) -> Kind:
    return kind_named(cfg.kind)
