"""A campaign's report: outcome counts per block with intervals, FIT, ISO 26262 metrics, the ASIL.

``build_report(meta, results)`` turns the campaign's stored meta (``CampaignStore.meta()``)
and its injection results into one JSON-ready dict; ``render_table(report, console)``
prints it with rich. The statistics are in ``sim/fault/metrics.py``; the formulas
and assumptions in ``docs/fault_metrics.md``.

How failure rates are estimated: the design's state is cut into strata, one per
(row, site kind), or per (manifest block, site kind) when the campaign sampled each
block on its own. A stratum's raw rate is its bits x the FIT/bit of its kind; the
fraction of its injections in each ISO class times that raw rate is its rate in the
class. Summing strata gives the design's rates, hence SPFM, LFM and PMHF. Weighting
each stratum by its bits keeps the estimate right whether the sampler was uniform
over the design or stratified by block.
"""

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from gen.errors import NpuforgeError

from . import metrics
from .metrics import DANGEROUS, IsoClass, Lambdas
from .model import FaultModel, InjectionResult, Outcome
from .store import UNWATCHED_TAIL_FORMAT

#: Version of the report's JSON layout.
REPORT_FORMAT = 1

#: Grouping name -> how it names a fault site's block (the manifest's ``block`` field).
GROUPINGS = {
    "group": "manifest block with every run of indices replaced by '*' (core.pe_0_1 and core.pe_7_7 "
             "-> core.pe_*); '' (the top) -> top",
    "block": "manifest block as it is; '' (the top) -> top",
}
DEFAULT_GROUPING = "group"

OUTCOMES = tuple(outcome.value for outcome in Outcome)

#: Per site kind, the fault models whose injections stand for its raw rate (fit_per_bit), in order of
#: preference: a single-bit upset is the event a FIT/bit figure counts; mbu is used only without seu.
RATE_MODELS = {"register": ("seu", "mbu"), "memory": ("mem_seu",)}

_INDICES = re.compile(r"\d+(?:_\d+)*")


class ReportError(NpuforgeError):
    """The stored campaign cannot be reported (no results, a site the manifest lacks, ...)."""


def group_name(block: str, by: str = DEFAULT_GROUPING) -> str:
    """The row a fault site of manifest block ``block`` is counted in, for grouping ``by``."""
    if by not in GROUPINGS:
        raise ValueError(f"grouping: got {by!r}; allowed: {', '.join(GROUPINGS)}")
    if not block:
        return "top"
    return _INDICES.sub("*", block) if by == "group" else block


@dataclass
class _Tally:
    """Outcome and ISO-class counts of a set of injections, and how wrong its SDCs were."""

    outcomes: Counter = field(default_factory=Counter)
    classes: Counter = field(default_factory=Counter)
    max_differing: int = 0
    max_abs_diff: int = 0
    sdc_extra_beats: int = 0  # SDCs that sent output beats after the expected ones

    @property
    def injections(self) -> int:
        return sum(self.outcomes.values())

    @property
    def dangerous(self) -> int:
        return sum(self.classes[c] for c in DANGEROUS)

    def add(self, result: InjectionResult, iso: IsoClass) -> None:
        self.outcomes[Outcome(result.outcome).value] += 1
        self.classes[iso] += 1
        if result.outcome == Outcome.SDC:
            self.max_differing = max(self.max_differing, result.differing)
            self.max_abs_diff = max(self.max_abs_diff, result.max_abs_diff)
            self.sdc_extra_beats += result.extra_beats > 0

    def merge(self, other: "_Tally") -> None:
        self.outcomes.update(other.outcomes)
        self.classes.update(other.classes)
        self.max_differing = max(self.max_differing, other.max_differing)
        self.max_abs_diff = max(self.max_abs_diff, other.max_abs_diff)
        self.sdc_extra_beats += other.sdc_extra_beats


@dataclass
class _Stratum:
    """One (group, site kind): its bits, raw rate and the injections that landed in it."""

    bits: int = 0
    raw_fit: float = 0.0
    tally: _Tally = field(default_factory=_Tally)
    #: Some site of it is covered by a mechanism that corrects silently; else no fault can be latent.
    latent_possible: bool = False


