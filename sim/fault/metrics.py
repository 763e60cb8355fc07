"""The numbers a campaign's report stands on: binomial intervals, sample sizes, ISO 26262 metrics.

Pure functions on counts and failure rates, no I/O; ``sim/fault/report.py`` feeds
them a campaign's stored results. Every formula is written out in
``docs/fault_metrics.md``.

* Intervals for a fraction ``k / n``: Wilson (score interval) and Clopper-Pearson
  (exact, from beta quantiles), both scipy's. Both stay inside [0, 1] and behave at
  ``k = 0`` and ``k = n``, where the normal approximation fails.
* Statistical fault injection (Leveugle et al., DATE 2009): the sample size for a
  margin and confidence, and the margin a finished sample gives; the
  zero-failure rule for a coverage claim with no escape.
* ISO 26262-5 hardware metrics from failure rates in FIT per class: SPFM, LFM,
  PMHF; the ASIL those reach and the margin to a target ASIL.
"""

import fnmatch
import functools
import math
import numbers
from dataclasses import dataclass
from enum import Enum
from statistics import NormalDist

from .model import Outcome

#: Confidence level of every interval unless the caller asks otherwise.
CONFIDENCE = 0.95

# ----------------------------------------------------------------------------- intervals


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: got {confidence!r}; allowed: a number strictly between 0 and 1")


def _check_counts(k: int, n: int) -> None:
    integral = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (k, n))
    if not (integral and 0 <= k <= n):
        raise ValueError(f"counts: got k={k!r}, n={n!r}; allowed: integers with 0 <= k <= n")


def z_value(confidence: float) -> float:
    """The two-sided standard normal quantile: 1.95996... for 0.95, 2.57583... for 0.99."""
    _check_confidence(confidence)
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@functools.lru_cache(maxsize=4096)  # a report asks for the same (k, n) many times; scipy's root search is slow
def _scipy_interval(k: int, n: int, confidence: float, method: str) -> tuple[float, float]:
    from scipy.stats import binomtest  # late: scipy.stats takes a while to import, and most commands never need it

    interval = binomtest(k, n).proportion_ci(confidence_level=confidence, method=method)
    # At k = 0 (k = n) scipy returns exactly 0 (1); elsewhere rounding must not leave [0, 1].
    return max(0.0, float(interval.low)), min(1.0, float(interval.high))


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (scipy's ``binomtest(k, n).proportion_ci``,
    ``method="wilson"``); ``(0, 1)`` when ``n == 0``."""
    _check_counts(k, n)
    _check_confidence(confidence)
    return (0.0, 1.0) if n == 0 else _scipy_interval(int(k), int(n), float(confidence), "wilson")


def clopper_pearson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Clopper-Pearson ("exact") interval, each tail holding (1 - confidence) / 2 (scipy's
    ``binomtest(k, n).proportion_ci``, ``method="exact"``: bounds to about 1e-12 absolute);
    ``(0, 1)`` when ``n == 0``.

    lower = B(alpha/2; k, n-k+1) (0 when k = 0), upper = B(1-alpha/2; k+1, n-k) (1 when k = n),
    B the beta quantile.
    """
    _check_counts(k, n)
    _check_confidence(confidence)
    return (0.0, 1.0) if n == 0 else _scipy_interval(int(k), int(n), float(confidence), "exact")


#: Interval method name (as the report and the CLI spell it) -> function.
INTERVALS = {"clopper-pearson": clopper_pearson_interval, "wilson": wilson_interval}
DEFAULT_INTERVAL = "clopper-pearson"


def proportion_interval(k: int, n: int, confidence: float = CONFIDENCE,
                        method: str = DEFAULT_INTERVAL) -> tuple[float, float]:
    """The interval of ``method`` (a key of :data:`INTERVALS`) for ``k / n``."""
    if method not in INTERVALS:
        raise ValueError(f"interval method: got {method!r}; allowed: {', '.join(INTERVALS)}")
    return INTERVALS[method](k, n, confidence)


# ------------------------------------------------------------------ statistical fault injection


