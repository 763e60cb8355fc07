"""Random valid configs of every hardware kind: do they generate lint-clean Verilog?

For each kind, draws configs from its config space (``gen/config_space.py``) until
``--count`` of them pass validation (rejected draws are counted, not checked),
elaborates each one and lints the Verilog with Verilator (``gen/lint.py``, the
documented suppressions). A config fails when elaboration raises or lint reports
anything. Prints per kind: drawn, rejected by validation, checked, failed, and the
seconds spent; then every failure with its config as one line of YAML (reproduce
with ``npuforge generate CONFIG --lint``). The draws follow ``--seed`` (printed),
so a run can be repeated exactly. Results go to ``bench/results/config_fuzz.json``.

With ``--simulate N`` the first ``N`` clean configs of each kind are also built and run
through the ``npuforge sim`` path (``sim.runner.simulate``: random and edge-case vectors
against the golden model, seed and flow drawn too); a run that is not bit-exact is a failure.

Usage: python bench/config_fuzz.py [--kinds tpe npu_tile ...] [--count 200] [--seed N] [--jobs 2] [--small]
                                   [--simulate N]
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gen.config import parse_config_data  # noqa: E402
from gen.config_space import SPACES, RandomDraw  # noqa: E402
from gen.errors import ConfigError  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "config_fuzz.json"
# The simulated models run a few hundred cycles: compile them unoptimised, as the tests do.
os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0").strip()
#: Draws per wanted config before a kind gives up (its space would be mostly invalid).
MAX_DRAWS_PER_CONFIG = 20


def valid_configs(kind: str, count: int, seed: int, small: bool) -> tuple[list[dict], int]:
    """``count`` config dicts of ``kind`` that pass validation, and how many draws it took."""
    draw = RandomDraw(random.Random(f"{kind}-{seed}"))
    found, drawn = [], 0
    while len(found) < count and drawn < MAX_DRAWS_PER_CONFIG * count:
        drawn += 1
        data = SPACES[kind](draw, small)
        try:
            parse_config_data(data, "<drawn>")
        except ConfigError:
            continue
        found.append(data)
    return found, drawn


def check(data: dict) -> list[str]:
    """Problems of one config: an exception while elaborating, or the lint warnings (empty when clean)."""
    from gen.emit import generate
    from gen.lint import lint, with_source

    cfg = parse_config_data(data, "<drawn>")
    with tempfile.TemporaryDirectory() as out:
        try:
            result = generate(cfg, Path(out))
        except Exception as error:  # noqa: BLE001 -- any failure of a valid config is a finding
            return [f"elaboration raised {type(error).__name__}: {error}"]
        verilog = result.files[0]
        return with_source(lint(verilog, cfg.name), verilog)


def simulate(job: tuple[dict, int, int]) -> list[str]:
    """Build ``data`` and run it against the golden model (seed and flow from ``draw_seed``); problems or []."""
    from npuforge.registry import sim_testbench
    from sim.runner import simulate as run_simulation

    data, draw_seed, index = job
    rng = random.Random(draw_seed)
    seed, (valid, ready) = rng.randrange(1 << 32), rng.choice(((1.0, 1.0), (0.6, 0.5)))
    cfg = parse_config_data({**data, "name": f"{data['name']}_{index}"}, "<drawn>")
    with tempfile.TemporaryDirectory() as root:
        try:
            done = run_simulation(cfg, sim_testbench(cfg), seed=seed, n_random=6, valid_prob=valid,
                                  ready_prob=ready, build_root=Path(root))
        except Exception as error:  # noqa: BLE001 -- a build that fails is a finding
            return [f"simulation raised {type(error).__name__}: {error}"]
        result = done.run
        if result.ok:
            return []
        testbench = sim_testbench(cfg)
        why = testbench.describe_mismatch(result.mismatch) if result.mismatch else (result.problems or ["failed"])[0]
        return [f"sim seed {seed}, valid {valid}, ready {ready}: {why}"]


def check_within(jobs: int, configs: list[dict], deadline: float | None) -> tuple[list[dict], list[list[str]]]:
    """:func:`check` of each config on ``jobs`` processes until ``deadline`` (``time.monotonic``): the
    configs checked by then, in draw order, and their problems (the workers are stopped then)."""
    with Pool(jobs) as pool:  # leaving the block terminates the workers, also mid-elaboration
        pending = [pool.apply_async(check, (data,)) for data in configs]
        while not all(result.ready() for result in pending) and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
        finished = [(data, result.get()) for data, result in zip(configs, pending) if result.ready()]
    return [data for data, _ in finished], [problems for _, problems in finished]


def one_line(data: dict) -> str:
    return yaml.safe_dump(data, default_flow_style=True, sort_keys=False, width=10_000).strip()


def fuzz_kind(kind: str, args, seed: int) -> tuple[dict, list[dict]]:
    """Draw, check (and simulate) the configs of one kind; print its line. Its summary row and failures."""
    started = time.monotonic()
    configs, drawn = valid_configs(kind, args.count, seed, args.small)
    valid = len(configs)
    configs, problems = check_within(args.jobs, configs, started + 60 * args.minutes if args.minutes else None)
    failed = [(data, found) for data, found in zip(configs, problems) if found]
    clean = [data for data, found in zip(configs, problems) if not found][:args.simulate]
    with Pool(args.jobs) as pool:
        simulated = pool.map(simulate, [(data, seed + index, index) for index, data in enumerate(clean)])
    sim_failed = [(data, found) for data, found in zip(clean, simulated) if found]
    row = {"drawn": drawn, "rejected": drawn - valid, "checked": len(configs), "failed": len(failed),
           "simulated": len(clean), "sim_failed": len(sim_failed), "seconds": round(time.monotonic() - started, 1)}
    print(f"{kind:11s} drawn {drawn:5d}  rejected {row['rejected']:5d}  checked {len(configs):4d}  "
          f"failed {len(failed):4d}  simulated {len(clean):3d}  sim failed {len(sim_failed):3d}  "
          f"{row['seconds']:7.1f} s", flush=True)
    return row, [{"kind": kind, "config": data, "problems": found[:3]} for data, found in failed + sim_failed]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", choices=sorted(SPACES), default=list(SPACES))
    parser.add_argument("--count", type=int, default=200, help="valid configs per kind (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the draws (default: a fresh one)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    parser.add_argument("--small", action="store_true", help="the small sizes of the test suite")
    parser.add_argument("--simulate", type=int, default=0, metavar="N",
                        help="also build and simulate the first N clean configs per kind (default 0)")
    parser.add_argument("--minutes", type=float, default=None, metavar="M",
                        help="stop checking a kind after M minutes (the configs checked by then count; "
                             "default: no limit)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    print(f"seed {seed}, {args.count} valid configs per kind, {'small' if args.small else 'full'} sizes, "
          f"{args.jobs} workers" + (f", at most {args.minutes:g} min per kind" if args.minutes else ""), flush=True)

    summary, failures = {}, []
    for kind in args.kinds:
        summary[kind], found = fuzz_kind(kind, args, seed)
        failures += found

    for failure in failures:
        print(f"\nFAIL {failure['kind']}: {one_line(failure['config'])}")
        for line in failure["problems"]:
            print(f"     {line}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"seed": seed, "count": args.count, "small": args.small, "minutes": args.minutes,
                                   "kinds": summary, "failures": failures}, indent=1) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
