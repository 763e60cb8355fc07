"""A campaign's report as one self-contained HTML page: summary, ISO metrics, plots, the weakest sites.

``render_html(report, meta, results)`` turns the dict of ``sim.fault.report.build_report``,
the campaign's stored meta and its injection results into one page; ``write_html(path,
page)`` writes it whole or not at all. The page needs no network: the style is inline and
every plot is an SVG drawn by matplotlib (a bare Figure: no pyplot, no display) embedded as a ``data:`` URI.

Plots: the SPFM, LFM and PMHF against the ASIL targets, outcome fractions per row with
intervals, vulnerability by bit position of the most vulnerable registers, outcome
shares by injection cycle. Tables: the campaign summary, the metrics, the rows, the top
fault sites, the mechanisms, the outcome -> ISO class mapping and the assumptions.

*Vulnerability* of a set of injections is the fraction that ended in ``sdc`` or ``hang``
(a wrong or missing result); the interval is the report's method and confidence.
"""

import base64
import html
import io
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from . import metrics
from .model import InjectionResult, Outcome
from .report import OUTCOMES, group_name

#: Sites listed in the page's table of the most vulnerable fault sites.
TOP_SITES = 20
#: Registers (site paths with indices collapsed) plotted by bit position.
TOP_REGISTERS = 4
#: Rows drawn in the per-row outcome plot (the table lists all).
MAX_PLOT_ROWS = 24
#: Bins of the outcome-by-cycle plot (fewer when the window is shorter).
CYCLE_BINS = 32

#: Outcomes whose fraction is a site's vulnerability: a wrong or a missing result.
VULNERABLE = (Outcome.SDC.value, Outcome.HANG.value)

COLORS = {"masked": "#9fb7a0", "sdc": "#d1495b", "detected": "#2e86ab", "corrected": "#66a182", "hang": "#edae49"}
PASS, FAIL = "#2a9d5c", "#c0392b"


def _svg(figure) -> str:
    """``figure`` as an SVG ``data:`` URI; deterministic (no date, fixed id salt)."""
    import matplotlib

    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "npuforge", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    figure.set_facecolor("white")
    return figure


def _interval(k: int, n: int, report: dict) -> tuple[float, float]:
    return metrics.proportion_interval(k, n, report["interval"]["confidence"], report["interval"]["method"])


def _errors(points: list[float], bounds: list[tuple[float, float]]) -> list[list[float]]:
    """matplotlib's asymmetric error bars (below, above) from points and (low, high) bounds."""
    return [[max(0.0, p - lo) for p, (lo, _) in zip(points, bounds)],
            [max(0.0, hi - p) for p, (_, hi) in zip(points, bounds)]]


# ----------------------------------------------------------------------------------- plots


def plot_metrics(report: dict) -> str:
    """SPFM, LFM (percent) and PMHF (FIT, log scale) with their intervals and every ASIL's target line."""
    figure = _figure(10, 2.2)
    axes = figure.subplots(1, 3)
    target = report["target_asil"]
    meets = report["margins"]
    for ax, key, label in ((axes[0], "spfm", "SPFM"), (axes[1], "lfm", "LFM"), (axes[2], "pmhf_fit", "PMHF")):
        value, low, high = report[key], report[f"{key}_low"], report[f"{key}_high"]
        lines = {}
        for level, need in report["targets"].items():
            if need.get(key) is not None:
                lines.setdefault(need[key], []).append(level)
        scale = 1 if key == "pmhf_fit" else 100
        for i, (limit, levels) in enumerate(sorted(lines.items())):
            ax.axvline(limit * scale, color="#555", lw=0.8, ls="--")
            # Staggered labels: the C and D lines of SPFM are 2 points apart.
            ax.annotate("/".join(sorted(levels)), (limit * scale, 1.02 + 0.1 * (i % 2)),
                        xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=8, color="#555")
        ax.set_yticks([])
        ax.set_title(f"{label} (target {target})", fontsize=10, pad=22)
        if value is None:
            ax.text(0.5, 0.5, "undefined: no multi-point fault", ha="center", va="center", transform=ax.transAxes)
            continue
        ok = meets.get(key) is None or meets[key] >= 0
        if key == "pmhf_fit":
            ax.set_xscale("log")
            span = [v for v in (low, high, value, *lines) if v > 0]
            floor = min(span) / 3
            ax.set_xlim(floor, max(span) * 3)
            ax.set_xlabel("FIT (first order)")
            if value <= 0:  # a log axis has no 0: draw it at the left edge and say so
                ax.annotate("0 FIT", (floor, 0), xytext=(6, 8), textcoords="offset points", fontsize=8)
            value, low = max(value, floor), max(low, floor)
        else:
            ax.set_xlim(0, 100)
            ax.set_xlabel("%")
        ax.errorbar([value * scale], [0], xerr=_errors([value * scale], [(low * scale, high * scale)]),
                    fmt="o", color=PASS if ok else FAIL, capsize=6, ms=8, lw=2, clip_on=False)
    return _svg(figure)


