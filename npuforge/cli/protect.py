"""``npuforge protect DB --target D -o protected.yaml``: the least-area protect: assignment for a target ASIL.

Reads an unprotected campaign, prices every (block, mechanism) (``--area FILE``, a
measured synthesis per variant when the design's kind takes ``protect:``, else the
analytic estimate of ``fpga/protect_area.py`` calibrated by one generic synthesis),
solves the integer program of ``sim/fault/optimize.py`` and writes the design config
with its ``protect:`` section, and the prediction as JSON beside it
(``<stem>.prediction.json``: what ``npuforge report --predicted`` compares with).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from gen.errors import ConfigError, UsageError
from sim.fault import metrics

from .output import stdout_console

HELP = "choose the least-area protect: assignment that meets a target ASIL, from a campaign"
AREA_MODELS = ("auto", "estimate", "measure")


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a number > 0 (FIT per bit)")
    return value


def percent_points(text: str) -> float:
    """``--headroom``: percentage points from 0 to below 10, returned as a fraction."""
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: percentage points from 0 to below 10")
    return value / 100


def add_arguments(parser) -> None:
    parser.add_argument("db", type=Path, metavar="CAMPAIGN_DB", help="database of an unprotected campaign "
                        "('npuforge inject')")
    parser.add_argument("--target", choices=metrics.ASILS, default=None,
                        help="ASIL to reach (default: the campaign's target_asil)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                        help="design config with the protect: section to write (YAML); the prediction goes to "
                             "FILE's stem + .prediction.json")
    parser.add_argument("--area", type=Path, default=None, metavar="FILE",
                        help="area table (JSON or YAML: baseline, blocks: {BLOCK: {MECHANISM: added area}}, "
                             "optional coverage); default: measured or estimated, see --area-model")
    parser.add_argument("--area-model", choices=AREA_MODELS, default="auto",
                        help="without --area: measure (one generic synthesis per variant; needs a kind with "
                             "protect:), estimate (analytic, calibrated by one synthesis), auto (measure when "
                             "the kind takes protect:, else estimate; default)")
    parser.add_argument("--fit-flop", type=positive_number, default=None, metavar="X",
                        help="FIT per flip-flop bit (default: the campaign's fit_per_bit.register)")
    parser.add_argument("--fit-sram", type=positive_number, default=None, metavar="Y",
                        help="FIT per memory bit (default: the campaign's fit_per_bit.memory)")
    parser.add_argument("--headroom", type=percent_points, default=0.0, metavar="PTS",
                        help="raise the SPFM and LFM requirements by PTS percentage points (e.g. 0.3), so that a "
                             "re-run campaign's own intervals still clear the target (default 0)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR",
                        help="build root for the calibration synthesis (default build/)")


def prediction_path(output: Path) -> Path:
    """Where the prediction of the config ``output`` goes: ``<stem>.prediction.json`` beside it."""
    return output.with_name(output.stem + ".prediction.json")


def _kind_takes_protect(design: dict) -> bool:
    from gen.registry import kind_named

    try:
        return "protect" in kind_named(design["kind"]).config.model_fields
    except (KeyError, ValueError, LookupError):
        return False


def accepted_mechanisms(design: dict, blocks) -> dict[str, list[str]]:
    """Per protectable block, the mechanisms the design's kind accepts in ``protect:`` (what it implements).

    Asked of the kind's own config validation, one variant at a time, so the optimiser never
    chooses what the generator would refuse.
    """
    from gen.config.loader import parse_config_data
    from sim.fault import optimize

    base = {k: v for k, v in design.items() if k != "protect"}
    out = {}
    for block in blocks:
        out[block.name] = []
        for mechanism in optimize.costed_mechanisms(block):
            try:
                parse_config_data({**base, "protect": [{"match": block.name, "mechanism": mechanism}]}, "variant")
            except ConfigError:
                continue
            out[block.name].append(mechanism)
    return out


def _synth_area(design: dict, build_root: Path, status) -> dict:
    """Generic synthesis of ``design`` (a config dict), cached like ``npuforge synth``: transistors and ff."""
    from fpga.cost import generic_cost
    from gen.config.loader import parse_config_data

    cost = generic_cost(parse_config_data(design, "design"), build_root, on_step=status.update)
    return {"transistors": int(cost["transistors"]), "ff": int(cost["ff"])}


def area_table(args, design: dict, manifest: dict, blocks, status) -> dict:
    """The area table: ``--area``, or measured / estimated as ``--area-model`` says."""
    from fpga import protect_area
    from sim.fault import optimize

    names = [b.name for b in blocks if b.protectable]
    if args.area is not None:
        return protect_area.load_table(args.area, names, list(optimize.MECHANISMS))
    takes_protect = _kind_takes_protect(design)
    if args.area_model == "measure" and not takes_protect:
        raise UsageError(f"--area-model measure: kind '{design.get('kind')}' has no protect: section to "
                         "synthesise; allowed: estimate, or --area FILE")
    build_root = args.build_dir or Path(os.environ.get("NPUFORGE_BUILD_DIR", "build"))
    baseline = _synth_area({k: v for k, v in design.items() if k != "protect"}, build_root, status)
    rows = [{"name": b.name, "kind": b.kind, "sites": list(b.sites), "mechanisms": optimize.costed_mechanisms(b)}
            for b in blocks if b.protectable]
    outputs = sum(port["width"] for port in manifest.get("ports", []) if port.get("direction") == "output")
    if takes_protect and args.area_model != "estimate":
        accepted = accepted_mechanisms(design, blocks)
        for row in rows:  # only the variants the generator builds can be synthesised
            row["mechanisms"] = accepted.get(row["name"], [])
        return protect_area.measure(
            rows, baseline=baseline, output_bits=outputs, on_step=status.update,
            abft_fraction=optimize.abft_fraction(design),
            synthesize_with=lambda section: _synth_area({**design, "protect": section}, build_root, status))
    return protect_area.estimate(rows, transistors=baseline["transistors"], output_bits=outputs,
                                 abft_fraction=optimize.abft_fraction(design))


def _config_text(design: dict, section: list[dict], prediction: dict, takes_protect: bool) -> str:
    import yaml

    p = prediction["predicted"]
    head = [
        f"# Written by npuforge protect from campaign {prediction['campaign']} "
        f"(target ASIL {prediction['target_asil']}).",
        f"# Predicted at the pessimistic end of the campaign's {prediction['confidence']:.0%} intervals: "
        f"SPFM {p['spfm_bound']:.2%}, LFM {_pct(p['lfm_bound'])}, PMHF {p['pmhf_fit_bound']:.3g} FIT (first order).",
        f"# Added area {prediction['area']['selected_pct']:.1f}% of the unprotected design"
        + (" (ESTIMATED, analytic model)" if prediction["area"]["estimated"] else "") + ".",
    ]
    if not takes_protect:
        head.append(f"# Kind '{design.get('kind')}' has no protect: section yet: this file documents the "
                    "assignment; it is not a valid config of that kind.")
    body = {k: v for k, v in design.items() if k != "protect"}
    body["protect"] = section
    return "\n".join(head) + "\n" + yaml.safe_dump(body, sort_keys=False, default_flow_style=False)


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def run(args) -> int:
    from rich.console import Console

    from sim.fault import optimize
    from sim.fault.html_report import write_html  # writes any text whole or not at all
    from sim.fault.store import CampaignStore

    out = args.output
    if out.is_dir():
        raise UsageError(f"-o: got '{out}', which is a directory; allowed: a file path")
    if out.suffix not in (".yaml", ".yml"):
        raise UsageError(f"-o: got '{out}'; allowed: a .yaml or .yml file")
    with CampaignStore.open(args.db) as store:
        meta = store.meta()
        results = list(store.results())
    target = args.target or meta.get("target_asil", "D")
    fit = {key: value for key, value in (("register", args.fit_flop), ("memory", args.fit_sram)) if value}
    blocks = optimize.blocks_from_campaign(meta, results, fit_per_bit=fit)
    design = meta.get("design") or {}
    console = Console(stderr=True)
    with console.status("pricing the mechanisms") as status:
        table = area_table(args, design, meta["manifest"], blocks, status)
    for line in table.get("skipped", ()):
        print(f"npuforge: warning: {line}", file=sys.stderr)
    model = optimize.model_for(blocks, coverage=table.get("coverage", {}),
                               abft_fraction=optimize.abft_fraction(design))
    takes_protect = _kind_takes_protect(design)
    allowed = accepted_mechanisms(design, blocks) if takes_protect else None
    problem = optimize.build_problem(blocks, table["blocks"], model, allowed=allowed)
    solution = optimize.optimise(problem, target, headroom=args.headroom)
    section = optimize.protect_section(solution)
    prediction = optimize.prediction_record(meta, blocks, problem, solution, table, model, target)
    prediction["headroom"] = args.headroom
    text = _config_text(design, section, prediction, takes_protect)
    if takes_protect:  # the file must load as a config of the kind: refuse to write one that does not
        from gen.config.loader import parse_config_text

        try:
            parse_config_text(text, str(out))
        except ConfigError as error:
            raise ConfigError(f"the protect: section does not validate: {error}") from None
    optimize.render(prediction, stdout_console())
    try:  # whole files or none (a temporary file renamed over each)
        write_html(out, text)
    except OSError as error:
        raise UsageError(f"-o: got '{out}'; cannot write it: {error.strerror}") from None
    try:
        write_html(prediction_path(out), json.dumps(prediction, indent=2, sort_keys=True) + "\n")
    except BaseException:
        out.unlink(missing_ok=True)  # both or neither
        raise
    print(f"wrote {out}")
    print(f"wrote {prediction_path(out)}")
    return 0
