"""The protection loop on an NPU tile: unprotected campaign -> optimiser -> protected design -> campaign.

Usage (in the venv): ``python bench/protect.py [--rows 16 --cols 16] [--samples N] [--headroom PTS]
[--area-model estimate|measure] [--workers N] [--no-synth]``

On ``configs/npu_tile_8x8.yaml`` with its compute array resized to ``--rows`` x ``--cols``
(default 16 x 16; ``--design FILE`` takes any npu_tile config as it is):

1. an unprotected campaign (``workload: npu_gemm``, SEUs in registers and memories, stratified
   per block, ``--samples`` per block and model);
2. ``npuforge protect`` for the target ASIL (its Python entry point, with ``--headroom``;
   the area table is the analytic estimate calibrated by one generic synthesis, or, with
   ``--area-model measure``, one generic synthesis per (block, mechanism): slow);
3. the protected design regenerated from the written config and the same campaign on it;
4. the measured area: generic synthesis (``npuforge synth --target generic``, Yosys' CMOS
   transistor estimate) of the unprotected and of the protected tile; full DMR and full TMR
   of the same tile are the lockstep figures of the area table (the measured unprotected
   tile replicated, plus a comparator or voter of its outputs), the Ethos-U55 anchor is 38%
   selective, 100% lockstep;
5. predicted (point and pessimistic bound) beside measured (point and 95% interval) SPFM,
   LFM and PMHF, as ``npuforge report --predicted`` shows them.

Prints the assignment and the table; writes ``bench/results/protect-<rows>x<cols>.json``.
``tests/test_protect_loop.py`` runs the same :func:`run_loop` on the 2x3 test tile.
"""

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from gen.config.reader import parse_yaml_text, read_config_text  # noqa: E402

BASE_DESIGN = ROOT / "configs" / "npu_tile_8x8.yaml"
RESULTS = ROOT / "bench" / "results"
BUILD = ROOT / "build" / "bench"
#: The campaign of ``configs/campaigns/npu_tile_8x8_seu.yaml``: one program, a K loop of 2 tiles of 8.
WORKLOAD = {"type": "npu_gemm", "programs": 1, "tiles": 2, "k": 8, "seed": 1}
FIT_PER_BIT = {"register": 1.0e-4, "memory": 1.0e-3}
#: Percentage points added to the SPFM/LFM requirement: the re-run's own interval must clear 99%.
#: 0.2 suffices from 8x8 up (about 150,000 injections: the bound is 0.27 points under the point);
#: the 2x3 test tile's smaller campaign needs 0.4 (docs/protection.md, "The loop").
HEADROOM = 0.2


def campaign_file(path: Path, name: str, design: Path, workload: dict, samples: int, seed: int,
                  target: str = "D") -> Path:
    """Write a campaign config at ``path`` on ``design`` (SEUs in registers and memories, per block)."""
    data = {"kind": "campaign", "name": name, "design": os.path.relpath(design, path.parent),
            "workload": dict(workload),
            "faults": {"models": ["seu", "mem_seu"], "samples": samples, "seed": seed, "stratify": "block"},
            "timeout_factor": 4, "fit_per_bit": dict(FIT_PER_BIT), "target_asil": target}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_campaign(path: Path, db: Path, build_root: Path, workers: int = 1, log=print) -> tuple[dict, list, dict]:
    """Prepare (generate, build the harness or reuse it) and run the campaign at ``path`` into a new ``db``.

    Returns the stored meta, the results and ``{prepare_s, run_s, injections}``.
    """
    from npuforge.registry import kind_workloads
    from sim.fault import campaign as campaigns
    from sim.fault.config import load_campaign
    from sim.fault.store import CampaignStore

    campaign = load_campaign(path, workloads=kind_workloads)
    prepared = campaigns.prepare(campaign, build_root=build_root, on_step=lambda message: log(f"  {message}"))
    log(f"  {len(prepared.sample.faults):,} injections; prepared in {prepared.seconds:.1f} s")
    db.unlink(missing_ok=True)
    summary = campaigns.run(prepared, db=db, workers=workers)
    log(f"  ran in {summary.seconds:.1f} s ({summary.ran / max(summary.seconds, 1e-9):,.0f} inj/s)")
    with CampaignStore.open(db) as store:
        meta, results = store.meta(), list(store.results())
    return meta, results, {"prepare_s": prepared.seconds, "run_s": summary.seconds, "injections": summary.ran}


def synth_area(design: dict, build_root: Path) -> dict:
    """Generic synthesis of ``design`` (cached like ``npuforge synth``): ``{transistors, ff}``."""
    from fpga.cost import generic_cost
    from gen.config.loader import parse_config_data

    cost = generic_cost(parse_config_data(design, "design"), build_root)
    return {"transistors": int(cost["transistors"]), "ff": int(cost["ff"])}