@dataclass
class _Rates:
    """Class rates in FIT with the bounds of the dangerous and latent parts."""

    point: dict = field(default_factory=lambda: {c: 0.0 for c in IsoClass})
    dangerous_low: float = 0.0
    dangerous_high: float = 0.0
    latent_low: float = 0.0
    latent_high: float = 0.0

    def add(self, other: "_Rates") -> None:
        for c in IsoClass:
            self.point[c] += other.point[c]
        self.dangerous_low += other.dangerous_low
        self.dangerous_high += other.dangerous_high
        self.latent_low += other.latent_low
        self.latent_high += other.latent_high

    @property
    def lambdas(self) -> Lambdas:
        return Lambdas.from_classes(self.point)


class _Estimator:
    """Fractions and intervals with one method and confidence."""

    def __init__(self, method: str, confidence: float, pooled: _Tally):
        metrics.proportion_interval(0, 1, confidence, method)  # rejects a bad method or confidence now
        self.method, self.confidence, self.pooled = method, confidence, pooled

    def interval(self, k: int, n: int) -> tuple[float, float]:
        return metrics.proportion_interval(k, n, self.confidence, self.method)

    def rates(self, stratum: _Stratum) -> _Rates:
        """The stratum's class rates; an unsampled stratum takes the design's pooled fractions as point."""
        tally = stratum.tally if stratum.tally.injections else self.pooled
        n = tally.injections
        rates = _Rates(point={c: stratum.raw_fit * tally.classes[c] / n for c in IsoClass})
        k_dangerous = stratum.tally.dangerous
        k_latent = stratum.tally.classes[IsoClass.MULTI_POINT_LATENT]
        n_own = stratum.tally.injections
        low, high = self.interval(k_dangerous, n_own)
        rates.dangerous_low, rates.dangerous_high = stratum.raw_fit * low, stratum.raw_fit * high
        if stratum.latent_possible:
            low, high = self.interval(k_latent, n_own)
            rates.latent_low, rates.latent_high = stratum.raw_fit * low, stratum.raw_fit * high
        return rates


def _margin(samples: int, population: float, confidence: float) -> float | None:
    if samples == 0 or population < samples:
        return None
    return metrics.leveugle_margin(samples, population, confidence)


def _row(name: str, members: list[str], sites: int, bits: int, raw_fit: float, tally: _Tally,
         rates: _Rates, estimator: _Estimator, population: float, estimated: bool) -> dict:
    """One ``blocks`` entry (or ``total``, the design's)."""
    n = tally.injections
    sdc = tally.outcomes[Outcome.SDC.value]
    sdc_low, sdc_high = estimator.interval(sdc, n)
    dangerous_low, dangerous_high = estimator.interval(tally.dangerous, n)
    return {
        "name": name,
        "members": members,
        "sites": sites,
        "bits": bits,
        "injections": n,
        **{outcome: tally.outcomes[outcome] for outcome in OUTCOMES},
        "sdc_fraction": sdc / n if n else None,
        "sdc_low": sdc_low,
        "sdc_high": sdc_high,
        "dangerous": tally.dangerous,
        "dangerous_fraction": tally.dangerous / n if n else None,
        "dangerous_low": dangerous_low,
        "dangerous_high": dangerous_high,
        "classes": {c.value: tally.classes[c] for c in IsoClass},
        "fit_raw": raw_fit,
        "fit": rates.lambdas.dangerous,
        "fit_low": rates.dangerous_low,
        "fit_high": rates.dangerous_high,
        "fit_estimated_from_design": estimated,
        "margin": _margin(n, population, estimator.confidence),
        "max_differing": tally.max_differing,
        "max_abs_diff": tally.max_abs_diff,
        "sdc_extra_beats": tally.sdc_extra_beats,
    }


