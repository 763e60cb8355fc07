"""A generated accelerator (``kind: moevit_accel``) as a board project: every file ``npuforge fpga`` writes.

:func:`board_files` is the whole output of one config on one board, ``{file name: text}``:
the generated Verilog, register description and C header and ``manifest.json`` (as ``npuforge
generate`` writes them), the Vivado scripts, the constraints, the FuseSoC core, ``build.sh`` and
(with a synthesis result) ``resources.json``. :func:`check_board_config` refuses a config the board
cannot take before anything is elaborated.
"""

import json

from gen.config.base import KindConfig
from gen.errors import ConfigError

from . import vivado
from .boards import DDR_LOW, Board
from .resources import resource_table

#: The accelerator's masters reach the PS DDR below 2 GB (where PYNQ's contiguous buffers live).
MIN_ADDR_WIDTH = (DDR_LOW[1] - 1).bit_length() + 1  # 32: addresses up to 4 GB, the DDR window and above


def check_board_config(cfg: KindConfig, board: Board, where: str) -> None:
    """One-line ``ConfigError`` when ``cfg`` (read from ``where``) cannot go on ``board`` (kind, address
    width, ports)."""
    if cfg.kind != "moevit_accel":
        raise ConfigError(f"{where}: kind: got '{cfg.kind}'; allowed: 'moevit_accel' (npuforge fpga integrates the "
                          "MoE-ViT accelerator)")
    if cfg.memory.addr_width < MIN_ADDR_WIDTH:
        raise ConfigError(f"{where}: memory.addr_width: got {cfg.memory.addr_width}; allowed: at least "
                          f"{MIN_ADDR_WIDTH} on a board (the masters reach the PS DDR at 0 .. 2 GB)")
    if cfg.memory.ports > board.hp_ports:
        raise ConfigError(f"{where}: memory.ports: got {cfg.memory.ports}; allowed: at most {board.hp_ports} "
                          f"(the HP ports of {board.describe()})")


def board_files(manifest: dict, generated: dict[str, str], board: Board, clock_mhz: float,
                synth: dict | None = None) -> dict[str, str]:
    """Every file of the board project. ``generated`` are the design's files by name (the Verilog, the
    register files, ``manifest.json``); ``synth`` an ``xcup`` result for ``resources.json``."""
    files = dict(generated)
    files["package_ip.tcl"] = vivado.package_ip_tcl(manifest, board)
    files["block_design.tcl"] = vivado.block_design_tcl(manifest, board, clock_mhz)
    files["project.tcl"] = vivado.project_tcl(manifest, board)
    files[f"{board.name}.xdc"] = vivado.constraints_xdc(manifest, board)
    files["build.sh"] = vivado.build_sh(manifest, board)
    if synth is not None:
        files["resources.json"] = json.dumps({
            "board": board.name, "part": board.part, "tool": "yosys synth_xilinx -family xcup",
            "tools": synth.get("tools", {}), "verilog_sha256": synth.get("verilog_sha256"),
            "table": resource_table(synth, board)}, indent=2, sort_keys=True) + "\n"
    in_filesets = {"package_ip.tcl", "block_design.tcl", f"{board.name}.xdc"}
    listed = sorted(name for name in files if name not in generated and name not in in_filesets)
    files[f"{manifest['top']}.core"] = vivado.fusesoc_core(manifest, [board], listed)
    return files