def run_loop(design: dict, work: Path, *, build_root: Path, samples: int, workload: dict = WORKLOAD,
             seed: int = 1, target: str = "D", headroom: float = HEADROOM, area_model: str = "estimate",
             synth: bool = True, workers: int = 1, log=print) -> dict:
    """The whole loop on the npu_tile config ``design`` (a dict); files under ``work``. Returns the record.

    ``headroom`` in percentage points; ``synth``: measure the chosen assignment's area by a
    generic synthesis of the protected tile (the unprotected one is synthesised anyway when
    the optimiser prices by synthesis).
    """
    from npuforge import cli
    from sim.fault.optimize import compare, load_prediction
    from sim.fault.report import build_report

    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    design_path = work / "design.yaml"
    design_path.write_text(yaml.safe_dump(design, sort_keys=False))
    name = design["name"]

    log(f"1. unprotected campaign on {name}")
    base_campaign = campaign_file(work / "unprotected.campaign.yaml", f"{name}_unprotected", design_path,
                                  workload, samples, seed, target)
    base_db = work / "unprotected.sqlite"
    base_meta, base_results, base_timing = run_campaign(base_campaign, base_db, build_root, workers, log)
    base_report = build_report(base_meta, base_results)

    log(f"2. npuforge protect --target {target} --headroom {headroom} --area-model {area_model}")
    protected_path = work / "protected.yaml"
    t0 = time.monotonic()
    status = cli.main(["protect", str(base_db), "--target", target, "-o", str(protected_path), "--area-model",
                       area_model, "--headroom", str(headroom), "--build-dir", str(build_root)])
    if status != 0:
        raise SystemExit(f"npuforge protect failed (exit {status})")
    protect_s = time.monotonic() - t0
    prediction = load_prediction(protected_path)  # reads the .prediction.json beside it
    protected_design = parse_yaml_text(read_config_text(protected_path), str(protected_path))

    log(f"3. the same campaign on the protected design ({prediction['protect']})")
    prot_campaign = campaign_file(work / "protected.campaign.yaml", f"{name}_protected", protected_path,
                                  workload, samples, seed, target)
    prot_meta, prot_results, prot_timing = run_campaign(prot_campaign, work / "protected.sqlite", build_root,
                                                        workers, log)
    report = build_report(prot_meta, prot_results)
    comparison = compare(prediction, report)

    area = dict(prediction["area"])
    measured = None
    if synth:
        log("4. generic synthesis of the unprotected and the protected tile")
        t0 = time.monotonic()
        plain = {k: v for k, v in protected_design.items() if k != "protect"}
        before, after = synth_area(plain, build_root), synth_area(protected_design, build_root)
        measured = {"unprotected": before, "protected": after,
                    "added": after["transistors"] - before["transistors"],
                    "added_pct": 100 * (after["transistors"] - before["transistors"]) / before["transistors"],
                    "added_ff": after["ff"] - before["ff"], "seconds": time.monotonic() - t0}
    return {
        "design": name, "compute": design.get("compute"), "target_asil": target, "headroom_pts": headroom,
        "area_model": area_model, "workload": workload, "samples_per_stratum": samples,
        "protect": prediction["protect"],
        "blocks": [{k: row[k] for k in ("name", "kind", "bits", "injections", "dangerous", "mechanism", "area")}
                   for row in prediction["blocks"]],
        "area": {"table": area, "measured": measured},
        "unprotected_measured": {k: base_report[k] for k in
                                 ("spfm", "spfm_low", "spfm_high", "lfm", "lfm_low", "lfm_high", "pmhf_fit",
                                  "pmhf_fit_low", "pmhf_fit_high", "asil", "asil_conservative")},
        "outcomes": {"unprotected": _outcomes(base_results), "protected": _outcomes(prot_results)},
        "predicted_vs_measured": comparison["rows"], "asil": comparison["asil"],
        "assumptions": prediction["assumptions"],
        "timing": {"unprotected": base_timing, "protect_s": protect_s, "protected": prot_timing,
                   "total_s": time.monotonic() - started},
    }


def _outcomes(results) -> dict:
    """Injections per outcome (masked, sdc, detected, corrected, hang)."""
    counts = {}
    for result in results:
        key = getattr(result.outcome, "value", result.outcome)
        counts[key] = counts.get(key, 0) + 1
    return counts


def _pct(value) -> str:
    return "   n/a " if value is None else f"{100 * value:7.3f}%"