def leveugle_sample_size(population: float, margin: float, confidence: float = CONFIDENCE,
                         p: float = 0.5) -> int:
    """Injections needed for ``margin`` at ``confidence`` (Leveugle et al., DATE 2009).

    n = N / (1 + e^2 (N - 1) / (t^2 p (1 - p))), rounded up so the margin is reached;
    ``population`` N may be ``math.inf`` (then n = t^2 p (1 - p) / e^2). ``p = 0.5``
    is the worst case when the fraction is unknown. Never more than N.
    """
    if not population >= 1:
        raise ValueError(f"population: got {population!r}; allowed: a number >= 1 (or math.inf)")
    if not 0.0 < margin < 1.0:
        raise ValueError(f"margin: got {margin!r}; allowed: a number strictly between 0 and 1")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: got {p!r}; allowed: a number strictly between 0 and 1")
    t = z_value(confidence)
    infinite = t * t * p * (1 - p) / (margin * margin)
    if math.isinf(population):
        return math.ceil(infinite)
    return min(math.ceil(population / (1 + (population - 1) / infinite)), math.ceil(population))


def leveugle_margin(samples: int, population: float, confidence: float = CONFIDENCE, p: float = 0.5) -> float:
    """The margin ``samples`` injections give: e = t sqrt(p (1-p) / n * (N - n) / (N - 1))."""
    if not (isinstance(samples, int) and samples >= 1):
        raise ValueError(f"samples: got {samples!r}; allowed: an integer >= 1")
    if not population >= samples:
        raise ValueError(f"population: got {population!r}; allowed: a number >= samples ({samples})")
    t = z_value(confidence)
    correction = 1.0 if math.isinf(population) or population == 1 else (population - samples) / (population - 1)
    return t * math.sqrt(p * (1 - p) / samples * correction)


