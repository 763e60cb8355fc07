"""Compare the five TPE architectures on equal terms: area, depth, Fmax, cycles, utilisation.

Usage (in the venv): ``python bench/tpe_arch.py [--ecp5 paper|small|none] [--pnr-timeout S]``

Every architecture at the HPCA 2025 TPE paper's size, signed INT8: output- and
weight-stationary systolic 16x16, cube 8x8x8, adder tree of 16 units x 16,
2D matrix 16x16. For each:

* ``npuforge synth`` generic (Yosys ``synth`` + ``stat -tech cmos``): transistors,
  cells, logic depth; xcup (``synth_xilinx -family xcup``): LUT, FF, DSP, carry;
* ECP5 place and route (nextpnr, LFE5U-85F, seed 1) for Fmax, at the paper size
  (``--ecp5 paper``, each run limited by ``--pnr-timeout``) or at the 64-MAC
  size (``--ecp5 small``: 8x8 arrays, cube 4x4x4, 8 units x 8);
* simulated cycles of the same work on every engine: ``C = A @ B`` with ``A``
  16 x K and ``B`` K x 16, twice back to back, K = 16 and K = 256, in the
  Verilator model through the cocotb testbench, bit-exact against the golden
  model; utilisation = useful MACs / (MAC units x cycles);
* performance per area = MAC units x utilisation (K = 256) x Fmax / transistors.

How the work maps onto each engine: systolic_os and matrix2d run one job per
``C``; the 8x8 cube runs four jobs (2 x 2 tiles of ``C``); the adder tree runs
16 jobs (one per row of ``A``); systolic_ws, whose ``K`` is at most 16, runs
``K / 16`` jobs of 16 weight rows and 16 rows of ``A`` (the partial ``C`` of
each K slice leaves the engine; adding them is not counted).

Prints a table and the paper's own ratios beside it; writes
``bench/results/tpe_arch.json`` and ``.png`` (``tpe_arch-ecp5-paper.*`` with
``--ecp5 paper``). Every ECP5 run is out of context: most of these arrays have
more port bits than the die has I/O sites.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gen.config import parse_config_data  # noqa: E402
from gen.emit import generate  # noqa: E402
from gen.errors import ToolError  # noqa: E402
from gen.manifest import verilog_filename  # noqa: E402
from npuforge.registry import sim_testbench  # noqa: E402
from sim.golden import tpe as golden  # noqa: E402
from sim.runner import build, run  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUILD = ROOT / "build" / "bench"
OPERAND = {"width": 8, "signed": True}

PAPER = {
    "systolic_os": {"rows": 16, "cols": 16, "k_max": 256},
    "systolic_ws": {"rows": 16, "cols": 16},
    "cube": {"rows": 8, "cols": 8, "depth": 8, "k_max": 256},
    "adder_tree": {"cols": 16, "k_tile": 16, "k_max": 256},
    "matrix2d": {"rows": 16, "cols": 16, "k_max": 256},
}
SMALL = {
    "systolic_os": {"rows": 8, "cols": 8, "k_max": 256},
    "systolic_ws": {"rows": 8, "cols": 8},
    "cube": {"rows": 4, "cols": 4, "depth": 4, "k_max": 256},
    "adder_tree": {"cols": 8, "k_tile": 8, "k_max": 256},
    "matrix2d": {"rows": 8, "cols": 8, "k_max": 256},
}
#: The reference RTL's baselines (SAED32, Design Compiler; ../shared/reference/tpe.md).
PAPER_BASELINE = {
    "systolic_os": {"area_um2": 376683, "fmax_mhz": 154, "macs": 256},
    "systolic_ws": {"area_um2": 276541, "fmax_mhz": 182, "macs": 256},
    "cube": {"area_um2": 498012, "fmax_mhz": 159, "macs": 512},
}
K_VALUES = (16, 256)
REPEATS = 8  # the work runs this many times back to back (steady state, not just fill and drain)


def config(arch: str, size: dict, tag: str):
    data = {"kind": "tpe", "name": f"bench_{arch}_{tag}", "arch": arch, "operand": OPERAND, **size}
    return parse_config_data(data, f"bench {arch} {tag}")


def synth(cfg, target: str, timeout: int | None = None) -> dict:
    """``npuforge synth`` of ``cfg``; ECP5 runs out of context (array ports exceed the 365 I/O sites)."""
    from fpga.synth import synthesize

    root = BUILD / cfg.build_name() / "synth"
    rtl = generate(cfg, root / "rtl").out_dir
    kwargs = {"timeout": timeout} if timeout else {}
    if target == "ecp5":
        kwargs["out_of_context"] = True
    result = synthesize(rtl / verilog_filename(cfg.name), cfg.name, target, config_hash=cfg.config_hash(),
                        cache_dir=root / target, seed=1, **kwargs)
    return result.data


def work_jobs(cfg, k: int, rng) -> list[dict]:
    """The jobs that compute one 16 x 16 ``C`` from ``A`` (16 x k) and ``B`` (k x 16) on ``cfg``'s engine."""
    a = rng.integers(-128, 128, size=(16, k))
    b = rng.integers(-128, 128, size=(k, 16))
    model = golden.for_config(cfg)
    pieces = []
    if cfg.arch in ("systolic_os", "matrix2d", "cube"):
        tile = cfg.rows
        for r in range(0, 16, tile):
            for c in range(0, 16, cfg.cols):
                pieces.append((a[r:r + tile], b[:, c:c + cfg.cols]))
    elif cfg.arch == "adder_tree":
        pieces = [(a[r:r + 1], b) for r in range(16)]
    else:  # systolic_ws: K slices of at most rows
        pieces = [(a[:, s:s + cfg.rows], b[s:s + cfg.rows]) for s in range(0, k, cfg.rows)]
    return [{"label": f"K={k} piece {n}", "a": pa.tolist(), "b": pb.tolist(), "c": model(pa, pb).tolist()}
            for n, (pa, pb) in enumerate(pieces)]


