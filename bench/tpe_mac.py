"""Compare the ``mac:`` options of every TPE architecture against its ``baseline``: area, depth,
Fmax, cycles, performance per area and the energy proxy, beside the HPCA 2025 paper's ratios.

Usage (in the venv): ``python bench/tpe_mac.py [--quick] [--arch A ...] [--mac M ...] [--ecp5 small|none]
[--xcup run|none]``

A ``--mac`` of the form ``opt4c+rq4`` measures ``opt4c`` with decoupled rows (``row_queue: 4``,
``matrix2d``'s digit-serial options) as a row of its own, beside the lockstep one.

For each architecture at the paper's size (signed INT8; ``systolic_os``, ``systolic_ws``
and ``matrix2d`` 16x16, ``cube`` 8x8x8, ``adder_tree`` 16 units of ``k_tile`` 16, as
``bench/tpe_arch.py``) and each ``mac`` in ``gen.kinds.tpe.MAC_BY_ARCH`` (read at run
time, so new options appear without edits):

* area and depth: ``npuforge synth`` generic (transistors, cells, logic depth) and xcup
  (LUT, FF, DSP), the cached results ``bench/tpe_arch.py`` uses for ``baseline``;
* Fmax: nextpnr-ecp5, LFE5U-85F, seed 1, out of context, at the 64-MAC size (the paper
  size does not fit the device; see docs/tpe.md);
* cycles and energy: the toggle model of ``sim/energy.py`` runs ``C = A @ B`` with
  ``A`` 16 x 256 and ``B`` 256 x 16, twice back to back at full rate, bit-exact against
  the golden model, on Gaussian operands (sigma 10, 30, 50) and on uniform ones; cycles
  per GEMM are the simulated ones; for data-dependent options the cycle model
  ``sim.golden.tpe_cycles`` predicts the same stream, and the row records whether the
  two agree exactly (those options are skipped while the model does not exist);
* performance per area = useful MACs per cycle x Fmax / transistors;
* energy proxy per MAC (``sim.energy.energy_proxy``: toggles per signal bit x gates of
  each instance, from ``fpga.modules.module_cells``), a proxy reported only as ratios.

Every figure is printed as a ratio to the same architecture's ``baseline``, next to the
paper's gains (area efficiency and energy efficiency per architecture; the bit-slice
design against Laconic). Writes ``bench/results/tpe_mac.json`` and ``tpe_mac.png``
(``tpe_mac-quick.*`` with ``--quick``, small arrays and K = 32, to check the script).
Rows of an earlier run for other (arch, mac) pairs are kept in the JSON, so options can
be measured one at a time.
"""

import argparse
import importlib
import json
import math
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gen.config import parse_config_data  # noqa: E402
from gen.emit import generate  # noqa: E402
from gen.errors import ToolError  # noqa: E402
from gen.kinds.tpe import ARCH_KEYS, MAC_BY_ARCH  # noqa: E402
from gen.locking import locked  # noqa: E402
from gen.manifest import verilog_filename  # noqa: E402
from sim import energy  # noqa: E402
from tpe_arch import BUILD, OPERAND, PAPER, RESULTS, SMALL, synth  # noqa: E402

#: Arrays for ``--quick``: every code path in a few minutes.
QUICK = {
    "systolic_os": {"rows": 4, "cols": 4, "k_max": 32},
    "systolic_ws": {"rows": 4, "cols": 4},
    "cube": {"rows": 2, "cols": 2, "depth": 2, "k_max": 32},
    "adder_tree": {"cols": 4, "k_tile": 4, "k_max": 32},
    "matrix2d": {"rows": 4, "cols": 4, "k_max": 32},
}
#: The paper's gains of its optimised design over its own baseline, per architecture
#: (SMIC 28 nm; ../shared/reference/tpe.md); systolic covers both dataflows.
PAPER_GAIN = {
    "systolic_os": {"area_eff": 1.27, "energy_eff": 1.04},
    "systolic_ws": {"area_eff": 1.27, "energy_eff": 1.04},
    "cube": {"area_eff": 1.28, "energy_eff": 1.56},
    "adder_tree": {"area_eff": 1.56, "energy_eff": 1.49},
    "matrix2d": {"area_eff": 1.44, "energy_eff": 1.20},
}
#: The paper's bit-slice design against a Laconic-style bit-serial one.
PAPER_VS_LACONIC = {"area_eff": 2.85, "energy_eff": 12.10}
#: Options whose cycles follow the data (the issue's list); they need the cycle model.
DATA_DEPENDENT = ("opt3", "opt4c", "laconic")
#: The distribution whose proxy is broken down by kind of instance in the JSON.
BREAKDOWN = "sigma30"
GAUSSIAN = tuple(d for d in energy.DISTRIBUTIONS if d != "uniform")


