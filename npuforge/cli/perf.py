"""``npuforge perf CONFIG [--hw FILE] [--json FILE] [--task NAME] [--per-layer]``: analytic performance of a MoE-ViT.

For a ``kind: moevit`` config on a ``kind: moevit_hw`` accelerator: MACs and bytes per operator,
the roofline lower bound per operator (the larger of compute-bound and memory-bound cycles) and
Edge-MoE's own schedule estimate, as a table (model: ``sim/perf/moevit.py``, docs/moevit.md).
"""

from pathlib import Path

from gen.config.moevit import load_moevit, load_moevit_hw

from .args import add_config
from .output import stdout_console, write_json

HELP = "analytic performance of a moevit model: MACs, bytes, roofline bound and Edge-MoE schedule per operator"

#: The hardware description used without ``--hw``: Edge-MoE's accelerator.
DEFAULT_HW = Path(__file__).resolve().parents[2] / "configs" / "moevit" / "edge_moe_hw.yaml"


def add_arguments(parser) -> None:
    add_config(parser)
    parser.add_argument("--hw", type=Path, default=None, metavar="FILE",
                        help="kind: moevit_hw hardware description (default: configs/moevit/edge_moe_hw.yaml)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the analysis as JSON")
    parser.add_argument("--task", default=None, metavar="NAME", help="task whose gate runs (default: the first)")
    parser.add_argument("--per-layer", action="store_true", help="one row per operator of every layer "
                                                                 "(default: operators summed over layers)")


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def run(args) -> int:
    from rich.table import Table

    from gen.errors import UsageError
    from sim.perf.moevit import analyse

    cfg = load_moevit(args.config)
    hw = load_moevit_hw(args.hw if args.hw is not None else DEFAULT_HW)
    if args.task is not None and args.task not in cfg.task_names:
        raise UsageError(f"--task: got {args.task!r}; allowed: one of {', '.join(cfg.task_names)}")
    if args.json is not None and args.json.is_dir():
        raise UsageError(f"--json: got '{args.json}', which is a directory; allowed: a file path")
    result = analyse(cfg, hw, args.task)
    totals = result["totals"]
    rows = result["operators"] if args.per_layer else result["by_kind"]
    table = Table(title=f"{cfg.name} on {hw.name} ({hw.clock_mhz:g} MHz, {hw.bytes_per_cycle:g} B/cycle), "
                        f"task {result['task']}, one image",
                  caption="cycles: compute = MACs / engine MACs per cycle, memory = bytes / bytes per cycle, "
                          "roofline = their max; Edge-MoE = its loop trip counts at II=1 (weight loads not counted)")
    for column in ("operator", "engine", "n", "MACs", "bytes", "compute", "memory", "roofline", "Edge-MoE"):
        table.add_column(column, justify="left" if column in ("operator", "engine") else "right", no_wrap=True)
    for row in rows:
        table.add_row(row.get("name", row["kind"]), row["engine"], str(row.get("count", 1)), _si(row["macs"]),
                      _si(row["bytes"]), _si(row["compute_cycles"]), _si(row["memory_cycles"]),
                      _si(row["roofline_cycles"]), _si(row["edge_moe_cycles"]))
    table.add_section()
    table.add_row("total", "", "", _si(totals["macs"]), _si(totals["bytes"]), "", "", _si(totals["roofline_cycles"]),
                  _si(totals["edge_moe_cycles"] + totals["other_cycles"]))
    console = stdout_console()
    console.width = max(console.width, 104)  # the table's width: never squeeze the numbers
    console.print(table)
    mhz = hw.clock_mhz
    print(f"MACs per image          {totals['macs']:,} ({totals['mac_units']} MAC units)")
    print(f"bytes per image         {totals['bytes']:,} (weights {totals['weight_bytes']:,})")
    print(f"roofline lower bound    {totals['roofline_cycles']:,.0f} cycles = {totals['roofline_ms']:.2f} ms")
    print(f"Edge-MoE schedule       {totals['edge_moe_cycles']:,} cycles = {totals['edge_moe_ms']:.2f} ms "
          f"(matmul units; {totals['edge_moe_cycles_per_layer']:,.0f} per layer, attention "
          f"{100 * totals['edge_moe_attention_share']:.0f}%)")
    print(f"  other units           {totals['other_cycles']:,} cycles = {totals['other_cycles'] / (mhz * 1e3):.2f} ms "
          "(LayerNorm, gate, adds; not in the reference estimate)")
    if args.json is not None:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0
