"""``npuforge eval CONFIG [--json FILE] [--images N] [--variant NAME ...]``: task metrics of a MoE-ViT.

For a ``kind: moevit`` config and its weights: segmentation mIoU, depth RMSE and abs-rel on
freshly generated held-out scenes, in float, in fixed point with exact nonlinear functions and
with each hardware approximation; the cost of each against float; the multi-task delta against
the single-task baselines (from the training facts beside the weights); the trivial baseline;
and the MACs each task activates against a dense ViT (``sim/moevit/evaluate.py``).
"""

import sys
import time
from pathlib import Path

from gen.config.moevit import load_moevit

from .args import add_config, int_in
from .output import stdout_console, write_json

HELP = "task metrics of a moevit model: float, fixed point, each hardware approximation, multi-task delta, MACs"


def add_arguments(parser) -> None:
    add_config(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--images", type=int_in(1, 100_000), default=32,
                        help="held-out scenes to score (default 32; the fixed-point model takes seconds per scene)")
    parser.add_argument("--variant", action="append", default=None, metavar="NAME",
                        help="evaluate only this variant (repeatable; default all: float, fixed-exact, fixed-hw, "
                             "fixed-<function>[-<method>])")
    parser.add_argument("--weights", type=Path, default=None, metavar="FILE",
                        help="weights .npz (default: the config's weights)")
    parser.add_argument("--backend", choices=("golden", "rtl"), default="golden",
                        help="golden (default): the numpy models; rtl: also the generated accelerator running "
                             "every image in the fast harness (variant 'rtl'), beside the fixed-point golden")
    parser.add_argument("--accel", type=Path, default=None, metavar="ACCEL_CONFIG",
                        help="with --backend rtl: the kind: moevit_accel config to run (default: accel_<name>.yaml "
                             "beside CONFIG)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                        help="with --backend rtl: build root of the accelerator (default build/)")


def accelerator_for(args, cfg):
    """The accelerator config ``--backend rtl`` runs: ``--accel`` or ``accel_<stem>.yaml`` beside CONFIG; its
    ``model:`` must be CONFIG's network."""
    from gen.config import load_config
    from gen.errors import UsageError

    path = args.accel or Path(args.config).with_name(f"accel_{Path(args.config).stem}.yaml")
    if args.accel is None and not path.is_file():
        raise UsageError(f"--accel: not given and {path} does not exist; allowed: a kind: moevit_accel config "
                         "whose model: is CONFIG")
    accel = load_config(path)
    if accel.kind != "moevit_accel":
        raise UsageError(f"--accel: {path} has kind: '{accel.kind}'; allowed: 'moevit_accel'")
    if accel.network.model_dump(mode="json") != cfg.model_dump(mode="json"):
        raise UsageError(f"--accel: {path} runs model '{accel.network.name}', not {args.config} ('{cfg.name}'); "
                         "allowed: an accelerator whose model: is CONFIG")
    return accel


class _Bar:
    """A rich progress bar on a terminal; otherwise a plain line every 10% (a log, CI)."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.bar = None
        self.done = self.total = 0

    def start(self, total: int) -> None:
        self.total, self.started, self.next_tenth = total, time.monotonic(), 1
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("eval"), BarColumn(bar_width=30), MofNCompleteColumn(),
                                TextColumn("image-passes"), TimeRemainingColumn(), console=self.console)
            self.task = self.bar.add_task("eval", total=total)
            self.bar.start()

    def advance(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(self.task, advance=count)
        elif self.total and self.done * 10 >= self.next_tenth * self.total:
            self.next_tenth = self.done * 10 // self.total + 1
            print(f"progress {self.done}/{self.total} image-passes ({100 * self.done / self.total:.0f}%) "
                  f"{time.monotonic() - self.started:.0f} s", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _fmt(value, scale=1.0, digits=2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _baseline_note(report: dict) -> str:
    """Why the delta may differ from the training facts' (the baselines were scored on other scenes)."""
    single, data = report.get("single_task"), report["data"]
    if single is None or (single["seed"], single["images"]) == (data["seed"], data["images"]):
        return ""
    return (f"; the baselines' metrics are their recorded ones on {single['images']} scenes (seed {single['seed']}), "
            f"so with {data['images']} scenes the delta includes the sampling difference")


def print_report(report: dict, cfg) -> None:
    from rich.table import Table

    kinds = {task.name: task.type for task in cfg.tasks}
    data = report["data"]
    table = Table(title=f"{report['config']}: {data['images']} held-out scenes (seed {data['seed']})",
                  caption="mIoU in points; cost = loss against float on the same scenes (mIoU points, RMSE %); "
                          "delta = multi-task delta against the single-task baselines (%, > 0 better)"
                          + _baseline_note(report))
    table.add_column("model", no_wrap=True)
    for task, kind in kinds.items():
        if kind == "segmentation":
            table.add_column(f"{task} mIoU", justify="right")
            table.add_column("cost", justify="right")
        else:
            table.add_column(f"{task} RMSE", justify="right")
            table.add_column("abs-rel", justify="right")
            table.add_column("cost %", justify="right")
    table.add_column("delta %", justify="right")
    deltas = report.get("multitask_delta_percent", {})

    def row(name, metrics, cost=None, delta=None):
        cells = [name]
        for task, kind in kinds.items():
            if kind == "segmentation":
                cells += [_fmt(metrics[task]["miou"], 100), _fmt(cost and cost[task]["miou_points"])]
            else:
                cells += [_fmt(metrics[task]["rmse"], digits=3), _fmt(metrics[task]["abs_rel"], digits=3),
                          _fmt(cost and cost[task]["rmse_percent"])]
        table.add_row(*cells, _fmt(delta))

    for name, metrics in report["variants"].items():
        row(name, metrics, report.get("cost_vs_float", {}).get(name), deltas.get(name))
    table.add_section()
    row("trivial (majority class, mean depth)", report["trivial"])
    if "single_task" in report:
        single = report["single_task"]
        row(f"single-task baselines (float, {single['images']} scenes)", single["metrics"])
    console = stdout_console()
    console.width = max(console.width, 100)
    console.print(table)
    for task, macs in report["macs"].items():
        print(f"MACs per image, task {task}: {macs['moe']:,} activated; dense-MLP ViT {macs['dense_mlp']:,} "
              f"({100 * macs['ratio_dense_mlp']:.0f}%); all experts active {macs['all_experts']:,} "
              f"({100 * macs['ratio_all_experts']:.0f}%)")


def run(args) -> int:
    from gen.errors import ConfigError, UsageError
    from sim.golden.moevit.params import load_params
    from sim import runner
    from sim.moevit.evaluate import evaluate, variants

    cfg = load_moevit(args.config)
    if args.json is not None and args.json.is_dir():  # refuse before the long run
        raise UsageError(f"--json: got '{args.json}', which is a directory; allowed: a file path")
    names = None
    if args.variant:
        try:
            names = list(variants(cfg, list(dict.fromkeys(args.variant))))
        except ConfigError as error:  # an unknown name: the flag is at fault
            raise UsageError(f"--variant: {error}") from None
    if args.backend == "golden" and (args.accel is not None or args.build_dir is not None):
        raise UsageError("--accel, --build-dir: allowed only with --backend rtl")
    accel = accelerator_for(args, cfg) if args.backend == "rtl" else None
    if accel is not None and names is None:
        names = ["fixed-hw"]  # the golden the accelerator is checked against
    params = load_params(cfg, args.weights)
    bar = _Bar()
    try:
        report = evaluate(cfg, images=args.images, names=names, params=params, on_start=bar.start,
                          on_batch=bar.advance, accel=accel, build_root=args.build_dir or runner.DEFAULT_BUILD_ROOT)
    finally:
        bar.stop()
    print_report(report, cfg)
    if accel is not None:
        bad = report["rtl_mismatches"]
        print(f"rtl      {accel.name}: {args.images} images x {len(cfg.tasks)} tasks, whole network per image in "
              f"the fast harness: " + ("bit-exact against the fixed-point golden (every operator)" if not bad else
                                       f"{len(bad)} differ from the golden; first: {bad[0]}"))
    if args.json is not None:
        write_json(args.json, report)
        print(f"wrote    {args.json}")
    return 1 if report.get("rtl_mismatches") else 0
