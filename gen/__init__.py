"""Configs, elaboration to Verilog and manifests (the command line is one floor up, in ``npuforge``).

``gen`` turns a YAML config into hardware: it validates the config against the
kind's pydantic model, builds the ``hw`` component, converts it to Verilog with
Amaranth's built-in Yosys, and writes a manifest describing what came out.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("npuforge")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
