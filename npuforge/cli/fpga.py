"""``npuforge fpga ACCEL_CONFIG --board zcu102|zcu104 -o DIR``: the accelerator as a Vivado/FuseSoC board
project (``fpga/integrate.py``), with its Yosys resource table beside the board's capacity."""

import os
from pathlib import Path

from gen.config import load_config

from .args import add_config

HELP = "write the Vivado IP, block design, constraints, FuseSoC core and build.sh of an accelerator for a board"
DEFAULT_BUILD_ROOT = Path(os.environ.get("NPUFORGE_BUILD_DIR", "build"))


def add_arguments(parser) -> None:
    from fpga.boards import BOARDS

    add_config(parser)
    parser.add_argument("--board", required=True, choices=sorted(BOARDS), help="the board")
    parser.add_argument("-o", "--out", metavar="DIR", type=Path, required=True, help="output directory")
    parser.add_argument("--skip-synth", action="store_true",
                        help="no Yosys resource table and no fit check (minutes for a large design)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                        help="build root: the generated design and the synthesis cache (default build/)")


def run(args) -> int:
    from rich.console import Console

    from fpga.boards import BOARDS
    from fpga.cost import synthesize_config
    from fpga.integrate import board_files, check_board_config
    from fpga.resources import check_fit, format_table, resource_table
    from gen.emit import generate_in_build, write_files
    from gen.errors import UsageError
    from gen.manifest import MANIFEST_NAME

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"-o: got '{args.out}', which is a file; allowed: a directory (new or existing)")
    board = BOARDS[args.board]
    cfg = load_config(args.config)
    check_board_config(cfg, board, str(args.config))
    print(f"design   {cfg.name}: {cfg.describe()} (config hash {cfg.config_hash()[:12]})", flush=True)
    print(f"board    {board.describe()}, pl_clk0 at {cfg.clock_mhz:g} MHz")
    build_root = args.build_dir or DEFAULT_BUILD_ROOT
    synth = None
    if not args.skip_synth:
        with Console(stderr=True).status("synthesising with Yosys (synth_xilinx)") as status:
            synth = synthesize_config(cfg, "xcup", build_root=build_root, on_step=status.update).data
        table = resource_table(synth, board)
        for line in format_table(table):
            print(f"  {line}")
        check_fit(table, cfg.name, board)
    # The design's files as `npuforge generate` writes them, from the build directory (generated there
    # once: the elaboration of a large accelerator takes minutes, and `synth` above used the same files).
    rtl, manifest = generate_in_build(cfg, build_root)
    generated = {name: (rtl / name).read_text(encoding="utf-8")
                 for name in [entry["path"] for entry in manifest["files"]] + [MANIFEST_NAME]}
    paths = write_files(args.out, board_files(manifest, generated, board, cfg.clock_mhz, synth))
    (args.out / "build.sh").chmod(0o755)
    for path in paths:
        print(f"wrote    {path}")
    print(f"next     {args.out / 'build.sh'} (Vivado + FuseSoC): overlay/{manifest['top']}.bit and .hwh for PYNQ")
    return 0