def plot_rows(report: dict) -> str:
    """Per row (and the design): the fraction of each outcome that occurred, with its interval."""
    present = [o for o in OUTCOMES if report["total"][o] > 0 or o in ("masked", "sdc")]
    rows = sorted((r for r in report["blocks"] if r["injections"]), key=lambda r: -r["injections"])[:MAX_PLOT_ROWS]
    rows = [*sorted(rows, key=lambda r: r["name"], reverse=True), report["total"]]
    figure = _figure(10, 0.9 + 0.32 * len(rows) * len(present) / 2)
    ax = figure.subplots()
    height = 0.8 / len(present)
    for i, outcome in enumerate(present):
        points = [r[outcome] / r["injections"] for r in rows]
        bounds = [_interval(r[outcome], r["injections"], report) for r in rows]
        ys = [y + (len(present) / 2 - i - 0.5) * height for y in range(len(rows))]
        ax.barh(ys, [100 * p for p in points], height=height, color=COLORS[outcome], label=outcome,
                xerr=[[100 * e for e in side] for side in _errors(points, bounds)],
                error_kw={"ecolor": "#333", "capsize": 2, "lw": 0.8})
    ax.set_yticks(range(len(rows)), [f"{r['name']} ({r['injections']:,})" for r in rows])
    ax.set_xlim(0, 100)
    ax.set_xlabel(f"% of the row's injections, {report['interval']['confidence']:.0%} "
                  f"{report['interval']['method']} intervals")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _svg(figure)


def register_name(site_path: str) -> str:
    """A fault site's register across instances: runs of indices collapsed (core.pe_1_2.acc -> core.pe_*.acc)."""
    return group_name(site_path, "group")


def vulnerable_registers(results: list[InjectionResult], sites: dict, count: int = TOP_REGISTERS) -> list[str]:
    """The ``count`` registers (collapsed names) with the most sdc + hang injections, then the highest fraction."""
    totals, bad = Counter(), Counter()
    for result in results:
        if sites[result.fault.site]["kind"] != "register":
            continue
        name = register_name(result.fault.site)
        totals[name] += 1
        bad[name] += result.outcome.value in VULNERABLE
    ranked = sorted(totals, key=lambda name: (-bad[name], -bad[name] / totals[name], name))
    return [name for name in ranked if bad[name]][:count]


