"""``npuforge sim CONFIG``: build the Verilator model and check it against the golden model."""

import inspect
from pathlib import Path

from gen.config import load_config
from gen.errors import UsageError
from sim import runner

from ..registry import sim_testbench
from .args import add_config, int_in, probability

HELP = "build the Verilator model and check it against the golden model"


def add_arguments(parser) -> None:
    add_config(parser)
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=1, help="seed of the random vectors (default 1)")
    parser.add_argument("--vectors", type=int_in(0, 100_000), default=20, metavar="N",
                        help="random jobs in addition to the edge cases (default 20)")
    parser.add_argument("--valid-prob", type=probability, default=1.0, metavar="P",
                        help="chance per cycle that the input stream offers a beat (default 1)")
    parser.add_argument("--ready-prob", type=probability, default=1.0, metavar="P",
                        help="chance per cycle that the output stream accepts a beat (default 1)")
    parser.add_argument("--k", type=int_in(1, 65536), default=None, metavar="K",
                        help="kind: tpe only: every job has reduction length K and no edge cases run, so at full "
                             "rate the printed MAC utilisation is that of K back to back (systolic_ws: jobs of "
                             "rows rows of A)")
    parser.add_argument("--waves", action="store_true", help="record dump.vcd (builds a separate traced model)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR", help="build root (default build/)")


def run(args) -> int:
    from rich.console import Console

    cfg = load_config(args.config)
    testbench = sim_testbench(cfg)
    if args.k is not None:
        if "k" not in inspect.signature(testbench.make_vectors).parameters:
            raise UsageError(f"--k: got {args.k}; allowed: only for kinds whose jobs have a reduction length "
                             f"(kind: tpe), not kind: {cfg.kind}")
        if not 1 <= args.k <= cfg.k_bound:
            raise UsageError(f"--k: got {args.k}; allowed: an integer from 1 to {cfg.k_bound} "
                             f"(the longest K of {cfg.name})")
    print(f"design   {cfg.name}: {cfg.describe()} (config hash {cfg.config_hash()[:12]})", flush=True)
    # A spinner on a terminal while Verilator compiles (tens of seconds); silent in logs.
    with Console(stderr=True).status("starting") as status:
        done = runner.simulate(cfg, testbench, seed=args.seed, n_random=args.vectors, valid_prob=args.valid_prob,
                        ready_prob=args.ready_prob, waves=args.waves,
                        build_root=args.build_dir or runner.DEFAULT_BUILD_ROOT, on_step=status.update, k=args.k)
    built, result = done.build, done.run
    how = "reused" if built.reused else f"built in {built.seconds:.1f} s"
    print(f"build    {built.root} ({how})")
    print(f"files    {built.verilog}, {built.rtl_dir / 'manifest.json'}")
    # What a testbench's vectors are made of: TPE jobs, nonlinear rows, ...
    unit = getattr(testbench, "VECTOR_UNIT", "jobs")
    jobs = result.vectors[unit]
    shape = f", every one K={args.k}" if args.k is not None else ""
    print(f"vectors  {len(jobs)} {unit} ({len(jobs) - args.vectors} edge cases + {args.vectors} random{shape}, "
          f"seed {args.seed}); source valid {args.valid_prob:g}, sink ready {args.ready_prob:g}")
    for line in testbench.summary_lines(built.manifest, result.vectors, result.results, result.seconds):
        print(line)
    if result.waves:
        print(f"waves    {result.waves}")
    if result.ok:
        print(f"PASS     {len(jobs)} {unit} bit-exact against the golden model")
        return 0
    if result.mismatch is not None:
        print(f"FAIL     {testbench.describe_mismatch(result.mismatch)}")
    elif result.problems:
        print(f"FAIL     {result.problems[0]}")
    else:
        print("FAIL     the cocotb test failed")
    print(f"log      {result.log}")
    return 1