def config(arch: str, size: dict, tag: str, mac: str, fanout: int = 0, row_queue: int = 0):
    """``bench_<arch>_<tag>`` for baseline (the config ``bench/tpe_arch.py`` synthesised), ``..._<mac>`` otherwise;
    ``..._fan<n>`` with a registered operand fan-out (``bench/tpe_fanout.py``), ``..._rq<n>`` with decoupled
    rows."""
    name = (f"bench_{arch}_{tag}" + ("" if mac == "baseline" else f"_{mac}") + (f"_fan{fanout}" if fanout else "")
            + (f"_rq{row_queue}" if row_queue else ""))
    data = {"kind": "tpe", "name": name, "arch": arch, "operand": OPERAND, **size}
    if mac != "baseline":
        data["mac"] = mac
    if fanout:
        data["fanout"] = fanout
    if row_queue:
        data["row_queue"] = row_queue
    return parse_config_data(data, f"bench {arch} {tag} {mac}" + (f" fanout {fanout}" if fanout else "")
                             + (f" row_queue {row_queue}" if row_queue else ""))


def split_label(label: str) -> tuple[str, int]:
    """``("opt4c", 4)`` for the row label ``opt4c+rq4``; ``(mac, 0)`` for a plain ``mac``."""
    mac, _, queue = label.partition("+rq")
    return mac, int(queue) if queue else 0


def synth_file(cfg, generated, target: str) -> dict:
    """``bench/tpe_arch.py``'s ``synth`` (same cache directory) on Verilog generated already."""
    from fpga.synth import synthesize

    result = synthesize(generated.out_dir / verilog_filename(cfg.name), cfg.name, target,
                        config_hash=cfg.config_hash(), cache_dir=BUILD / cfg.build_name() / "synth" / target, seed=1)
    return result.data


def cycle_model():
    """The module ``sim.golden.tpe_cycles`` (the cycle model of data-dependent options), or None
    with the reason printed."""
    try:
        module = importlib.import_module("sim.golden.tpe_cycles")
    except ImportError as error:
        print(f"cycle model unavailable ({error}); data-dependent options are skipped", flush=True)
        return None
    if not hasattr(module, "job_cycles"):
        print("cycle model sim.golden.tpe_cycles has no job_cycles; data-dependent options are skipped", flush=True)
        return None
    return module


def model_cycles(model, cfg, jobs: list[dict]) -> int:
    """The cycle model's cycles for ``jobs`` back to back at full rate, from the first operand beat to
    the last result beat (``stream_cycles``; the sum of ``job_cycles`` when that does not exist)."""
    geometry = {key: getattr(cfg, key) for key in ARCH_KEYS[cfg.arch] if getattr(cfg, key, None) is not None}
    common = {"arch": cfg.arch, "mac": cfg.mac, "operand_width": cfg.a_format.width, "signed": cfg.a_format.signed}
    if hasattr(model, "stream_cycles"):
        return int(model.stream_cycles([(job["a"], job["b"]) for job in jobs], **common, **geometry))
    return sum(int(model.job_cycles(job["a"], job["b"], **common, **geometry)) for job in jobs)


