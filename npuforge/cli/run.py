"""``npuforge run ACCEL_CONFIG``: run a network on the accelerator in the fast harness, every operator
against the golden."""

from pathlib import Path

from gen.config import load_config
from gen.errors import UsageError

from .args import add_config, add_program_choice, int_in

HELP = "run the accelerator in the fast harness and compare every operator with the golden"


def _stall(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 0.9:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a number from 0 to 0.9")
    return value


def add_arguments(parser) -> None:
    from sim.fault.harness import ACCEL_BUILDS

    add_config(parser)
    add_program_choice(parser)
    parser.add_argument("--dump", type=Path, default=None, metavar="DIR",
                        help="write the compiled program, the memory dump and the run script here")
    parser.add_argument("--latency", type=int_in(1, 10_000), default=24, metavar="CYCLES",
                        help="DRAM read latency in cycles (default 24)")
    parser.add_argument("--bytes-per-cycle", type=int_in(0, 4096), default=0, metavar="B",
                        help="DRAM bandwidth per port and direction (default 0: a full beat every cycle)")
    parser.add_argument("--stall", type=_stall, default=0.0, metavar="P",
                        help="chance per cycle that an AXI channel stalls (default 0)")
    parser.add_argument("--seed", type=int_in(0, 2**31 - 1), default=1, help="seed of the stalls (default 1)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR", help="build root (default build/)")
    parser.add_argument("--harness", choices=tuple(ACCEL_BUILDS), default=None,
                        help="the harness build: run simulates fastest, quick compiles in about half the time (much "
                             "less for large arrays) and simulates at about half the speed (default "
                             "$NPUFORGE_ACCEL_BUILD, else run)")


def run(args) -> int:
    from rich.console import Console

    from sim import runner
    from sim.moevit.accel_run import MemoryTiming, compare, head_reports, prepare, program_for, run_program
    from sim.perf.accel import Memory, predict

    cfg = load_config(args.config)
    if cfg.kind != "moevit_accel":
        raise UsageError(f"{args.config}: kind: got '{cfg.kind}'; allowed: 'moevit_accel' (npuforge run runs a "
                         "network on the MoE-ViT accelerator)")
    if args.dump is not None and args.dump.exists() and not args.dump.is_dir():
        raise UsageError(f"--dump: got '{args.dump}', which is a file; allowed: a directory")
    print(f"design   {cfg.name}: {cfg.describe()} (config hash {cfg.config_hash()[:12]})", flush=True)
    with Console(stderr=True).status("generating and building the harness"):
        prepared = prepare(cfg, args.build_dir or runner.DEFAULT_BUILD_ROOT, build=args.harness)
    print(f"harness  {prepared.harness}")
    program = program_for(cfg, image=args.image, task=args.task, ops=args.ops)
    timing = MemoryTiming(read_latency=args.latency, bytes_per_cycle=float(args.bytes_per_cycle), stall=args.stall,
                          seed=args.seed)
    if args.dump is not None:
        program.save(args.dump)
    result = run_program(prepared.harness, prepared.manifest, program, timing=timing, work_dir=args.dump)
    reports = compare(program, result)
    params = prepared.manifest["parameters"]
    # an operator's MAC utilisation is against the MACs of its engine; the total against all of them
    attention = params.get("attention") or {}
    engine_macs = {"ATTENTION": attention["macs"]} if attention.get("engine") == "dedicated" else {}
    macs_per_cycle = params["linear"]["macs"] + sum(engine_macs.values())
    # npuforge perf's prediction of each operator (sim/perf/accel.py; it does not model seeded stalls)
    predicted = predict(params, program.ops, Memory(read_latency=args.latency, write_latency=timing.write_latency,
                                                    bytes_per_cycle=float(args.bytes_per_cycle)))
    print(f"{'operator':<24} {'cycles':>9} {'predicted':>10} {'MAC util':>9} {'read B':>9} {'written B':>9}  result")
    failed = 0
    errors = []
    for report, guess in zip(reports, predicted):
        read = sum(v for k, v in report.counters.items() if k.startswith("RD_BYTES"))
        written = sum(v for k, v in report.counters.items() if k.startswith("WR_BYTES"))
        units = engine_macs.get(report.opcode, params["linear"]["macs"])
        util = report.macs / (report.cycles * units) if report.cycles > 0 and report.macs else 0.0
        verdict = "PASS" if report.ok else f"FAIL {report.mismatch}"
        failed += not report.ok
        util_text = f"{util:>8.1%}" if report.macs else f"{'-':>8}"
        error = (guess.cycles - report.cycles) / report.cycles if report.cycles > 0 else 0.0
        errors.append(abs(error))
        print(f"{report.name:<24} {report.cycles:>9} {guess.cycles:>9} {util_text} {read:>9} {written:>9}  {verdict}"
              f"{'' if abs(error) <= 0.1 else f'  (predicted {error:+.0%})'}")
    total = sum(r.cycles for r in reports if r.cycles > 0)
    macs = sum(r.macs for r in reports)
    print(f"total    {total} cycles, {macs} MACs ({macs / (total * macs_per_cycle):.1%} of {macs_per_cycle} MACs "
          f"per cycle), {result.seconds:.2f} s in the harness ({result.total_cycles / max(result.seconds, 1e-9):,.0f} "
          "cycles/s)")
    if errors:
        guessed = sum(g.cycles for g in predicted)
        print(f"perf     predicted {guessed} cycles ({guessed / total - 1:+.1%}); per operator within 10%:"
              f" {sum(e <= 0.1 for e in errors)} of {len(errors)}, largest deviation "
              f"{max(errors):.1%}" + (" (seeded stalls are not in the prediction)" if args.stall else ""))
    heads = head_reports(reports)
    if heads:
        print(f"{'attention head':<24} {'cycles':>9} {'MAC util':>9}  bytes/cycle read, written per port "
              f"(busiest {reports[0].bandwidth[0].window} cycles)")
        units = attention.get("macs") or params["linear"]["macs"]
        for head in heads:
            ports = "  ".join(f"P{p} {head.read[p] / head.cycles:.2f}, {head.written[p] / head.cycles:.2f} "
                              f"({head.peak_read[p]:.2f}, {head.peak_written[p]:.2f})" for p in range(len(head.read)))
            print(f"{head.name:<24} {head.cycles:>9} {head.macs / (head.cycles * units):>8.1%}  {ports}")
    for violation in result.violations:
        print(f"AXI      {violation}")
    if failed or result.violations:
        print(f"FAIL     {failed} of {len(reports)} operators differ from the golden"
              + (f"; {len(result.violations)} AXI rule(s) broken" if result.violations else ""))
        return 1
    print(f"PASS     {len(reports)} operators bit-exact against the golden")
    return 0
