"""Synthesis of a config (rather than of a Verilog file): generate its Verilog into the build
directory, synthesise it there, cached; and the generic-synthesis cost other floors compare.

``npuforge synth``, ``npuforge characterize``, ``npuforge protect`` and the benches share it.
Layout (see ``docs/synth.md``): the Verilog is the config's build directory's, ``<build
root>/<name>-<hash12>/rtl/`` (generated once: :func:`gen.emit.generate_in_build`, shared with ``npuforge
sim``, ``run`` and ``fpga``); ``synth/<target>/`` holds the cached result of :func:`fpga.synth.synthesize`.
"""

from collections.abc import Callable
from pathlib import Path

from gen.config.base import KindConfig
from gen.emit import generate_in_build
from gen.manifest import verilog_filename

from .process import DEFAULT_TIMEOUT
from .synth import SynthResult, synthesize

#: What :func:`generic_cost` keeps of a ``generic`` result.
COST_KEYS = ("transistors", "cells", "ff", "logic_depth")


def synthesize_config(cfg: KindConfig, target: str, *, build_root: Path, seed: int = 1, out_of_context: bool = False,
                      on_step: Callable[[str], object] = lambda message: None,
                      timeout: float = DEFAULT_TIMEOUT) -> SynthResult:
    """Synthesise ``cfg``'s Verilog (generated into ``<build_root>/<build name>/rtl`` unless it is there
    already) for ``target`` (cached in ``synth/<target>``), each tool limited to ``timeout`` seconds;
    the errors of :func:`fpga.synth.synthesize`."""
    on_step(f"generating {cfg.name}")
    rtl, _ = generate_in_build(cfg, build_root)
    return synthesize(rtl / verilog_filename(cfg.name), cfg.name, target, config_hash=cfg.config_hash(),
                      cache_dir=rtl.parent / "synth" / target, seed=seed, out_of_context=out_of_context,
                      on_step=on_step, timeout=timeout)


def generic_cost(cfg: KindConfig, build_root: Path, on_step: Callable[[str], object] = lambda message: None) -> dict:
    """Yosys ``generic`` transistors, cells, flip-flops and logic depth of ``cfg``'s Verilog (cached):
    ``{"target": "generic", "transistors": ..., "cells": ..., "ff": ..., "logic_depth": ...}``."""
    result = synthesize_config(cfg, "generic", build_root=build_root, on_step=on_step)
    return {"target": "generic", **{key: result.data[key] for key in COST_KEYS}}