def _design_metrics(rates: _Rates, target: str) -> dict:
    """SPFM, LFM, PMHF with their bounds, the ASIL at the point and at the pessimistic bounds."""
    lam = rates.lambdas
    total = lam.total
    if total <= 0:
        raise ReportError("the design's total failure rate is 0 FIT; allowed: fit_per_bit values above 0")
    spfm = metrics.spfm(lam)
    lfm = metrics.lfm(lam)

    def lfm_at(latent: float, dangerous: float) -> float | None:
        rest = total - dangerous
        return None if rest <= 0 else max(0.0, min(1.0, 1.0 - latent / rest))

    bounds = {
        "spfm_low": max(0.0, 1.0 - rates.dangerous_high / total),
        "spfm_high": min(1.0, 1.0 - rates.dangerous_low / total),
        # Pessimistic LFM: most latent faults and the smallest share of multi-point ones.
        "lfm_low": lfm_at(rates.latent_high, rates.dangerous_high),
        "lfm_high": lfm_at(rates.latent_low, rates.dangerous_low),
        "pmhf_fit_low": rates.dangerous_low,
        "pmhf_fit_high": rates.dangerous_high,
    }
    pmhf = metrics.pmhf(lam)
    worst = (bounds["spfm_low"], bounds["lfm_low"], bounds["pmhf_fit_high"])
    return {
        "spfm": spfm, "lfm": lfm, "pmhf_fit": pmhf, **bounds,
        "pmhf_terms": "first order: sum(l_SPF + l_RF); the dual-point term is not included",
        "asil": metrics.asil_reached(spfm, lfm, pmhf),
        "asil_conservative": metrics.asil_reached(*worst),
        "target_asil": target,
        "meets_target": metrics.meets(target, spfm, lfm, pmhf),
        "meets_target_conservative": metrics.meets(target, *worst),
        "margins": metrics.asil_margins(spfm, lfm, pmhf, target),
        "margins_conservative": metrics.asil_margins(*worst, target),
        "lambda_fit": {c.value: lam_value for c, lam_value in rates.point.items()},
    }


def _iso_mapping(mechanisms: list[metrics.Mechanism]) -> dict:
    watchdogs = [m.name for m in mechanisms if m.detects_hang]
    silent = [m.name for m in mechanisms if not m.reports]
    masked = "safe"
    if silent:
        masked += f"; multi_point_latent at sites covered by {', '.join(silent)} (corrects without reporting)"
    hang = (f"multi_point_detected (watchdog: {', '.join(watchdogs)})" if watchdogs else
            "as sdc: single_point, or residual at a covered site (no mechanism reports a hang)")
    return {
        "masked": masked,
        "sdc": "single_point at a site no mechanism covers; residual at a covered site",
        "detected": "multi_point_detected (an alarm rose)",
        "corrected": "multi_point_detected (a correcting alarm rose)",
        "hang": hang,
    }


def _mechanism_rows(mechanisms, site_tallies: dict, sites: dict, watchdog: bool, estimator: _Estimator) -> list:
    rows = []
    for mechanism in mechanisms:
        covered = [path for path in sites if mechanism.covers_site(path)]
        tally = _Tally()
        for path in covered:
            if path in site_tallies:
                tally.merge(site_tallies[path])
        counts = tally.outcomes
        dangerous = sum(counts[o.value] for o in (Outcome.SDC, Outcome.DETECTED, Outcome.CORRECTED, Outcome.HANG))
        escapes = counts[Outcome.SDC.value] + (0 if watchdog else counts[Outcome.HANG.value])
        low, high = estimator.interval(dangerous - escapes, dangerous)
        rows.append({
            "name": mechanism.name,
            "covers": list(mechanism.covers),
            "sites": len(covered),
            "bits": sum(_bits(sites[path]) for path in covered),
            "injections": tally.injections,
            "dangerous": dangerous,
            "escapes": escapes,
            "dc": metrics.diagnostic_coverage(escapes, dangerous),
            "dc_low": low,
            "dc_high": high,
            # With no escape, the coverage the zero-failure rule supports (one-sided).
            "dc_zero_failure": (metrics.zero_failure_coverage(dangerous, estimator.confidence)
                                if escapes == 0 and dangerous else None),
        })
    return rows


def _bits(site: dict) -> int:
    return site["width"] * (site.get("depth") or 1)