def energy_runs(cfg, generated, work: dict, cycle_module) -> dict:
    """Cycles and energy proxy of ``cfg`` (generated as ``generated``) on each operand distribution."""
    from fpga.modules import module_cells

    started = time.monotonic()
    design = energy.prepare(cfg, build_root=BUILD, generated=generated)
    built = time.monotonic()
    modules = module_cells(design.verilog, cfg.name, config_hash=cfg.config_hash(),
                           cache_dir=design.home / "synth-modules")["modules"]
    out = {"toggle_model_s": round(built - started, 1), "module_synth_s": round(time.monotonic() - built, 1),
           "module_cells_total": sum(m["cells"] for m in modules.values())}
    run_started = time.monotonic()
    for dist in energy.DISTRIBUTIONS:
        jobs, macs = energy.gemm_workload(cfg, dist, m=work["m"], k=work["k"], n=work["n"],
                                             repeats=work["repeats"], seed=work["seed"])
        activity = energy.measure(design, jobs, macs, dist)
        cells = energy.energy_proxy(activity, modules, "cells")
        transistors = energy.energy_proxy(activity, modules, "transistors")
        if cells["unmatched"]:
            raise SystemExit(f"{cfg.name}: instances without gate counts or toggles: {cells['unmatched'][:5]}")
        row = {"cycles_per_gemm": activity.cycles / work["repeats"], "macs_per_gemm": macs // work["repeats"],
               "energy_per_mac": cells["per_op"], "energy_per_mac_transistors": transistors["per_op"],
               "toggle_rate": round(cells["toggle_rate"], 5)}
        if dist == BREAKDOWN:
            row["per_group"] = breakdown(cells["per_instance"], activity.macs)
        if cycle_module is not None and cfg.mac in DATA_DEPENDENT:
            predicted = model_cycles(cycle_module, cfg, jobs)
            row["model_cycles_per_gemm"] = predicted / work["repeats"]
            row["model_matches_simulation"] = predicted == activity.cycles
        out[dist] = row
    out["energy_runs_s"] = round(time.monotonic() - run_started, 1)
    return out


def breakdown(per_instance: dict[str, float], macs: int) -> dict[str, float]:
    """The proxy per MAC summed over instances of one kind: ``core.pe_3_4`` counts as ``core.pe``."""
    groups: dict[str, float] = {}
    for instance, value in per_instance.items():
        _, _, path = instance.partition(".")
        group = re.sub(r"(_\d+)+(?=$|\.)", "", path) or "top"
        groups[group] = groups.get(group, 0.0) + value / macs
    return dict(sorted(groups.items(), key=lambda item: -item[1]))


def measure(arch: str, label: str, sizes: dict, pnr_sizes: dict | None, tag: str, work: dict, cycle_module,
            pnr_timeout: int, with_xcup: bool = True) -> dict:
    started = time.monotonic()
    mac, row_queue = split_label(label)
    cfg = config(arch, sizes[arch], tag, mac, row_queue=row_queue)
    print(f"{arch} / {label}: {cfg.describe()}", flush=True)
    row = {"arch": arch, "mac": label, "config": cfg.normalized(), "measured": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                      time.gmtime())}
    step = time.monotonic()
    # Elaborated once (minutes at 16x16), where bench/tpe_arch.py writes it, for every step.
    generated = generate(cfg, BUILD / cfg.build_name() / "synth" / "rtl")
    row["generate_s"] = round(time.monotonic() - step, 1)
    step = time.monotonic()
    generic = synth_file(cfg, generated, "generic")
    row |= {f"generic_{k}": generic[k] for k in ("transistors", "cells", "logic_depth", "ff")}
    row["verilog_sha256"] = generic["verilog_sha256"]
    if with_xcup:
        xcup = synth_file(cfg, generated, "xcup")
        row |= {f"xcup_{k}": xcup[k] for k in ("lut", "ff", "dsp", "carry")}
    else:  # informative only (perf/area uses the generic transistors); the cube opt1 run takes 12 GB
        row |= {f"xcup_{k}": None for k in ("lut", "ff", "dsp", "carry")}
    row["synth_s"] = round(time.monotonic() - step, 1)
    if pnr_sizes is not None:
        step = time.monotonic()
        pnr_cfg = config(arch, pnr_sizes[arch], "small" if tag == "paper" else tag, mac, row_queue=row_queue)
        try:
            ecp5 = synth(pnr_cfg, "ecp5", timeout=pnr_timeout)
            row |= {"fmax_mhz": ecp5["fmax_mhz"], "ecp5_lut": ecp5["lut"], "ecp5_dsp": ecp5["dsp"],
                    "ecp5_macs": ecp5_macs(pnr_cfg)}
        except ToolError as error:
            row |= {"fmax_mhz": None, "ecp5_error": str(error)}
        row["ecp5_s"] = round(time.monotonic() - step, 1)
    row |= energy_runs(cfg, generated, work, cycle_module)
    gauss = [row[d] for d in GAUSSIAN]
    row["cycles_per_gemm"] = sum(r["cycles_per_gemm"] for r in gauss) / len(gauss)
    row["macs_per_gemm"] = gauss[0]["macs_per_gemm"]
    if row.get("fmax_mhz"):
        macs_per_cycle = row["macs_per_gemm"] / row["cycles_per_gemm"]
        row["perf_per_area"] = macs_per_cycle * row["fmax_mhz"] / row["generic_transistors"]
    row["energy_per_mac_gaussian"] = geomean([r["energy_per_mac"] for r in gauss])
    row["bench_s"] = round(time.monotonic() - started, 1)
    print("  " + json.dumps({k: v for k, v in row.items() if k not in ("config",) + energy.DISTRIBUTIONS}),
          flush=True)
    return row


