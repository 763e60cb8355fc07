"""The NPU tile: memories, a TPE, accumulators, requantisation and a controller behind two streams."""

from .commands import ACT_MODES, OPCODES, command_layouts, host_word_layout, tile_command_layouts
from .tile import BLOCKS, NpuTile

__all__ = ["ACT_MODES", "BLOCKS", "OPCODES", "NpuTile", "command_layouts", "host_word_layout",
           "tile_command_layouts"]
