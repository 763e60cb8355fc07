"""``npuforge compile ACCEL_CONFIG [--image N] [--task NAME] -o DIR``: the accelerator's memory image and program."""

from pathlib import Path

from gen.config import load_config
from gen.errors import UsageError

from .args import add_config, int_in

HELP = "compile a moevit_accel config's network into the memory image, descriptors and memory map"


def add_arguments(parser) -> None:
    add_config(parser)
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                        help="directory for image.bin, memory_map.json and expected.npz")
    parser.add_argument("--image", type=int_in(0, 1_000_000), default=0, metavar="N",
                        help="synthetic image N of the evaluation set (default 0)")
    parser.add_argument("--task", default=None, metavar="NAME", help="task whose head runs (default: the first)")
    parser.add_argument("--ops", choices=("all", "linear", "rows"), default="all",
                        help="operators: all (default), linear (the linear operators and the embedding) or rows "
                             "(the LayerNorms and the attention softmaxes)")


def run(args) -> int:
    from sim.moevit.accel_run import program_for

    cfg = load_config(args.config)
    if cfg.kind != "moevit_accel":
        raise UsageError(f"{args.config}: kind: got '{cfg.kind}'; allowed: 'moevit_accel' (npuforge compile "
                         "compiles a network for the MoE-ViT accelerator)")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"-o: got '{args.output}', which is a file; allowed: a directory")
    program = program_for(cfg, image=args.image, task=args.task, ops=args.ops)
    program.save(args.output)
    image = program.image
    print(f"design   {cfg.name}: {cfg.describe()}")
    print(f"program  {len(program.ops)} operators, descriptors at {program.desc.addr:#x}, "
          f"image {image.base:#x}..{image.end:#x} ({image.end - image.base} bytes), "
          f"{len(image.regions)} regions, {len(program.expected)} checked against the golden")
    print(f"files    {args.output / 'image.bin'}, {args.output / 'memory_map.json'}, {args.output / 'expected.npz'}")
    return 0
