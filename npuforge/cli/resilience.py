"""``npuforge resilience MODEL_CONFIG --ber ... [--targets weights,activations] [--clip none,ranger,proact]``.

Task metrics (mIoU, RMSE) of a ``kind: moevit`` model's fixed-point golden under random bit flips
at each bit error rate, per layer type, without clipping and with Ranger-style per-layer and
ProAct-style per-channel activation bounds from calibration scenes (``sim/moevit/resilience.py``).
Prints the table, and writes JSON (``--json``) and a plot (``--plot``, matplotlib).
"""

import argparse
from pathlib import Path

from gen.config.moevit import load_moevit

from .args import int_in
from .output import stdout_console, write_json

HELP = "task metrics of a moevit model under bit flips at several bit error rates, with activation clipping"


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _bers(text: str) -> list[float]:
    values = []
    for part in _list(text):
        try:
            value = float(part)
        except ValueError:
            value = None
        if value is None or not 0 < value < 1:
            raise argparse.ArgumentTypeError(f"got {part!r}; allowed: comma-separated numbers above 0 and "
                                             "below 1, e.g. 1e-6,1e-5,1e-4")
        values.append(value)
    if not values:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: comma-separated numbers above 0 and below 1")
    return sorted(set(values))


def add_arguments(parser) -> None:
    parser.add_argument("config", metavar="MODEL_CONFIG", help="kind: moevit config")
    parser.add_argument("--ber", type=_bers, required=True, help="bit error rates, comma-separated (e.g. 1e-6,1e-5)")
    parser.add_argument("--targets", type=_list, default=["weights", "activations"],
                        help="what flips: weights, activations (comma-separated; default both)")
    parser.add_argument("--clip", type=_list, default=["none", "ranger", "proact"],
                        help="protections: none, ranger (per-layer bounds), proact (per-channel bounds); "
                             "comma-separated, default all three")
    parser.add_argument("--layers", type=_list, default=["attention", "mlp", "experts", "gate", "layernorm"],
                        help="layer types flipped one at a time: attention, mlp, experts, gate, layernorm, all "
                             "(comma-separated; default the five types)")
    parser.add_argument("--images", type=int_in(1, 10_000), default=4, help="held-out scenes scored (default 4)")
    parser.add_argument("--calibration", type=int_in(1, 10_000), default=8,
                        help="training-stream scenes the clipping bounds come from (default 8)")
    parser.add_argument("--trials", type=int_in(1, 1000), default=2, help="fault draws per point (default 2)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1, help="seed of the fault draws")
    parser.add_argument("--weights", type=Path, default=None, metavar="FILE", help="weights .npz")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the report as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE", help="write the plot (.png, .svg)")


def run(args) -> int:
    from rich.table import Table

    from gen.errors import ConfigError, UsageError
    from sim.golden.moevit.params import load_params
    from sim.moevit.resilience import check_choices, plot, sweep

    try:
        check_choices(args.targets, args.clip, args.layers)
    except ConfigError as error:  # a bad --targets/--clip/--layers value: the flag is at fault
        raise UsageError(str(error)) from None
    cfg = load_moevit(args.config)
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path is not None and path.is_dir():
            raise UsageError(f"{flag}: got '{path}', which is a directory; allowed: a file path")
    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--plot: got '{args.plot}'; allowed: a .png, .svg or .pdf file")
    params = load_params(cfg, args.weights)
    try:
        report = sweep(cfg, params, bers=args.ber, targets=args.targets, clips=args.clip, layers=args.layers,
                       images=args.images, calibration=args.calibration, trials=args.trials, seed=args.seed)
    except ConfigError as error:  # a bad --targets/--clip/--layers value: the flag is at fault
        raise UsageError(str(error)) from None
    console = stdout_console()
    table = Table(title=f"{cfg.name}: task metric under bit flips ({args.images} scenes, {args.trials} draws)")
    for column in ("task", "target", "layer", "ber", *args.clip):
        table.add_column(column, justify="right" if column not in ("task", "target", "layer") else "left")
    for task, clean in report["fault_free"].items():
        metric = next(iter(p["metric"] for p in report["points"] if p["task"] == task), "miou")
        table.add_row(task, "none", "-", "0", *(f"{clean[c][metric]:.4f}" for c in args.clip))
    keys = []
    for p in report["points"]:
        key = (p["task"], p["target"], p["layer"], p["ber"])
        if key not in keys:
            keys.append(key)
    for key in keys:
        means = {p["clip"]: p["mean"] for p in report["points"] if (p["task"], p["target"], p["layer"], p["ber"]) == key}
        table.add_row(key[0], key[1], key[2], f"{key[3]:.0e}", *(f"{means[c]:.4f}" for c in args.clip))
    console.print(table)
    if args.json is not None:
        write_json(args.json, report)
        print(f"wrote    {args.json}")
    if args.plot is not None:
        plot(report, args.plot)
        print(f"wrote    {args.plot}")
    return 0