def zero_failure_samples(coverage: float, confidence: float = CONFIDENCE) -> int:
    """Injections with no escape needed to claim ``coverage`` at ``confidence``: n >= ln(1-C) / ln(DC)."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage: got {coverage!r}; allowed: a number strictly between 0 and 1")
    _check_confidence(confidence)
    return math.ceil(math.log(1 - confidence) / math.log(coverage) - 1e-9)


def zero_failure_coverage(samples: int, confidence: float = CONFIDENCE) -> float:
    """The coverage that ``samples`` injections with no escape support at ``confidence``: (1-C)^(1/n).

    It is the one-sided Clopper-Pearson lower bound for ``samples`` successes out of ``samples``.
    """
    if not (isinstance(samples, int) and samples >= 1):
        raise ValueError(f"samples: got {samples!r}; allowed: an integer >= 1")
    _check_confidence(confidence)
    return (1 - confidence) ** (1 / samples)


# ------------------------------------------------------------------------- ISO 26262 classes


class IsoClass(str, Enum):
    """The ISO 26262-5 class of one fault (of the fraction of a failure rate it stands for)."""

    SAFE = "safe"
    SINGLE_POINT = "single_point"
    RESIDUAL = "residual"
    MULTI_POINT_DETECTED = "multi_point_detected"
    MULTI_POINT_LATENT = "multi_point_latent"


#: The classes that count in SPFM and (first-order) PMHF.
DANGEROUS = (IsoClass.SINGLE_POINT, IsoClass.RESIDUAL)


def iso_class(outcome: Outcome, *, covered: bool, watchdog: bool = False, silent: bool = False) -> IsoClass:
    """The class of one injection's outcome.

    ``covered``: a safety mechanism declares the fault's site; ``watchdog``: some
    mechanism reports a hang; ``silent``: a covering mechanism corrects without
    reporting, so a fault it masks may stay in its state unseen.

    masked -> safe (latent when ``silent``); sdc -> single-point, or residual when
    ``covered``; detected and corrected -> multi-point detected (an alarm rose, the
    fault is perceived); hang -> multi-point detected with a watchdog, else like sdc
    (nothing in the design reports it, so it counts as a violation: conservative).
    """
    outcome = Outcome(outcome)
    dangerous = IsoClass.RESIDUAL if covered else IsoClass.SINGLE_POINT
    if outcome is Outcome.MASKED:
        return IsoClass.MULTI_POINT_LATENT if silent else IsoClass.SAFE
    if outcome is Outcome.SDC:
        return dangerous
    if outcome in (Outcome.DETECTED, Outcome.CORRECTED):
        return IsoClass.MULTI_POINT_DETECTED
    return IsoClass.MULTI_POINT_DETECTED if watchdog else dangerous


@dataclass(frozen=True)
class Lambdas:
    """Failure rates in FIT (failures per 10^9 device-hours) per ISO class."""

    safe: float = 0.0
    single_point: float = 0.0
    residual: float = 0.0
    multi_point_detected: float = 0.0
    multi_point_latent: float = 0.0

    @classmethod
    def from_classes(cls, rates: dict) -> "Lambdas":
        """From ``{IsoClass or its value: FIT}``; missing classes are 0."""
        return cls(**{IsoClass(name).value: float(value) for name, value in rates.items()})

    @property
    def total(self) -> float:
        return self.safe + self.single_point + self.residual + self.multi_point_detected + self.multi_point_latent

    @property
    def dangerous(self) -> float:
        """lambda_SPF + lambda_RF."""
        return self.single_point + self.residual


def spfm(rates: Lambdas) -> float:
    """Single-point fault metric: 1 - sum(l_SPF + l_RF) / sum(l)."""
    if rates.total <= 0:
        raise ValueError("SPFM: the total failure rate is 0; allowed: a positive total")
    return 1.0 - rates.dangerous / rates.total


def lfm(rates: Lambdas) -> float | None:
    """Latent fault metric: 1 - sum(l_MPF,latent) / sum(l - l_SPF - l_RF).

    ``None`` when every fault is single-point or residual (no multi-point fault
    can exist, the metric is undefined).
    """
    rest = rates.total - rates.dangerous
    if rest <= 0:
        return None
    return 1.0 - rates.multi_point_latent / rest


def pmhf(rates: Lambdas, *, lifetime_hours: float | None = None) -> float:
    """Probabilistic metric for random hardware failures, in FIT.

    First order (the default, ``lifetime_hours=None``): sum(l_SPF + l_RF). With a
    lifetime, the dual-point term l_MPF,detected x l_MPF,latent x T is added
    (rates converted from FIT to per hour and back: FIT_d x FIT_l x T x 1e-9).
    """
    first = rates.dangerous
    if lifetime_hours is None:
        return first
    if not lifetime_hours > 0:
        raise ValueError(f"lifetime_hours: got {lifetime_hours!r}; allowed: a positive number of hours")
    return first + rates.multi_point_detected * rates.multi_point_latent * lifetime_hours * 1e-9


# -------------------------------------------------------------------------------------- ASIL


@dataclass(frozen=True)
class AsilTarget:
    """What an ASIL requires; ``None`` where ISO 26262 sets no target."""

    spfm: float | None
    lfm: float | None
    pmhf_fit: float  # strictly below


#: ISO 26262-5 targets for B, C and D. The standard sets none for A: this project uses
#: PMHF < 1000 FIT (the customary figure, ten times B's) and no SPFM or LFM requirement.
ASIL_TARGETS = {
    "D": AsilTarget(spfm=0.99, lfm=0.90, pmhf_fit=10.0),
    "C": AsilTarget(spfm=0.97, lfm=0.80, pmhf_fit=100.0),
    "B": AsilTarget(spfm=0.90, lfm=0.60, pmhf_fit=100.0),
    "A": AsilTarget(spfm=None, lfm=None, pmhf_fit=1000.0),
}
#: Lowest to highest.
ASILS = ("QM", "A", "B", "C", "D")


def meets(target: str, spfm_value: float, lfm_value: float | None, pmhf_fit: float) -> bool:
    """Whether the metrics reach ASIL ``target`` (QM is always reached).

    SPFM and LFM must be at least the target (an undefined LFM, no multi-point
    fault possible, passes); PMHF must be strictly below it.
    """
    if target not in ASILS:
        raise ValueError(f"ASIL: got {target!r}; allowed: {', '.join(ASILS)}")
    if target == "QM":
        return True
    need = ASIL_TARGETS[target]
    if need.spfm is not None and spfm_value < need.spfm:
        return False
    if need.lfm is not None and lfm_value is not None and lfm_value < need.lfm:
        return False
    return pmhf_fit < need.pmhf_fit


def asil_reached(spfm_value: float, lfm_value: float | None, pmhf_fit: float) -> str:
    """The highest ASIL whose targets the metrics meet: "QM", "A", "B", "C" or "D"."""
    return next(level for level in reversed(ASILS) if meets(level, spfm_value, lfm_value, pmhf_fit))


def asil_margins(spfm_value: float, lfm_value: float | None, pmhf_fit: float, target: str) -> dict:
    """Distance to ``target``'s requirements; positive = met with room, negative = missed by.

    ``spfm`` and ``lfm`` are value - requirement (fractions), ``pmhf_fit`` is
    requirement - value (FIT). A metric the target does not constrain (or an
    undefined LFM) gives ``None``.
    """
    if target not in ASILS:
        raise ValueError(f"ASIL: got {target!r}; allowed: {', '.join(ASILS)}")
    if target == "QM":
        return {"spfm": None, "lfm": None, "pmhf_fit": None}
    need = ASIL_TARGETS[target]
    return {
        "spfm": None if need.spfm is None else spfm_value - need.spfm,
        "lfm": None if need.lfm is None or lfm_value is None else lfm_value - need.lfm,
        "pmhf_fit": need.pmhf_fit - pmhf_fit,
    }


# ------------------------------------------------------------------------ rates and coverage


def block_fit(bits: int, fit_per_bit: float, fraction: float) -> float:
    """FIT of a structure: bits x FIT/bit x the fraction of its faults in a class (e.g. dangerous)."""
    if bits < 0 or fit_per_bit < 0 or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"block FIT: got bits={bits}, fit_per_bit={fit_per_bit}, fraction={fraction}; "
                         "allowed: bits >= 0, fit_per_bit >= 0, 0 <= fraction <= 1")
    return bits * fit_per_bit * fraction


def diagnostic_coverage(escapes: int, dangerous: int) -> float | None:
    """DC = 1 - escapes / dangerous faults (escapes: SDC, and hangs nothing reports); ``None`` if none."""
    _check_counts(escapes, dangerous)
    return None if dangerous == 0 else 1.0 - escapes / dangerous


@dataclass(frozen=True)
class Mechanism:
    """A safety mechanism as the manifest declares it (``manifest["mechanisms"]``).

    ``covers``: the fault sites whose faults it is meant to catch, as manifest
    paths or ``fnmatch`` patterns (``core.pe_*.acc``); ``detects_hang``: it reports a
    hang (a watchdog); ``reports``: ``False`` for a mechanism that corrects without
    raising an alarm (e.g. TMR whose disagreements nobody reads), so a fault it
    masks counts as multi-point latent.
    """

    name: str
    covers: tuple[str, ...]
    detects_hang: bool = False
    reports: bool = True

    def covers_site(self, path: str) -> bool:
        return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.covers)


def mechanisms_from_manifest(manifest: dict) -> list[Mechanism]:
    """The manifest's ``mechanisms`` list (absent: none), checked; one-line ``ValueError`` on a bad entry."""
    declared = manifest.get("mechanisms", [])
    if not isinstance(declared, list):
        raise ValueError(f"manifest mechanisms: got {declared!r}; allowed: a list of mechanisms")
    paths = [site["path"] for site in manifest.get("fault_sites", [])]
    mechanisms, names = [], set()
    for index, entry in enumerate(declared):
        where = f"manifest mechanisms[{index}]"
        if not isinstance(entry, dict) or set(entry) - {"name", "covers", "detects_hang", "reports", "alarm"}:
            raise ValueError(f"{where}: got {entry!r}; allowed: a mapping with name, covers and optional "
                             "detects_hang, reports, alarm")
        name, covers = entry.get("name"), entry.get("covers")
        if not isinstance(name, str) or not name or name in names:
            raise ValueError(f"{where}.name: got {name!r}; allowed: a unique non-empty string")
        if not (isinstance(covers, list) and covers and all(isinstance(item, str) for item in covers)):
            raise ValueError(f"{where}.covers: got {covers!r}; allowed: a non-empty list of fault-site paths "
                             "or patterns")
        flags = {key: entry.get(key, default) for key, default in (("detects_hang", False), ("reports", True))}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f"{where}.{key}: got {value!r}; allowed: true or false")
        mechanism = Mechanism(name=name, covers=tuple(covers), **flags)
        if not any(mechanism.covers_site(path) for path in paths):
            raise ValueError(f"{where}.covers: got {covers!r}, which matches no fault site of the manifest")
        mechanisms.append(mechanism)
        names.add(name)
    return mechanisms