def plot_bits(report: dict, results: list[InjectionResult], sites: dict) -> tuple[str, list[str]]:
    """Vulnerability by bit position of the most vulnerable registers (one panel each)."""
    names = vulnerable_registers(results, sites)
    figure = _figure(10, 1.9 * max(1, len(names)))
    if not names:
        ax = figure.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no register injection ended in sdc or hang", ha="center", va="center")
        return _svg(figure), names
    axes = figure.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, names):
        width = max(sites[path]["width"] for path in sites if register_name(path) == name)
        n, k = [0] * width, [0] * width
        for result in results:
            fault = result.fault
            if register_name(fault.site) == name:
                for bit in range(fault.bit, min(width, fault.bit + fault.width)):
                    n[bit] += 1
                    k[bit] += result.outcome.value in VULNERABLE
        bits = [b for b in range(width) if n[b]]
        points = [k[b] / n[b] for b in bits]
        bounds = [_interval(k[b], n[b], report) for b in bits]
        ax.bar(bits, [100 * p for p in points], color=COLORS["sdc"], width=0.8,
               yerr=[[100 * e for e in side] for side in _errors(points, bounds)],
               error_kw={"ecolor": "#333", "capsize": 1.5, "lw": 0.7})
        ax.set_xlim(-0.7, width - 0.3)
        ax.set_xticks(range(0, width, 1 if width <= 32 else 4))
        ax.set_ylim(0, 105)
        ax.set_ylabel("% sdc+hang")
        ax.set_title(f"{name}: {width} bits, {sum(n):,} injections, {sum(k):,} sdc or hang", fontsize=9, loc="left")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xlabel("bit position (0 = least significant)")
    return _svg(figure), names


