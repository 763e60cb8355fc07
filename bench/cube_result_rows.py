"""MAC utilisation of the paper-size cube (8x8x8, signed INT8) with 1 and more rows of ``C`` per result beat.

The work of ``bench/tpe_arch.py`` (a 16 x 16 ``C`` with ``K = 16`` and ``K = 256``, eight
times back to back at full rate, through the Verilator model, bit-exact against the golden
model) on ``cube`` with ``result_rows`` 1 (the baseline, measured in the same run) and each
value given. A job of ``K = 16`` is two operand beats, and its eight rows of ``C`` leave in
``8 / result_rows`` result beats: the slower of the two streams sets the job interval.

    python bench/cube_result_rows.py                  # result_rows 1 against 2 and 4
    python bench/cube_result_rows.py --result-rows 8

Writes ``bench/results/cube_result_rows.json``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from tpe_arch import PAPER, RESULTS, config, cycles  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--result-rows", type=int, action="append", help="rows per result beat (repeatable)")
    args = parser.parse_args()
    rows = {}
    for per_beat in [1] + (args.result_rows or [2, 4]):
        started = time.monotonic()
        cfg = config("cube", PAPER["cube"] | {"result_rows": per_beat}, f"rows{per_beat}")
        print(f"{cfg.describe()}", flush=True)
        rows[per_beat] = cycles(cfg) | {"bench_s": round(time.monotonic() - started, 1)}
        print(json.dumps(rows[per_beat]), flush=True)
    base = rows[1]
    print(f"\n{'result_rows':>11} {'cycles K=16':>11} {'util K=16':>9} {'ratio':>6} {'util K=256':>10}")
    for per_beat, r in rows.items():
        print(f"{per_beat:11} {r['k16_cycles']:11} {r['k16_utilisation']:9.1%} "
              f"{r['k16_utilisation'] / base['k16_utilisation']:6.2f} {r['k256_utilisation']:10.1%}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cube_result_rows.json").write_text(json.dumps({"cube": PAPER["cube"], "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