def _assumptions(report: dict, mechanisms, stratified: bool, unsampled: list[str], unsampled_bits: int) -> list[str]:
    """The assumptions behind ``report``'s numbers, as sentences."""
    level = f"{report['interval']['confidence']:.0%}"
    rates = ", ".join(f"{kind} {value:g} FIT/bit" for kind, value in sorted(report["fit_per_bit"].items()))
    rated = ", ".join(f"{kind}: {model}" for kind, model in sorted(report["rate_models"].items()))
    strata = "manifest block x site kind (the sample was stratified by block)" if stratified else \
        f"row x site kind, rows by {report['grouping']['by']}"
    lines = [
        "Every fault site is safety-related: all of its bits count in the failure rate.",
        f"Raw failure rate per bit: {rates} (the campaign's fit_per_bit), taken as the rate of the single-event "
        f"model of each site kind; the rates and ISO metrics use the injections of ({rated}).",
        f"Rates per ISO class: sum over strata ({strata}) of bits x FIT/bit x the fraction of that stratum's "
        "injections in the class.",
        "PMHF is first order: sum(l_SPF + l_RF); the dual-point term (l_MPF,detected x l_MPF,latent x lifetime) "
        "is not included.",
        f"Intervals: two-sided {level} {report['interval']['method']} per stratum; bounds of FIT, SPFM, LFM and "
        "PMHF sum the per-stratum bounds (conservative: wider than a joint interval when there are several "
        "strata).",
        f"'asil' uses the point estimates; 'asil_conservative' the pessimistic end of every {level} interval "
        "(lowest SPFM and LFM, highest PMHF).",
        "ASIL A: ISO 26262 sets no SPFM or LFM target; PMHF < 1000 FIT is used. B: SPFM >= 90%, LFM >= 60%, "
        "PMHF < 100 FIT; C: 97%, 80%, < 100 FIT; D: 99%, 90%, < 10 FIT.",
        "Outcome fractions of a row pool its injections: they estimate the row's fractions when sampling is "
        "uniform over its bits.",
    ]
    others = {model: n for model, n in report["models"].items() if model not in report["rate_models"].values()}
    if others:
        lines.append(f"Injections of {', '.join(f'{m} ({n})' for m, n in others.items())} are reported as outcome "
                     "counts (by_model) only: no rate is given for those events.")
    if not mechanisms:
        lines.append("The manifest declares no safety mechanism: every SDC and hang is single-point, no fault is "
                     "residual or latent, and diagnostic coverage does not apply.")
    if all(m.reports for m in mechanisms):
        lines.append("No outcome is multi-point latent (no mechanism corrects without reporting): LFM is 100% "
                     "whenever it is defined.")
    if not any(m.detects_hang for m in mechanisms):
        lines.append("No mechanism reports a hang (no watchdog): a hang counts like an SDC.")
    if report["extra_beats_watched"]:
        lines.append("Each run was watched past its last expected output beat (until it rejoined the fault-free run, "
                     "was quiescent, or timed out): a beat sent after the expected ones makes it sdc "
                     "(sdc_extra_beats counts those).")
    else:
        lines.append(f"The database is of format {UNWATCHED_TAIL_FORMAT}: each run stopped at its last expected "
                     "output beat, so a beat sent after it was not seen and such a run counts as masked (run the "
                     "campaign again into a new database to count them).")
    if unsampled:
        lines.append(f"{len(unsampled)} stratum(s) ({unsampled_bits} bits: {', '.join(unsampled)}) had no "
                     "injection: their point rates use the design's pooled fractions, their bounds are 0% and "
                     "100%.")
    return lines


def _rate_models(models_by_kind: dict[str, set]) -> dict[str, str]:
    """Per site kind, the fault model whose injections the failure rates use (see :data:`RATE_MODELS`)."""
    chosen = {}
    for kind, preference in RATE_MODELS.items():
        present = [model for model in preference if model in models_by_kind.get(kind, ())]
        if present:
            chosen[kind] = present[0]
    return chosen