def plot_cycles(report: dict, results: list[InjectionResult]) -> str:
    """Share of each outcome among the injections of each cycle bin of the window."""
    window = max(1, report["window"])
    step = -(-window // CYCLE_BINS)  # whole cycles per bin
    bins = -(-window // step)
    counts = [Counter() for _ in range(bins)]
    for result in results:
        counts[min(bins - 1, result.fault.cycle // step)][result.outcome.value] += 1
    present = [o for o in OUTCOMES if any(c[o] for c in counts)]
    edges = [min(window, b * step) for b in range(bins + 1)]
    figure = _figure(10, 2.6)
    ax = figure.subplots()
    bottom = [0.0] * bins
    for outcome in present:
        shares = [100 * c[outcome] / max(1, sum(c.values())) for c in counts]
        ax.bar(edges[:-1], shares, width=[edges[b + 1] - edges[b] for b in range(bins)], bottom=bottom,
               align="edge", color=COLORS[outcome], label=outcome, edgecolor="white", linewidth=0.3)
        bottom = [b + s for b, s in zip(bottom, shares)]
    per_bin = len(results) / bins
    ax.set_xlim(0, window)
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"injection cycle (window {window:,} cycles; bins of {step} cycle{'s' if step > 1 else ''}, "
                  f"about {per_bin:,.0f} injections each)")
    ax.set_ylabel("% of the bin")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _svg(figure)


# ----------------------------------------------------------------------------------- tables


def top_sites(report: dict, results: list[InjectionResult], sites: dict, count: int = TOP_SITES) -> list[dict]:
    """The ``count`` fault sites with the most sdc + hang injections (ties: higher fraction, then name)."""
    tallies: dict[str, Counter] = defaultdict(Counter)
    worst: dict[str, tuple[int, int]] = {}
    for result in results:
        path = result.fault.site
        tallies[path][result.outcome.value] += 1
        if result.outcome is Outcome.SDC:
            old = worst.get(path, (0, 0))
            worst[path] = (max(old[0], result.differing), max(old[1], result.max_abs_diff))
    rows = []
    for path, tally in tallies.items():
        n = sum(tally.values())
        k = sum(tally[o] for o in VULNERABLE)
        if k:
            low, high = _interval(k, n, report)
            rows.append({"site": path, "kind": sites[path]["kind"], "bits": sites[path]["width"]
                         * (sites[path].get("depth") or 1), "injections": n, **{o: tally[o] for o in OUTCOMES},
                         "vulnerable": k, "fraction": k / n, "low": low, "high": high,
                         "max_differing": worst.get(path, (0, 0))[0], "max_abs_diff": worst.get(path, (0, 0))[1]})
    rows.sort(key=lambda r: (-r["vulnerable"], -r["fraction"], r["site"]))
    return rows[:count]


def _e(value) -> str:
    return html.escape(str(value))


def _pct(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _fit(value) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _table(headers: list[str], rows: list[list], numeric_from: int = 1, css: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="{"num" if i >= numeric_from else ""}">{_e(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _summary(report: dict, meta: dict) -> str:
    config, design = meta.get("config", {}), meta.get("design", {})
    manifest = meta["manifest"]
    faults = config.get("faults", {})
    workload = ", ".join(f"{k}={v}" for k, v in config.get("workload", {}).items())
    bits = sum(s["width"] * (s.get("depth") or 1) for s in manifest["fault_sites"])
    sample = (f"{faults['samples']:,} per model" if faults.get("samples") else
              f"margin +-{faults['margin']:.2%} at {faults.get('confidence') or 0.95:.0%}" if faults.get("margin")
              else "n/a")
    facts = [
        ("design", f"{report['design']} (kind {design.get('kind', '?')}, config {design.get('name', '?')})"),
        ("design hash", (report.get("design_hash") or "")[:16]),
        ("fault sites", f"{len(manifest['fault_sites']):,} sites, {bits:,} bits"),
        ("campaign", report["campaign"]),
        ("workload", workload or "n/a"),
        ("fault models", ", ".join(f"{m} ({n:,})" for m, n in report["models"].items())),
        ("sample", f"{sample}, seed {faults.get('seed', '?')}, stratify {faults.get('stratify', 'none')}"),
        ("injections", f"{report['injections']:,} stored of {report['planned'] or report['injections']:,} planned"),
        ("window", f"{report['window']:,} cycles (fault-free run); population {report['population'] or 0:,.0f}"),
        ("margin", "n/a" if report["margin"] is None else
         f"+-{report['margin']:.2%} at {report['interval']['confidence']:.0%} (Leveugle, design)"),
        ("FIT per bit", ", ".join(f"{k} {v:g}" for k, v in sorted(report["fit_per_bit"].items()))),
        ("intervals", f"{report['interval']['confidence']:.0%} {report['interval']['method']}"),
    ]
    return '<table class="facts">' + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts) \
        + "</table>"


def _metrics_table(report: dict) -> str:
    need = report["targets"].get(report["target_asil"], {})
    level = f"{report['interval']['confidence']:.0%}"
    rows = []
    for key, label in (("spfm", "SPFM"), ("lfm", "LFM")):
        low, high = report[f"{key}_low"], report[f"{key}_high"]
        rows.append([label, _pct(report[key]), "n/a" if low is None else f"[{_pct(low)}, {_pct(high)}]",
                     "-" if need.get(key) is None else f">= {_pct(need[key], 0)}",
                     _pct(report["margins"][key]), _pct(report["margins_conservative"][key])])
    margin, bound = report["margins"]["pmhf_fit"], report["margins_conservative"]["pmhf_fit"]
    rows.append(["PMHF (FIT, first order)", _fit(report["pmhf_fit"]),
                 f"[{_fit(report['pmhf_fit_low'])}, {_fit(report['pmhf_fit_high'])}]",
                 "-" if need.get("pmhf_fit") is None else f"< {need['pmhf_fit']:g}", _fit(margin), _fit(bound)])
    return _table(["metric", "value", level, f"target {report['target_asil']}", "margin", "margin at bound"], rows)


def _rows_table(report: dict) -> str:
    rows = []
    for row in [*report["blocks"], report["total"]]:
        rows.append([row["name"], f"{row['bits']:,}", f"{row['injections']:,}", *(f"{row[o]:,}" for o in OUTCOMES),
                     f"{_pct(row['sdc_fraction'])} [{_pct(row['sdc_low'])}, {_pct(row['sdc_high'])}]",
                     f"{_fit(row['fit'])} [{_fit(row['fit_low'])}, {_fit(row['fit_high'])}]"
                     + (" *" if row["fit_estimated_from_design"] else "")])
    level = f"{report['interval']['confidence']:.0%}"
    return _table(["row", "bits", "injections", *OUTCOMES, f"SDC {level}", f"FIT (dangerous) {level}"], rows,
                  css="rows")


def _sites_table(report: dict, rows: list[dict]) -> str:
    if not rows:
        return "<p>No injection ended in sdc or hang.</p>"
    level = f"{report['interval']['confidence']:.0%}"
    body = [[rank, r["site"], r["kind"], f"{r['bits']:,}", f"{r['injections']:,}", r["sdc"], r["hang"],
             r["detected"] + r["corrected"], f"{_pct(r['fraction'], 1)} [{_pct(r['low'], 1)}, {_pct(r['high'], 1)}]",
             r["max_differing"], f"{r['max_abs_diff']:,}"] for rank, r in enumerate(rows, 1)]
    return _table(["#", "fault site", "kind", "bits", "injections", "sdc", "hang", "alarm",
                   f"sdc+hang {level}", "worst SDC: elements", "largest |diff|"], body, numeric_from=3)


def _mechanisms_table(report: dict) -> str:
    if not report["mechanisms"]:
        return "<p>The manifest declares no safety mechanism: diagnostic coverage does not apply.</p>"
    level = f"{report['interval']['confidence']:.0%}"
    return _table(["mechanism", "sites", "bits", "dangerous", "escapes", "DC", level],
                  [[m["name"], m["sites"], m["bits"], m["dangerous"], m["escapes"], _pct(m["dc"]),
                    f"[{_pct(m['dc_low'])}, {_pct(m['dc_high'])}]"] for m in report["mechanisms"]])


def _predicted_section(report: dict) -> str:
    """Predicted (npuforge protect) beside measured metrics and the area comparison; empty without a prediction."""
    comparison = report.get("predicted")
    if not comparison:
        return ""
    rows = []
    for row in comparison["rows"]:
        show = _fit if row["key"] == "pmhf_fit" else _pct
        low, high = row["measured_low"], row["measured_high"]
        rows.append([row["metric"], show(row["predicted"]), show(row["predicted_bound"]), show(row["measured"]),
                     "n/a" if low is None else f"[{show(low)}, {show(high)}]"])
    asil = comparison["asil"]
    rows.append(["ASIL", asil["predicted"], asil["predicted_bound"], asil["measured"], asil["measured_bound"]])
    assignment = ", ".join(f"{e['match']}: {e['mechanism']}" for e in comparison["protect"]) or "none"
    area = "".join(f"<li>{_e(line.strip())}</li>" for line in comparison["area_lines"])
    same = (" This campaign ran on the unprotected design the prediction was made from: measure the protected "
            "design to compare." if comparison.get("same_design") else "")
    return f"""<h2 id="predicted">Predicted vs measured</h2>
<p class="note">Prediction of npuforge protect from campaign {_e(comparison['source_campaign'])} for ASIL
{_e(comparison['target_asil'])}; assignment: {_e(assignment)}. Predicted bound: the pessimistic end of the source
campaign's intervals; measured: this campaign.{same}</p>
{_table(["metric", "predicted", "predicted bound", "measured", "measured interval"], rows)}
<ul class="assumptions">{area}</ul>
"""


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;max-width:1100px;
 padding:16px 24px;color:#222;background:#fff}
h1{font-size:1.5em;margin:0.2em 0}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:1.6em}
.verdict{font-size:1.25em;padding:10px 14px;border-radius:6px;color:#fff;margin:10px 0}
.met{background:#2a9d5c}.marginal{background:#d68910}.missed{background:#c0392b}
table{border-collapse:collapse;font-size:0.86em;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;
 text-align:left;vertical-align:top}td.num{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f4f4f4}table.facts th{color:#555;font-weight:600}
img.plot{display:block;width:100%;height:auto;margin:6px 0}.note{color:#555;font-size:0.88em}
ul.assumptions li{font-size:0.88em;margin:2px 0}
"""


def verdict(report: dict) -> str:
    """One line: the ASIL reached at the point estimates and at the bounds, and whether the target is met."""
    met = report["meets_target"]
    caveat = "" if report["meets_target_conservative"] == met else " (not at the bounds)"
    return (f"ASIL reached: {report['asil']} (point estimates), {report['asil_conservative']} at the "
            f"{report['interval']['confidence']:.0%} bounds; target {report['target_asil']} "
            f"{'met' if met else 'missed'}{caveat}")


def render_html(report: dict, meta: dict, results: Iterable[InjectionResult]) -> str:
    """The page for ``report`` (``build_report(meta, results)``), its campaign's ``meta`` and ``results``."""
    results = list(results)
    sites = {site["path"]: site for site in meta["manifest"]["fault_sites"]}
    met = report["meets_target"]
    level = f"{report['interval']['confidence']:.0%}"
    # Green only when the target holds at the pessimistic bounds too; amber when only the point meets it.
    state = "missed" if not met else "met" if report["meets_target_conservative"] else "marginal"
    bits_plot, registers = plot_bits(report, results, sites)
    bits_note = (f"The {len(registers)} register(s) with the most injections ending in sdc or hang (instances "
                 "pooled: indices replaced by *); bar = % of the injections at that bit ending in sdc or hang."
                 if registers else "No register injection ended in sdc or hang: nothing to show by bit.")
    plots = {
        "metrics": plot_metrics(report),
        "rows": plot_rows(report),
        "bits": bits_plot,
        "cycles": plot_cycles(report, results),
    }

    def image(name: str, alt: str) -> str:
        return f'<img class="plot" id="plot-{name}" alt="{_e(alt)}" src="{plots[name]}">'

    mapping = _table(["outcome", "ISO 26262 class"], [[k, v] for k, v in report["iso_mapping"].items()],
                     numeric_from=2)
    assumptions = "".join(f"<li>{_e(line)}</li>" for line in report["assumptions"])
    title = f"Fault campaign {report['campaign']} on {report['design']}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<div class="verdict {state}" id="verdict">{_e(verdict(report))}</div>
<h2>Design and campaign</h2>
{_summary(report, meta)}
<h2>ISO 26262 metrics against ASIL {_e(report['target_asil'])}</h2>
{image("metrics", "SPFM, LFM and PMHF with intervals against the ASIL targets")}
{_metrics_table(report)}
<p class="note">Dashed lines: the targets of each ASIL (A: PMHF only). A green point meets the target
ASIL, a red one misses it; bars are the {level} intervals.</p>
{_predicted_section(report)}<h2>Outcomes per row</h2>
{image("rows", "outcome fractions per row with intervals")}
{_rows_table(report)}
<p class="note">Rows by {_e(report['grouping']['by'])}: {_e(report['grouping']['rule'])}.
Rows without injections are in the table only. * a stratum of the row had no injection: its point FIT uses the
design's fractions.</p>
<h2>Vulnerability by bit position</h2>
<p class="note">{bits_note}</p>
{image("bits", "vulnerability by bit position of the most vulnerable registers")}
<h2>Outcome by injection cycle</h2>
{image("cycles", "outcome shares by injection cycle")}
<h2>Top {TOP_SITES} most vulnerable fault sites</h2>
<p class="note">Ranked by injections ending in sdc or hang (a wrong or missing result), then by their fraction;
alarm = detected + corrected.</p>
{_sites_table(report, top_sites(report, results, sites))}
<h2>Safety mechanisms</h2>
{_mechanisms_table(report)}
<h2>Outcomes and ISO classes</h2>
{mapping}
<h2>Assumptions</h2>
<ul class="assumptions">{assumptions}</ul>
<p class="note">Written by npuforge report; formulas in docs/fault_metrics.md.</p>
</body></html>
"""


def write_html(path: Path, page: str) -> None:
    """Write ``page`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes it private; a report is an ordinary file
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