def ecp5_macs(cfg) -> int:
    """Multipliers of the place-and-route size (``adder_tree`` has no ``rows``, only ``cube`` a ``depth``)."""
    if cfg.arch == "adder_tree":
        return cfg.cols * cfg.k_tile
    if cfg.arch == "cube":
        return cfg.rows * cfg.cols * cfg.depth
    return cfg.rows * cfg.cols


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def paper_gain(arch: str, mac: str) -> dict | None:
    """The paper's gains to print beside an option: none for baseline and for laconic (its comparison point)."""
    return None if mac in ("baseline", "laconic") else PAPER_GAIN[arch]


def ratios(row: dict, base: dict) -> dict:
    """Every figure of ``row`` over ``base`` (same arch); gains are base/row for costs."""
    def over(key, invert=False):
        a, b = row.get(key), base.get(key)
        if not a or not b:
            return None
        return b / a if invert else a / b
    out = {
        "transistors": over("generic_transistors"), "xcup_lut": over("xcup_lut"),
        "logic_depth": over("generic_logic_depth"),
        "fmax": over("fmax_mhz"), "cycles": over("cycles_per_gemm"), "area_eff": over("perf_per_area"),
        "energy_eff": over("energy_per_mac_gaussian", invert=True),
    }
    for dist in energy.DISTRIBUTIONS:
        if dist in row and dist in base:
            out[f"energy_eff_{dist}"] = base[dist]["energy_per_mac"] / row[dist]["energy_per_mac"]
    return out


def report(rows: dict, quick: bool) -> dict:
    table = {}
    head = (f"{'arch':12} {'mac':9} {'transistors':>11} {'LUT':>5} {'depth':>5} {'Fmax':>5} {'cycles':>6} "
            f"{'perf/area':>9} {'paper':>5} {'energy eff':>10} {'paper':>5}  energy eff sigma10/30/50/uniform")
    print("\nratios to the same architecture's baseline (gains: > 1 is better for perf/area and energy eff)\n" + head)
    fmt = lambda v: f"{v:.2f}" if v is not None else "-"  # noqa: E731
    for (arch, mac), row in rows.items():
        base = rows.get((arch, "baseline"))
        if base is None:
            continue
        r = ratios(row, base)
        table[f"{arch}/{mac}"] = r
        paper = paper_gain(arch, mac) or {"area_eff": None, "energy_eff": None}
        per_dist = "/".join(fmt(r.get(f"energy_eff_{d}")) for d in energy.DISTRIBUTIONS)
        print(f"{arch:12} {mac:9} {fmt(r['transistors']):>11} {fmt(r['xcup_lut']):>5} {fmt(r['logic_depth']):>5} "
              f"{fmt(r['fmax']):>5} {fmt(r['cycles']):>6} {fmt(r['area_eff']):>9} {fmt(paper['area_eff']):>5} "
              f"{fmt(r['energy_eff']):>10} {fmt(paper['energy_eff']):>5}  {per_dist}")
    for arch in {a for a, _ in rows}:
        laconic = rows.get((arch, "laconic"))
        if laconic is None:
            continue
        for mac in ("opt4c", "opt3"):
            if (arch, mac) in rows:
                r = ratios(rows[(arch, mac)], laconic)
                table[f"{arch}/{mac}_vs_laconic"] = r
                print(f"{arch} {mac} vs laconic: perf/area {fmt(r['area_eff'])} "
                      f"(paper {PAPER_VS_LACONIC['area_eff']}), "
                      f"energy eff {fmt(r['energy_eff'])} (paper {PAPER_VS_LACONIC['energy_eff']})")
                break
    size = "quick sizes" if quick else "paper sizes"
    print(f"transistors/LUT/depth/Fmax/cycles: option / baseline ({size}, Fmax at "
          f"{'the same size' if quick else 'the 64-MAC size'}); perf/area and energy eff: option's gain; "
          "energy eff = geometric mean over sigma 10, 30, 50 of the proxy's baseline / option.\n"
          "The paper's columns are its gains per architecture (best option, SMIC 28 nm), not per option.")
    return table