def cycles(cfg) -> dict:
    """Simulated cycles and utilisation of the work at each K (full rate)."""
    model = build(cfg, build_root=BUILD)
    tb = sim_testbench(cfg)
    params = model.manifest["parameters"]
    out = {"verilator_build_s": round(model.seconds, 1)}
    for k in K_VALUES:
        rng = np.random.default_rng(k)
        vectors = tb.make_vectors(cfg, seed=k, n_random=0, edge_cases=False)
        vectors["jobs"] = [job for _ in range(REPEATS) for job in work_jobs(cfg, k, rng)]
        result = run(model, tb, vectors, BUILD / cfg.build_name() / "runs" / f"k{k}")
        if not result.ok:
            raise SystemExit(f"{cfg.name} K={k}: not bit-exact or protocol error: {result.mismatch or result.problems}")
        spent = result.results["cycles"]
        useful = REPEATS * 16 * 16 * k
        out[f"k{k}_jobs"] = len(vectors["jobs"])
        out[f"k{k}_cycles"] = spent
        out[f"k{k}_utilisation"] = round(useful / (params["mac_units"] * spent), 4)
    out["mac_units"] = params["mac_units"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ecp5", choices=("paper", "small", "none"), default="small",
                        help="size for place and route (default small: the 64-MAC arrays)")
    parser.add_argument("--pnr-timeout", type=int, default=600, help="seconds per ECP5 run (default 600)")
    parser.add_argument("--arch", action="append", choices=sorted(PAPER), help="only these (repeatable)")
    args = parser.parse_args()
    archs = args.arch or list(PAPER)

    rows = {}
    for arch in archs:
        started = time.monotonic()
        cfg = config(arch, PAPER[arch], "paper")
        row = {"config": cfg.normalized()}
        print(f"{arch}: {cfg.describe()}", flush=True)
        row |= {f"generic_{k}": v for k, v in synth(cfg, "generic").items() if k in ("transistors", "cells", "logic_depth")}
        row |= {f"xcup_{k}": v for k, v in synth(cfg, "xcup").items() if k in ("lut", "ff", "dsp", "carry", "bram")}
        if args.ecp5 != "none":
            small = args.ecp5 == "small"
            pnr_cfg = config(arch, SMALL[arch], "small") if small else cfg
            try:
                ecp5 = synth(pnr_cfg, "ecp5", timeout=args.pnr_timeout)
                row |= {"ecp5_size": "small" if small else "paper", "fmax_mhz": ecp5["fmax_mhz"],
                        "ecp5_lut": ecp5.get("lut"), "ecp5_ff": ecp5.get("ff"), "ecp5_dsp": ecp5.get("dsp")}
            except ToolError as error:
                row |= {"ecp5_size": "small" if small else "paper", "fmax_mhz": None, "ecp5_error": str(error)}
        row |= cycles(cfg)
        if row.get("fmax_mhz"):
            row["perf_per_area"] = (row["mac_units"] * row["k256_utilisation"] * row["fmax_mhz"]
                                    / row["generic_transistors"])
        row["bench_s"] = round(time.monotonic() - started, 1)
        rows[arch] = row
        print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)

    report(rows, args)


