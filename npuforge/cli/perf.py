"""``npuforge perf CONFIG [--hw FILE] [--json FILE] [--task NAME] [--per-layer]``: analytic performance of a MoE-ViT.

For a ``kind: moevit`` config on a ``kind: moevit_hw`` accelerator: MACs and bytes per operator,
the roofline lower bound per operator (the larger of compute-bound and memory-bound cycles) and
Edge-MoE's own schedule estimate, as a table (model: ``sim/perf/moevit.py``, docs/moevit.md).

For a ``kind: moevit_accel`` config (the generated accelerator): its own schedule, the predicted
cycles of every operator of the compiled network (``--image``, ``--task``) on that hardware and the
harness's memory (``--latency``), with the term that bounds each (model: ``sim/perf/accel.py``,
docs/accelerator.md); ``npuforge run`` prints the same prediction beside the measured counters.
"""

from pathlib import Path

from gen.config.moevit import load_moevit, load_moevit_hw

from .args import add_config
from .output import stdout_console, write_json

HELP = "analytic performance of a moevit model: MACs, bytes, roofline bound and Edge-MoE schedule per operator"

#: The hardware description used without ``--hw``: Edge-MoE's accelerator.
DEFAULT_HW = Path(__file__).resolve().parents[2] / "configs" / "moevit" / "edge_moe_hw.yaml"


def add_arguments(parser) -> None:
    from .args import int_in

    add_config(parser)
    parser.add_argument("--hw", type=Path, default=None, metavar="FILE",
                        help="kind: moevit_hw hardware description (default: configs/moevit/edge_moe_hw.yaml)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the analysis as JSON")
    parser.add_argument("--task", default=None, metavar="NAME", help="task whose gate runs (default: the first)")
    parser.add_argument("--per-layer", action="store_true", help="one row per operator of every layer "
                                                                 "(default: operators summed over layers)")
    parser.add_argument("--image", type=int_in(0, 1_000_000), default=0, metavar="N",
                        help="moevit_accel: synthetic image whose routing the experts follow (default 0)")
    parser.add_argument("--latency", type=int_in(1, 10_000), default=24, metavar="CYCLES",
                        help="moevit_accel: DRAM read latency in cycles (default 24, the harness's)")


def _si(value: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.0f}"


def _kind(path) -> str | None:
    from gen.config.reader import parse_yaml_text, read_config_text

    data = parse_yaml_text(read_config_text(path), str(path))
    return data.get("kind") if isinstance(data, dict) else None


def run(args) -> int:
    from rich.table import Table

    from gen.errors import UsageError
    from sim.perf.moevit import analyse

    if _kind(args.config) == "moevit_accel":
        return run_accel(args)
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


def run_accel(args) -> int:
    """The generated accelerator's own schedule: predicted cycles per operator of the compiled network."""
    from rich.table import Table

    from gen.config import load_config
    from gen.errors import UsageError
    from gen.kinds.moevit_accel import build
    from sim.moevit.accel_run import program_for
    from sim.perf.accel import Memory, operator_kind, predict

    if args.hw is not None:
        raise UsageError("--hw: a moevit_accel config is its own hardware; allowed: no --hw with it")
    if args.json is not None and args.json.is_dir():
        raise UsageError(f"--json: got '{args.json}', which is a directory; allowed: a file path")
    cfg = load_config(args.config)
    params = build(cfg).parameters
    program = program_for(cfg, image=args.image, task=args.task, ops="network")
    rows = predict(params, program.ops, Memory(read_latency=args.latency))
    macs_per_cycle = params["linear"]["macs"]
    table = Table(title=f"{cfg.name}: {cfg.describe()}; image {args.image}, task "
                        f"{args.task or cfg.network.task_names[0]}, DRAM read latency {args.latency}",
                  caption="predicted cycles of each operator's own run (its descriptor fetch included); "
                          "bound: what limits it (sim/perf/accel.py)")
    groups: dict[str, dict] = {}
    for op, row in zip(program.ops, rows):
        key = op.name if args.per_layer else operator_kind(op.name)
        group = groups.setdefault(key, {"opcode": op.opcode, "count": 0, "macs": 0, "cycles": 0, "bounds": {}})
        group["count"] += 1
        group["macs"] += op.macs
        group["cycles"] += row.cycles
        group["bounds"][row.bound] = group["bounds"].get(row.bound, 0) + row.cycles
    for column in ("operator", "opcode", "n", "MACs", "cycles", "MAC util", "bound"):
        table.add_column(column, justify="left" if column in ("operator", "opcode", "bound") else "right",
                         no_wrap=True)
    for name, g in groups.items():
        util = f"{g['macs'] / (g['cycles'] * macs_per_cycle):.1%}" if g["macs"] else "-"
        table.add_row(name, g["opcode"], str(g["count"]), _si(g["macs"]), f"{g['cycles']:,}", util,
                      max(g["bounds"], key=g["bounds"].get))
    total = sum(r.cycles for r in rows)
    macs = sum(op.macs for op in program.ops)
    console = stdout_console()
    console.width = max(console.width, 100)
    console.print(table)
    print(f"predicted               {total:,} cycles = {total / (cfg.clock_mhz * 1e3):.3f} ms at {cfg.clock_mhz:g} MHz "
          f"({len(rows)} operators, each run alone; MAC utilisation {macs / (total * macs_per_cycle):.1%} of "
          f"{macs_per_cycle} MACs)")
    if args.json is not None:
        write_json(args.json, {"config": cfg.name, "image": args.image, "latency": args.latency,
                               "total_cycles": total,
                               "operators": [{"name": r.name, "opcode": r.opcode, "cycles": r.cycles, "bound": r.bound,
                                              "macs": op.macs} for op, r in zip(program.ops, rows)]})
        print(f"wrote {args.json}")
    return 0