def summary_lines(record: dict) -> list[str]:
    """The assignment, the areas and predicted vs measured metrics as text."""
    lines = [f"design {record['design']}: target ASIL {record['target_asil']}, headroom "
             f"{record['headroom_pts']} pts, areas for the optimiser: {record['area_model']}",
             "assignment: " + (", ".join(f"{e['match']}: {e['mechanism']}" for e in record["protect"]) or "none")]
    table, measured = record["area"]["table"], record["area"]["measured"]
    label = " (ESTIMATED)" if table["estimated"] else ""
    lines.append(f"area, % of the unprotected tile ({table['baseline']:,.0f} transistors, generic synthesis):")
    lines.append(f"  selected, optimiser's table{label}   {table['selected_pct']:6.1f}%")
    if measured:
        lines.append(f"  selected, measured (synthesis)       {measured['added_pct']:6.1f}%   "
                     f"(+{measured['added']:,} transistors, {measured['added_ff']:+,} flip-flops)")
    for m in ("dmr", "tmr"):
        pct = table.get(f"full_{m}_pct")
        lines.append(f"  full {m.upper()} (lockstep)                " + ("   n/a" if pct is None else f"{pct:6.1f}%"))
    anchor = table["ethos_u55"]
    lines.append(f"  Ethos-U55 anchor                     {anchor['selective_pct']:6.1f}%   selective "
                 f"(lockstep {anchor['lockstep_pct']:.0f}%)")
    u = record["unprotected_measured"]
    lines.append(f"unprotected measured SPFM {_pct(u['spfm'])} [{_pct(u['spfm_low'])}, {_pct(u['spfm_high'])}], "
                 f"ASIL {u['asil']} ({u['asil_conservative']} at the bounds)")
    lines.append("metric        predicted   pred.bound    measured   [95% interval]")
    for row in record["predicted_vs_measured"]:
        if row["key"] == "pmhf_fit":
            cells = [f"{row[k]:.4g}" if row[k] is not None else "n/a"
                     for k in ("predicted", "predicted_bound", "measured", "measured_low", "measured_high")]
            lines.append(f"PMHF (FIT) {cells[0]:>11} {cells[1]:>11} {cells[2]:>11}   [{cells[3]}, {cells[4]}]")
        else:
            lines.append(f"{row['metric']:<10} {_pct(row['predicted']):>11} {_pct(row['predicted_bound']):>11} "
                         f"{_pct(row['measured']):>11}   [{_pct(row['measured_low'])}, {_pct(row['measured_high'])}]")
    a = record["asil"]
    lines.append(f"ASIL: predicted {a['predicted']} ({a['predicted_bound']} at the bound), measured "
                 f"{a['measured']} ({a['measured_bound']} at the 95% bounds)")
    return lines


def sized_design(rows: int, cols: int) -> dict:
    """``configs/npu_tile_8x8.yaml`` with its compute array resized (buffers: 32 words of a tile row each)."""
    design = parse_yaml_text(read_config_text(BASE_DESIGN), str(BASE_DESIGN))
    design["name"] = f"npu_tile_{rows}x{cols}"
    design["compute"] = {**design["compute"], "rows": rows, "cols": cols}
    return design


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--cols", type=int, default=16)
    parser.add_argument("--design", type=Path, default=None, help="an npu_tile config to use as it is")
    parser.add_argument("--samples", type=int, default=2000, help="injections per block and fault model")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--k", type=int, default=WORKLOAD["k"], help="beats per GEMM of the workload (<= k_max)")
    parser.add_argument("--target", default="D")
    parser.add_argument("--headroom", type=float, default=HEADROOM, help="percentage points (default %(default)s)")
    parser.add_argument("--area-model", choices=("estimate", "measure"), default="estimate")
    parser.add_argument("--no-synth", action="store_true", help="skip the synthesis of the chosen assignment")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--build-dir", type=Path, default=BUILD)
    parser.add_argument("--tag", default="", help="suffix of the result file and work directory, e.g. h0.2")
    args = parser.parse_args(argv)
    if args.design is not None:
        design = parse_yaml_text(read_config_text(args.design), str(args.design))
    else:
        design = sized_design(args.rows, args.cols)
    size = f"{design['compute'].get('rows')}x{design['compute'].get('cols')}" + (f"-{args.tag}" if args.tag else "")
    work = args.build_dir / (f"protect-{design['name']}" + (f"-{args.tag}" if args.tag else ""))
    if work.exists():
        shutil.rmtree(work)
    record = run_loop(design, work, build_root=args.build_dir, samples=args.samples, seed=args.seed,
                      workload={**WORKLOAD, "k": args.k},
                      target=args.target, headroom=args.headroom, area_model=args.area_model,
                      synth=not args.no_synth, workers=args.workers,
                      log=lambda message: print(message, flush=True))
    print("\n".join(summary_lines(record)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"protect-{size}.json"
    out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
