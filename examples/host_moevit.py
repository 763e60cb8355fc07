"""Run the MoE-ViT network on the accelerator, one image per task, with the same driver on the board and here.

On a ZCU102/ZCU104 with PYNQ (after ``npuforge fpga configs/moevit/accel_tiny.yaml --board zcu104
-o accel_tiny_zcu104`` and its ``build.sh``)::

    python examples/host_moevit.py --board accel_tiny_zcu104/overlay/accel_tiny.bit

Here, against the Verilated accelerator in the fast harness (every register access and DMA beat
through the RTL)::

    python examples/host_moevit.py --sim tests/configs/accel_micro_os.yaml

It prints each task's map as characters (segmentation: the class per pixel; depth: ten levels) and
the run's counters; ``--plot FILE.png`` also draws the image and the maps (matplotlib).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LEVELS = " .:-=+*#%@"


def character_map(outputs) -> list[str]:
    """Rows of characters: a class digit per pixel, or the depth in ten levels over the map's range."""
    grid = outputs.map
    if outputs.kind == "segmentation":
        return ["".join(str(int(c)) for c in row) for row in grid]
    low, high = float(grid.min()), float(grid.max())
    scaled = np.zeros_like(grid, dtype=int) if high == low else ((grid - low) / (high - low) * 9.999).astype(int)
    return ["".join(LEVELS[v] for v in row) for row in scaled]


def run_tasks(accelerator, model, image_index: int = 0) -> dict:
    """One synthetic image through every task of ``model``; ``{task: Outputs}`` (the image is in ``["image"]``)."""
    from sim.moevit.data import make_image

    classes = next((t.classes for t in model.tasks if t.classes), 5)
    image, _, _ = make_image(0, image_index, model.height, model.width, classes)
    results = {"image": image}
    for task in model.task_names:
        results[task] = accelerator.run(image, task)
    return results


def report(results: dict, out=sys.stdout) -> None:
    for task, outputs in results.items():
        if task == "image":
            continue
        counters = outputs.counters
        print(f"{task} ({outputs.kind}): {counters.get('CYCLES', 0)} cycles, MAC_ACTIVE "
              f"{counters.get('MAC_ACTIVE', 0)}", file=out)
        for line in character_map(outputs):
            print(f"  {line}", file=out)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in results if t != "image"]
    figure, axes = plt.subplots(1, 1 + len(tasks), figsize=(3 * (1 + len(tasks)), 3))
    axes[0].imshow(np.transpose(results["image"], (1, 2, 0)))
    axes[0].set_title("image")
    for axis, task in zip(axes[1:], tasks, strict=True):
        axis.imshow(results[task].map, cmap="tab10" if results[task].kind == "segmentation" else "viridis")
        axis.set_title(task)
    for axis in axes:
        axis.axis("off")
    figure.savefig(path, bbox_inches="tight")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--board", type=Path, metavar="BIT", help="the overlay's .bit (PYNQ, on the board)")
    where.add_argument("--sim", type=Path, metavar="ACCEL_CONFIG", help="a moevit_accel config (the fast harness)")
    parser.add_argument("--model", type=Path, default=None,
                        help="kind: moevit config (default: the accelerator config's model)")
    parser.add_argument("--image", type=int, default=0, help="synthetic image index (default 0)")
    parser.add_argument("--build-dir", type=Path, default=Path("build"), help="build root for --sim")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also draw the maps")
    args = parser.parse_args(argv)

    from gen.config import load_config
    from gen.config.moevit import load_moevit
    from npuforge.host import Accelerator

    if args.board is not None:
        from npuforge.host.pynq_board import open_board

        accelerator = open_board(args.board)
        model = load_moevit(args.model) if args.model else None
        if model is None:
            parser.error("--board needs --model (the kind: moevit config the bitstream was built for)")
        accelerator.load(model)
        results = run_tasks(accelerator, model, args.image)
    else:
        from npuforge.host.simulated import simulated

        cfg = load_config(args.sim)
        model = load_moevit(args.model) if args.model else cfg.network
        session, manifest = simulated(cfg, args.build_dir)
        with session:
            accelerator = Accelerator(session.mmio, session.memory, manifest, interrupt=session.interrupt)
            accelerator.load(model)
            results = run_tasks(accelerator, model, args.image)
    report(results)
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
