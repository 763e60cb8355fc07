"""Synthesis estimates of generated designs with open tools (Yosys, nextpnr-ecp5).

* :mod:`fpga.synth` -- ``synthesize(verilog, top, target, ...)`` for the targets
  ``generic``, ``xcup`` and ``ecp5``, with the result cache.
* :mod:`fpga.yosys` -- the Yosys scripts and the parsers of its output.
* :mod:`fpga.modules` -- ``module_cells``: gate counts per module (generic flow, not
  flattened), the weights of the energy proxy in ``sim.energy``.
* :mod:`fpga.nextpnr` -- running nextpnr-ecp5 and reading its report.
* :mod:`fpga.devices` -- the ECP5 device and the capacities nextpnr reports for it.
* :mod:`fpga.process` -- running a tool with a log, a time limit and one-line errors.

``fpga`` imports ``gen`` (errors) and never ``sim``. See ``docs/synth.md``.
"""

from .synth import TARGETS, SynthResult, synthesize

__all__ = ["TARGETS", "SynthResult", "synthesize"]