def chart(rows: dict, table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [key for key in table if "_vs_" not in key and not key.endswith("/baseline")]
    if not pairs:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, metric, label in ((axes[0], "area_eff", "performance per area"),
                              (axes[1], "energy_eff", "energy efficiency (proxy, Gaussian)")):
        ours = [table[p][metric] or 0 for p in pairs]
        paper = [(paper_gain(*p.split("/")) or {metric: 0})[metric] for p in pairs]
        xs = range(len(pairs))
        ax.bar([x - 0.2 for x in xs], ours, 0.4, label="npuforge (open tools)")
        ax.bar([x + 0.2 for x in xs], paper, 0.4, label="paper (per architecture)", hatch="//", alpha=0.6)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(list(xs), pairs, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{label}, ratio to baseline")
        ax.legend(fontsize=8)
    fig.suptitle("TPE MAC options vs baseline, signed INT8")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small arrays and K = 32, to check the script")
    parser.add_argument("--arch", action="append", choices=sorted(MAC_BY_ARCH), help="only these (repeatable)")
    parser.add_argument("--mac", action="append", help="only these options (repeatable; baseline is always run)")
    parser.add_argument("--ecp5", choices=("small", "none"), default="small",
                        help="Fmax by place and route at the 64-MAC size (default), or none")
    parser.add_argument("--xcup", choices=("run", "none"), default="run",
                        help="the xcup synthesis (LUT, FF, DSP columns; informative), or none: an earlier "
                             "run's figures for the same Verilog, else empty")
    parser.add_argument("--pnr-timeout", type=int, default=3600,
                        help="seconds per ECP5 run (default 3600: the 8x8 opt1 array routes for 10 minutes "
                             "on a loaded 2-core machine)")
    args = parser.parse_args()
    archs = args.arch or list(MAC_BY_ARCH)
    sizes, pnr, tag = (QUICK, QUICK, "quick") if args.quick else (PAPER, SMALL, "paper")
    work = ({"m": 4, "k": 32, "n": 4, "repeats": 2, "seed": 1} if args.quick
            else {"m": 16, "k": 256, "n": 16, "repeats": 2, "seed": 1})
    cycle_module = cycle_model()

    stem = "tpe_mac-quick" if args.quick else "tpe_mac"
    out_json = RESULTS / f"{stem}.json"
    measured = {}
    for arch in archs:
        variants = [label for label in args.mac or [] if "+rq" in label and arch == "matrix2d"]
        for mac in MAC_BY_ARCH[arch] + tuple(variants):
            if args.mac and mac != "baseline" and mac not in args.mac:
                continue
            if split_label(mac)[0] in DATA_DEPENDENT and cycle_module is None:
                print(f"{arch} / {mac}: skipped (no cycle model sim.golden.tpe_cycles yet)", flush=True)
                continue
            measured[(arch, mac)] = measure(arch, mac, sizes, None if args.ecp5 == "none" else pnr, tag, work,
                                            cycle_module, args.pnr_timeout, with_xcup=args.xcup == "run")
    # Rows of other (arch, mac) pairs from the file as it is now (another run may have added some meanwhile).
    with locked(BUILD / f"{stem}.json.lock"):
        try:
            rows = {(r["arch"], r["mac"]): r for r in json.loads(out_json.read_text())["rows"]
                    if r["arch"] in MAC_BY_ARCH}
        except (OSError, ValueError, KeyError):
            rows = {}
        for key, row in measured.items():  # --xcup none: the figures of an earlier run of the same Verilog
            old = rows.get(key, {})
            if row.get("xcup_lut") is None and old.get("verilog_sha256") == row["verilog_sha256"]:
                row |= {k: old[k] for k in ("xcup_lut", "xcup_ff", "xcup_dsp", "xcup_carry") if k in old}
        rows.update(measured)
        rows = {key: rows[key] for key in sorted(rows, key=lambda k: (list(MAC_BY_ARCH).index(k[0]),
                                                                       (MAC_BY_ARCH[k[0]] + (k[1],)).index(k[1]),
                                                                       k[1]))}
        table = report(rows, args.quick)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"work": work, "paper_gain": PAPER_GAIN, "paper_vs_laconic": PAPER_VS_LACONIC,
                                        "ratios": table, "rows": list(rows.values())}, indent=2) + "\n")
        chart(rows, table, RESULTS / f"{stem}.png")
    print(f"\nwrote {out_json} and {stem}.png")


if __name__ == "__main__":
    main()