def report(rows: dict, args) -> None:
    base = rows.get("systolic_os")
    head = (f"{'arch':12} {'MACs':>5} {'transistors':>12} {'rel':>5} {'LUT':>7} {'FF':>6} {'DSP':>4} "
            f"{'depth':>5} {'Fmax':>6} {'util16':>6} {'util256':>7} {'perf/area':>9} {'rel':>5}")
    print("\n" + head)
    for arch, r in rows.items():
        rel_area = r["generic_transistors"] / base["generic_transistors"] if base else float("nan")
        ppa = r.get("perf_per_area")
        rel_ppa = ppa / base["perf_per_area"] if base and ppa and base.get("perf_per_area") else float("nan")
        fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") else "-"
        print(f"{arch:12} {r['mac_units']:5} {r['generic_transistors']:12,} {rel_area:5.2f} {r['xcup_lut']:7,} "
              f"{r['xcup_ff']:6,} {r['xcup_dsp']:4} {r['generic_logic_depth']:5} {fmax:>6} "
              f"{r['k16_utilisation']:6.1%} {r['k256_utilisation']:7.1%} "
              f"{(ppa or 0) * 1e3:9.3f} {rel_ppa:5.2f}")
    print(f"Fmax: ECP5 LFE5U-85F at the {'64-MAC' if args.ecp5 == 'small' else 'paper'} size, seed 1; "
          "perf/area = MAC units x util(K=256) x Fmax(MHz) / transistors x 1e3")
    print("\npaper's reference RTL baselines (SAED32): area rel. to OS, perf/area rel. to OS")
    os_ref = PAPER_BASELINE["systolic_os"]
    for arch, ref in PAPER_BASELINE.items():
        ppa = ref["macs"] * ref["fmax_mhz"] / ref["area_um2"]
        ppa_os = os_ref["macs"] * os_ref["fmax_mhz"] / os_ref["area_um2"]
        print(f"{arch:12} area {ref['area_um2'] / os_ref['area_um2']:5.2f}  perf/area {ppa / ppa_os:5.2f}  "
              f"({ref['fmax_mhz']} MHz)")

    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "tpe_arch" if args.ecp5 == "small" else f"tpe_arch-ecp5-{args.ecp5}"
    (RESULTS / f"{stem}.json").write_text(json.dumps({"ecp5": args.ecp5, "archs": rows,
                                                      "paper_baseline": PAPER_BASELINE}, indent=2) + "\n")
    chart(rows, RESULTS / f"{stem}.png")
    print(f"\nwrote {RESULTS / stem}.json and .png")


def chart(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    archs = list(rows)
    base = rows.get("systolic_os") or rows[archs[0]]
    metrics = [
        ("transistors", lambda r: r["generic_transistors"] / base["generic_transistors"]),
        ("LUTs (xcup)", lambda r: r["xcup_lut"] / max(base["xcup_lut"], 1)),
        ("util K=16", lambda r: r["k16_utilisation"]),
        ("util K=256", lambda r: r["k256_utilisation"]),
        ("perf/area", lambda r: (r.get("perf_per_area") or 0) / (base.get("perf_per_area") or 1)),
    ]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(metrics)
    for index, (label, value) in enumerate(metrics):
        xs = [n + index * width for n in range(len(archs))]
        ax.bar(xs, [value(rows[a]) for a in archs], width, label=label)
    ax.set_xticks([n + 0.4 - width / 2 for n in range(len(archs))], archs)
    ax.set_ylabel("ratio to systolic_os (utilisation: fraction)")
    ax.set_title("TPE architectures, signed INT8 at the paper's sizes (npuforge, open tools)")
    ax.legend(ncol=5, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
