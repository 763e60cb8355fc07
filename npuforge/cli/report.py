"""``npuforge report DB [--json FILE] [--html FILE]``: a campaign's outcomes, intervals, FIT, SPFM/LFM/PMHF, ASIL.

``--predicted FILE`` adds the metrics ``npuforge protect`` predicted beside the measured ones.
"""

from pathlib import Path

from gen.errors import UsageError
from sim.fault.metrics import DEFAULT_INTERVAL, INTERVALS
from sim.fault.report import DEFAULT_GROUPING, GROUPINGS

from .args import int_in
from .output import stdout_console, write_json

HELP = "report a fault campaign: outcomes per block with intervals, FIT, SPFM, LFM, PMHF, ASIL"


def add_arguments(parser) -> None:
    parser.add_argument("db", type=Path, metavar="DB", help="campaign database written by 'npuforge inject'")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--html", type=Path, default=None, metavar="FILE",
                        help="also write the report as one self-contained HTML page with plots")
    parser.add_argument("--by", choices=tuple(GROUPINGS), default=DEFAULT_GROUPING,
                        help="rows: group (indices collapsed, core.pe_* for every PE) or block (each manifest "
                             f"block); default {DEFAULT_GROUPING}")
    parser.add_argument("--interval", choices=tuple(INTERVALS), default=DEFAULT_INTERVAL,
                        help=f"95%% interval method (default {DEFAULT_INTERVAL})")
    parser.add_argument("--tolerable-sdc", type=int_in(0, 2**62), default=None, metavar="CODES",
                        help="critical vs tolerable SDC: an SDC whose largest output change is at most CODES output "
                             "codes counts as safe, not dangerous (the assumption is stated in the report)")
    parser.add_argument("--predicted", type=Path, default=None, metavar="FILE",
                        help="the .prediction.json (or the config) written by 'npuforge protect': show its "
                             "predicted SPFM, LFM, PMHF and area beside this campaign's measured ones")


def _write_html(path: Path, report: dict, meta: dict, results: list) -> None:
    from sim.fault.html_report import render_html, write_html

    page = render_html(report, meta, results)
    try:
        write_html(path, page)
    except OSError as error:
        raise UsageError(f"--html: got '{path}'; cannot write it: {error.strerror}") from None


def run(args) -> int:
    from sim.fault.report import build_report, render_table
    from sim.fault.store import CampaignStore

    for option, path in (("--json", args.json), ("--html", args.html)):
        if path is not None and path.is_dir():  # refuse before reading the database
            raise UsageError(f"{option}: got '{path}', which is a directory; allowed: a file path")
    prediction = None
    if args.predicted is not None:
        from sim.fault.optimize import load_prediction

        prediction = load_prediction(args.predicted)
    with CampaignStore.open(args.db) as store:
        meta = store.meta()
        results = list(store.results())
    report = build_report(meta, results, by=args.by, interval=args.interval,
                          tolerable_sdc=args.tolerable_sdc)
    if prediction is not None:
        from sim.fault.optimize import compare

        report["predicted"] = compare(prediction, report)
    if args.json is not None:
        write_json(args.json, report)
    if args.html is not None:
        _write_html(args.html, report, meta, results)
    render_table(report, stdout_console())
    for path in (args.json, args.html):
        if path is not None:
            print(f"wrote {path}")
    if args.html is not None:  # the conclusion last, under the long table, for whoever reads the end
        from sim.fault.html_report import verdict

        print(f"verdict  {verdict(report)}")
        print(f"report   {args.html.resolve()}")
    return 0