def _by_model(tallies: dict[str, _Tally], estimator: _Estimator) -> dict:
    """Outcome counts and the SDC interval of each fault model."""
    out = {}
    for model, tally in sorted(tallies.items()):
        low, high = estimator.interval(tally.outcomes[Outcome.SDC.value], tally.injections)
        out[model] = {"injections": tally.injections, **{o: tally.outcomes[o] for o in OUTCOMES},
                      "sdc_low": low, "sdc_high": high}
    return out


def build_report(meta: dict, results: Iterable[InjectionResult], *, by: str = DEFAULT_GROUPING,
                 interval: str = metrics.DEFAULT_INTERVAL, confidence: float = metrics.CONFIDENCE,
                 tolerable_sdc: int | None = None) -> dict:
    """The report of a campaign (``meta`` as ``CampaignStore.meta()`` returns it) as a JSON-ready dict.

    ``by`` picks the grouping of fault sites into rows (:data:`GROUPINGS`),
    ``interval`` the interval method (:data:`metrics.INTERVALS`). Raises
    :class:`ReportError` (one line) for a campaign without results or with a
    result on a site its manifest does not list.

    ``tolerable_sdc``: critical versus tolerable SDC. An ``sdc`` whose largest output change
    (``max_abs_diff``, in output codes; the task-metric change the campaign can see) is at most
    this many codes, with no missing or extra beat, is *tolerable* and counted as safe; only the
    other, *critical*, SDCs are dangerous. None (the default): every SDC is dangerous.
    """
    if tolerable_sdc is not None and (isinstance(tolerable_sdc, bool) or not isinstance(tolerable_sdc, int)
                                      or tolerable_sdc < 0):
        raise ReportError(f"--tolerable-sdc: got {tolerable_sdc!r}; allowed: an integer >= 0 (output codes)")
    group_name("", by)  # rejects an unknown grouping before any work
    missing = [key for key in ("manifest", "window", "fit_per_bit", "target_asil") if key not in meta]
    if missing:
        raise ReportError(f"campaign meta lacks {', '.join(missing)}; allowed: a database written by "
                          "'npuforge inject'")
    manifest = meta["manifest"]
    target = meta["target_asil"]
    if target not in metrics.ASILS:
        raise ReportError(f"target_asil: got {target!r}; allowed: {', '.join(metrics.ASILS)}")
    fit_per_bit = meta["fit_per_bit"]
    sites = {site["path"]: site for site in manifest["fault_sites"]}
    try:
        mechanisms = metrics.mechanisms_from_manifest(manifest)
    except ValueError as error:
        raise ReportError(str(error)) from None
    watchdog = any(m.detects_hang for m in mechanisms)
    covering = {path: [m for m in mechanisms if m.covers_site(path)] for path in sites}
    stratified = meta.get("config", {}).get("faults", {}).get("stratify", "none") == "block"

    tallies: dict[tuple[str, str], _Tally] = {}  # (site path, model) -> its injections
    tolerated = 0
    classes: dict[tuple[str, Outcome], IsoClass] = {}
    models_by_kind: dict[str, set] = {}
    for result in results:
        path = result.fault.site
        if path not in sites:
            raise ReportError(f"result #{result.fault.index}: fault site '{path}' is not in the campaign's "
                              "manifest; allowed: the manifest's fault_sites")
        model = FaultModel(result.fault.model).value
        tolerable = (tolerable_sdc is not None and result.outcome is Outcome.SDC and not result.extra_beats
                     and result.max_abs_diff <= tolerable_sdc and result.cycles > 0)
        iso = classes.get((path, result.outcome, tolerable))
        if iso is None:  # one class per (site, outcome): computed once, campaigns have millions of rows
            iso = classes[path, result.outcome, tolerable] = IsoClass.SAFE if tolerable else metrics.iso_class(
                result.outcome, covered=bool(covering[path]), watchdog=watchdog,
                silent=any(not m.reports for m in covering[path]))
        tolerated += tolerable
        tallies.setdefault((path, model), _Tally()).add(result, iso)
        models_by_kind.setdefault(sites[path]["kind"], set()).add(model)
    if not tallies:
        raise ReportError("the campaign has no injection results yet; run 'npuforge inject' first")
    rate_models = _rate_models(models_by_kind)
    rated = {path: tally for (path, model), tally in tallies.items() if rate_models[sites[path]["kind"]] == model}
    pooled = _Tally()
    for tally in rated.values():
        pooled.merge(tally)
    estimator = _Estimator(interval, confidence, pooled)

    # Strata: (group, site kind); (manifest block, site kind) when the sample was stratified by block,
    # since groups then pool blocks sampled at different densities. Rows: groups.
    strata: dict[tuple[str, str], _Stratum] = {}
    row_of: dict[tuple[str, str], str] = {}
    members: dict[str, set] = {}
    row_models: dict[str, dict[str, _Tally]] = {}
    site_count: Counter = Counter()
    for path, site in sites.items():
        kind = site["kind"]
        if kind not in fit_per_bit:
            raise ReportError(f"fit_per_bit: has no rate for fault sites of kind '{kind}' ({path}); "
                              f"allowed: keys {', '.join(sorted({s['kind'] for s in sites.values()}))}")
        group = group_name(site["block"], by)
        key = (group_name(site["block"], "block") if stratified else group, kind)
        row_of[key] = group
        stratum = strata.setdefault(key, _Stratum())
        stratum.bits += _bits(site)
        stratum.raw_fit += _bits(site) * fit_per_bit[kind]
        stratum.latent_possible |= any(not m.reports for m in covering[path])
        if path in rated:
            stratum.tally.merge(rated[path])
        members.setdefault(group, set()).add(site["block"] or "top")
        site_count[group] += 1
    for (path, model), tally in tallies.items():
        row_models.setdefault(group_name(sites[path]["block"], by), {}).setdefault(model, _Tally()).merge(tally)

    window = meta["window"]
    blocks, design_rates = [], _Rates()
    unsampled = [key for key, stratum in strata.items() if stratum.tally.injections == 0]
    for group in sorted(members):
        keys = [key for key in strata if row_of[key] == group]
        rates, tally = _Rates(), _Tally()
        for key in keys:
            rates.add(estimator.rates(strata[key]))
            tally.merge(strata[key].tally)
        design_rates.add(rates)
        bits = sum(strata[key].bits for key in keys)
        row = _row(group, sorted(members[group]), site_count[group], bits, sum(strata[key].raw_fit for key in keys),
                   tally, rates, estimator, bits * window, estimated=any(key in unsampled for key in keys))
        row["by_model"] = _by_model(row_models.get(group, {}), estimator)
        blocks.append(row)

    total_bits = sum(s.bits for s in strata.values())
    design = _row("design", [], len(sites), total_bits, sum(s.raw_fit for s in strata.values()), pooled,
                  design_rates, estimator, total_bits * window, estimated=bool(unsampled))
    design_models: dict[str, _Tally] = {}
    for (path, model), tally in tallies.items():
        design_models.setdefault(model, _Tally()).merge(tally)
    design["by_model"] = _by_model(design_models, estimator)
    config = meta.get("config", {})
    report = {
        "format": REPORT_FORMAT,
        "campaign": config.get("name"),
        "extra_beats_watched": meta.get("format") != UNWATCHED_TAIL_FORMAT,
        "design": manifest.get("top"),
        "design_hash": meta.get("design_hash"),
        "injections": sum(t.injections for t in tallies.values()),
        "planned": meta.get("samples"),
        "rated_injections": pooled.injections,
        "models": {model: t.injections for model, t in sorted(design_models.items())},
        "rate_models": rate_models,
        "population": meta.get("population"),
        "window": window,
        "margin": design["margin"],
        "fit_per_bit": dict(fit_per_bit),
        "interval": {"method": interval, "confidence": confidence},
        "grouping": {"by": by, "rule": GROUPINGS[by],
                     "strata": "manifest block x site kind" if stratified else "row x site kind"},
        "iso_mapping": _iso_mapping(mechanisms),
        **_design_metrics(design_rates, target),
        "targets": {level: {"spfm": need.spfm, "lfm": need.lfm, "pmhf_fit": need.pmhf_fit}
                    for level, need in metrics.ASIL_TARGETS.items()},
        "mechanisms": _mechanism_rows(mechanisms, rated, sites, watchdog, estimator),
        "total": design,
        "blocks": blocks,
        "level": meta.get("level", "rtl"),
        "tolerable_sdc": {"threshold": tolerable_sdc, "count": tolerated},
    }
    report["assumptions"] = _assumptions(report, mechanisms, stratified,
                                         [f"{name}/{kind}" for name, kind in unsampled],
                                         sum(strata[key].bits for key in unsampled))
    if tolerable_sdc is not None:
        report["assumptions"].append(
            f"Critical versus tolerable SDC: an SDC whose largest output change is at most {tolerable_sdc} output "
            f"codes (and that loses or adds no beat) is assumed not to violate the safety goal and is counted as "
            f"safe ({tolerated} injections); only the other SDCs count as single-point or residual. The threshold "
            "stands for the task-metric change the system tolerates and must be justified for it (e.g. with "
            "'npuforge resilience').")
    if report["level"] == "model":
        report["assumptions"].append(
            "Model-level injections: faults flip values where the bit-accurate golden model holds them, on the "
            "sites it maps (control registers and the command memory are not among them, so their bits are not "
            "in the rates); no hang or alarm can occur at this level.")
    return report


# ------------------------------------------------------------------------------ rendering


def _percent(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _range(low: float, high: float, scale: float = 100.0, digits: int = 2) -> str:
    return f"\\[{scale * low:.{digits}f}, {scale * high:.{digits}f}]"  # escaped: not rich markup


def _fit(value: float) -> str:
    return f"{value:.3g}"


def render_table(report: dict, console) -> None:
    """Print ``report`` on a rich ``console``: the rows, the design metrics, mechanisms, assumptions."""
    from rich.markup import escape
    from rich.table import Table

    level = f"{report['interval']['confidence']:.0%}"
    method = report["interval"]["method"]
    title = (f"campaign {report['campaign']} on {report['design']}: {report['injections']:,} injections"
             + (f", margin +-{report['margin']:.2%} at {level}" if report["margin"] is not None else ""))
    rows = Table(title=title, caption=f"rows by {report['grouping']['by']}: {report['grouping']['rule']}; "
                                      f"intervals {level} {method}")
    for header in ("block", "bits", "inj", "masked", "sdc", "detected", "corrected", "hang"):
        rows.add_column(header, justify="left" if header == "block" else "right")
    rows.add_column(f"SDC % {level}", justify="right")
    rows.add_column(f"FIT (dangerous) {level}", justify="right")
    for index, row in enumerate([*report["blocks"], report["total"]]):
        last = index == len(report["blocks"])
        rows.add_row(
            f"[bold]{escape(row['name'])}[/bold]" if last else escape(row["name"]),
            f"{row['bits']:,}", f"{row['injections']:,}",
            *(f"{row[outcome]:,}" for outcome in OUTCOMES),
            f"{_percent(row['sdc_fraction'])} {_range(row['sdc_low'], row['sdc_high'])}",
            f"{_fit(row['fit'])} \\[{_fit(row['fit_low'])}, {_fit(row['fit_high'])}]"
            + (" *" if row["fit_estimated_from_design"] else ""),
            end_section=index == len(report["blocks"]) - 1,
        )
    console.print(rows)
    total = report["total"]
    if report["extra_beats_watched"]:
        console.print(f"sdc with output beats after the expected ones (extra_beats): {total['sdc_extra_beats']:,} "
                      f"of {total['sdc']:,}", markup=False, highlight=False)

    target = report["target_asil"]
    need = report["targets"].get(target, {})
    summary = Table(title=f"ISO 26262 metrics (target ASIL {target})")
    for header in ("metric", "value", level, "target", "margin", "margin at bound"):
        summary.add_column(header, justify="left" if header == "metric" else "right")
    for key, label in (("spfm", "SPFM"), ("lfm", "LFM")):
        low, high = report[f"{key}_low"], report[f"{key}_high"]
        summary.add_row(label, _percent(report[key]),
                        "n/a" if low is None else _range(low, high),
                        "-" if need.get(key) is None else f">= {_percent(need[key], 0)}",
                        _percent(report["margins"][key]), _percent(report["margins_conservative"][key]))
    margin, margin_bound = report["margins"]["pmhf_fit"], report["margins_conservative"]["pmhf_fit"]
    summary.add_row("PMHF (FIT, first order)", _fit(report["pmhf_fit"]),
                    f"\\[{_fit(report['pmhf_fit_low'])}, {_fit(report['pmhf_fit_high'])}]",
                    "-" if need.get("pmhf_fit") is None else f"< {need['pmhf_fit']:g}",
                    "n/a" if margin is None else _fit(margin), "n/a" if margin_bound is None else _fit(margin_bound))
    console.print(summary)
    verdict = "met" if report["meets_target"] else "missed"
    verdict_bound = "met" if report["meets_target_conservative"] else "missed"
    console.print(f"ASIL reached: [bold]{report['asil']}[/bold] (point estimates), "
                  f"{report['asil_conservative']} (at the {level} bounds); target {target} {verdict} "
                  f"({verdict_bound} at the bounds)")

    if len(report["models"]) > 1:
        table = Table(title="design outcomes by fault model")
        for header in ("model", "inj", *OUTCOMES, f"SDC % {level}"):
            table.add_column(header, justify="left" if header == "model" else "right")
        for model, row in report["total"]["by_model"].items():
            rated = " (rates)" if model in report["rate_models"].values() else ""
            table.add_row(model + rated, f"{row['injections']:,}", *(f"{row[o]:,}" for o in OUTCOMES),
                          f"{_percent(row['sdc'] / row['injections'])} {_range(row['sdc_low'], row['sdc_high'])}")
        console.print(table)

    if report["mechanisms"]:
        table = Table(title="diagnostic coverage per mechanism")
        for header in ("mechanism", "sites", "bits", "dangerous", "escapes", "DC", level):
            table.add_column(header, justify="left" if header == "mechanism" else "right")
        for row in report["mechanisms"]:
            table.add_row(escape(row["name"]), f"{row['sites']:,}", f"{row['bits']:,}", f"{row['dangerous']:,}",
                          f"{row['escapes']:,}", _percent(row["dc"]), _range(row["dc_low"], row["dc_high"]))
        console.print(table)

    if report.get("predicted"):
        render_predicted(report["predicted"], console)

    console.print("outcome -> ISO class: " + "; ".join(f"{k} -> {v}" for k, v in report["iso_mapping"].items()),
                  markup=False, highlight=False)
    if any(row["fit_estimated_from_design"] for row in report["blocks"]):
        console.print("* a stratum of this row had no injection: its point FIT uses the design's fractions")
    console.print("assumptions:")
    for line in report["assumptions"]:
        console.print(f"  - {line}", markup=False, highlight=False)


def render_predicted(comparison: dict, console) -> None:
    """The optimiser's predicted metrics beside this campaign's measured ones (``npuforge report --predicted``)."""
    from rich.table import Table

    table = Table(title=f"predicted (npuforge protect on {comparison['source_campaign']}) vs measured",
                  caption="predicted bound: pessimistic end of the source campaign's intervals; measured: this "
                          "campaign, point and interval")
    for header in ("metric", "predicted", "predicted bound", "measured", "measured interval"):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for row in comparison["rows"]:
        if row["key"] == "pmhf_fit":
            cells = [_fit(row["predicted"]), _fit(row["predicted_bound"]), _fit(row["measured"]),
                     f"\\[{_fit(row['measured_low'])}, {_fit(row['measured_high'])}]"]
        else:
            low, high = row["measured_low"], row["measured_high"]
            cells = [_percent(row["predicted"]), _percent(row["predicted_bound"]), _percent(row["measured"]),
                     "n/a" if low is None else _range(low, high)]
        table.add_row(row["metric"], *cells)
    asil = comparison["asil"]
    table.add_row("ASIL", asil["predicted"], asil["predicted_bound"], asil["measured"], asil["measured_bound"])
    console.print(table)
    if comparison.get("same_design"):
        console.print("note: this campaign ran on the unprotected design the prediction was made from; "
                      "measure the protected design to compare", markup=False, highlight=False)
    for line in comparison["area_lines"]:
        console.print(line, markup=False, highlight=False)
