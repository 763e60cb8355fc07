"""sim/fault/metrics.py: intervals against published values and their definitions, Leveugle sizes, zero-failure rule, ISO metrics, ASIL."""

import math

import pytest
from scipy import stats

from sim.fault import metrics
from sim.fault.metrics import IsoClass, Lambdas
from sim.fault.model import Outcome

# (k, n) pairs: the edges k = 0 and k = n, small n, and large n where the beta tails are tiny.
_NS = (1, 2, 3, 5, 10, 17, 50, 100, 384, 1000, 2000, 9604, 100_000, 1_000_000)
CASES = sorted({(k, n) for n in _NS for k in (0, 1, 2, n // 3, n // 2, n - 2, n - 1, n) if 0 <= k <= n})


# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven
# methods", Stat. Med. 17, Table I: (k, n) -> 95% Wilson (method 3) and Clopper-Pearson (method 5), 4 decimals.
NEWCOMBE = {
    (81, 263): ((0.2553, 0.3662), (0.2527, 0.3676)),
    (15, 148): ((0.0624, 0.1605), (0.0578, 0.1617)),
    (0, 20): ((0.0, 0.1611), (0.0, 0.1684)),
    (1, 29): ((0.0061, 0.1718), (0.0009, 0.1776)),
}


def test_intervals_match_published_values():
    for (k, n), (wilson, exact) in NEWCOMBE.items():
        assert metrics.wilson_interval(k, n) == pytest.approx(wilson, abs=5e-5), (k, n)
        assert metrics.clopper_pearson_interval(k, n) == pytest.approx(exact, abs=5e-5), (k, n)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_wilson_is_the_score_interval(confidence):
    """The closed form: centre (k + z^2/2) / (n + z^2), half-width z / (n + z^2) sqrt(k (n-k) / n + z^2 / 4)."""
    z = metrics.z_value(confidence)
    for k, n in CASES:
        centre = (k + z * z / 2) / (n + z * z)
        half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
        want = (0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half)
        assert metrics.wilson_interval(k, n, confidence) == pytest.approx(want, rel=1e-12, abs=1e-15), (k, n)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_clopper_pearson_is_the_beta_quantiles(confidence):
    """The definition, through scipy's beta quantiles (not the root search binomtest uses): to its 1e-12 tolerance."""
    tail = (1 - confidence) / 2
    for k, n in CASES:
        low, high = metrics.clopper_pearson_interval(k, n, confidence)
        want_low = 0.0 if k == 0 else stats.beta.ppf(tail, k, n - k + 1)
        want_high = 1.0 if k == n else stats.beta.ppf(1 - tail, k + 1, n - k)
        assert (low, high) == pytest.approx((want_low, want_high), abs=1e-11), (k, n)
        assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n), (k, n)


def test_intervals_contain_the_estimate_and_widen_with_confidence():
    for method in metrics.INTERVALS:
        for k, n in CASES:
            low95, high95 = metrics.proportion_interval(k, n, 0.95, method)
            low99, high99 = metrics.proportion_interval(k, n, 0.99, method)
            assert 0.0 <= low99 <= low95 <= k / n <= high95 <= high99 <= 1.0, (method, k, n)
            assert (low95 == 0.0) == (k == 0) and (high95 == 1.0) == (k == n), (method, k, n)
    # The edges in closed form: no escape in 300 runs bounds the rate by 1 - 0.025^(1/300) (CP) and
    # z^2 / (n + z^2) (Wilson).
    z2 = metrics.z_value(0.95) ** 2
    assert metrics.clopper_pearson_interval(0, 300)[1] == pytest.approx(1 - 0.025 ** (1 / 300), abs=1e-11)
    assert metrics.clopper_pearson_interval(300, 300)[0] == pytest.approx(0.025 ** (1 / 300), abs=1e-11)
    assert metrics.wilson_interval(0, 300)[1] == pytest.approx(z2 / (300 + z2), rel=1e-12)


def test_interval_inputs():
    assert metrics.wilson_interval(0, 0) == (0.0, 1.0) == metrics.clopper_pearson_interval(0, 0)
    for bad in [(-1, 3), (4, 3), (1.0, 3)]:
        with pytest.raises(ValueError, match="counts"):
            metrics.clopper_pearson_interval(*bad)
    with pytest.raises(ValueError, match="confidence"):
        metrics.wilson_interval(1, 3, 1.0)
    with pytest.raises(ValueError, match="interval method: got 'normal'"):
        metrics.proportion_interval(1, 3, method="normal")


def test_leveugle_infinite_population():
    """n = t^2 p (1-p) / e^2 with p = 0.5: the sizes every SFI paper quotes, within +-1."""
    for population in (math.inf, 1e15):
        assert abs(metrics.leveugle_sample_size(population, 0.05, 0.95) - 384) <= 1
        assert abs(metrics.leveugle_sample_size(population, 0.01, 0.95) - 9_604) <= 1
        assert abs(metrics.leveugle_sample_size(population, 0.01, 0.99) - 16_587) <= 1


# safety.md's table: population -> sizes for (95%, 5%), (95%, 1%), (99%, 1%), (99%, 0.5%).
LEVEUGLE_TABLE = {
    10**4: (370, 4_899, 6_239, 8_690),
    10**6: (384, 9_513, 16_316, 62_219),
    10**9: (384, 9_604, 16_587, 66_343),
}
COLUMNS = ((0.95, 0.05), (0.95, 0.01), (0.99, 0.01), (0.99, 0.005))


def test_leveugle_table_rows():
    """Every finite-N entry of the reference table.

    The table rounds to the nearest integer with t = 1.96 and t = 2.5758; we use the exact
    quantile (2.5758293...) and round up, since a sample size must reach the margin. Both
    only move our value up: by at most 1, except in the 99% / +-0.5% column where the
    larger t adds one more injection (62,221 for 62,219 and 66,345 for 66,343).
    """
    for population, row in LEVEUGLE_TABLE.items():
        for (confidence, margin), want in zip(COLUMNS, row):
            got = metrics.leveugle_sample_size(population, margin, confidence)
            slack = 2 if margin == 0.005 else 1
            assert 0 <= got - want <= slack, (population, confidence, margin, got, want)


def test_leveugle_margin_is_the_inverse_of_the_size():
    for population in (1_000, 10**4, 438_800, 10**9, math.inf):
        for confidence, margin in COLUMNS:
            n = metrics.leveugle_sample_size(population, margin, confidence)
            assert n <= population
            assert metrics.leveugle_margin(n, population, confidence) <= margin + 1e-12
            if n > 1:
                assert metrics.leveugle_margin(n - 1, population, confidence) > margin
    # The whole population has no sampling error; a tiny one is all of it.
    assert metrics.leveugle_margin(1_000, 1_000) == 0.0
    assert metrics.leveugle_sample_size(50, 0.01) == 50
    assert metrics.leveugle_margin(384, math.inf) == pytest.approx(1.959964 * math.sqrt(0.25 / 384), rel=1e-6)
    with pytest.raises(ValueError, match="margin"):
        metrics.leveugle_sample_size(1e6, 0.0)
    with pytest.raises(ValueError, match="population"):
        metrics.leveugle_margin(10, 5)


def test_zero_failure_rule():
    """n >= ln(1-C) / ln(DC): the reference's 299 / 459 runs for 99% and 2,995 / 4,603 for 99.9%."""
    assert metrics.zero_failure_samples(0.99, 0.95) == 299
    assert metrics.zero_failure_samples(0.99, 0.99) == 459
    assert metrics.zero_failure_samples(0.999, 0.95) == 2_995
    assert metrics.zero_failure_samples(0.999, 0.99) == 4_603
    assert metrics.zero_failure_coverage(299) >= 0.99 > metrics.zero_failure_coverage(298)
    # It is the one-sided Clopper-Pearson bound: a two-sided interval at 2C - 1 has tail 1 - C.
    for n in (1, 10, 299, 5_000):
        assert metrics.zero_failure_coverage(n, 0.95) == pytest.approx(
            metrics.clopper_pearson_interval(n, n, 0.90)[0], abs=1e-11)


def test_iso_class_mapping():
    c = metrics.iso_class
    assert c(Outcome.MASKED, covered=False) is IsoClass.SAFE
    assert c(Outcome.MASKED, covered=True, silent=True) is IsoClass.MULTI_POINT_LATENT
    assert c(Outcome.SDC, covered=False) is IsoClass.SINGLE_POINT
    assert c(Outcome.SDC, covered=True) is IsoClass.RESIDUAL
    assert c(Outcome.SDC, covered=False, watchdog=True) is IsoClass.SINGLE_POINT
    for outcome in (Outcome.DETECTED, Outcome.CORRECTED):
        assert c(outcome, covered=False) is c(outcome, covered=True) is IsoClass.MULTI_POINT_DETECTED
    assert c(Outcome.HANG, covered=False) is IsoClass.SINGLE_POINT
    assert c(Outcome.HANG, covered=True) is IsoClass.RESIDUAL
    assert c(Outcome.HANG, covered=False, watchdog=True) is IsoClass.MULTI_POINT_DETECTED
    assert c("sdc", covered=True) is IsoClass.RESIDUAL


def test_spfm_lfm_pmhf_by_hand():
    """A block of 100 FIT: 60 safe, 5 single-point, 3 residual, 30 multi-point detected, 2 latent.

    SPFM = 1 - (5 + 3) / 100 = 0.92
    LFM  = 1 - 2 / (100 - 5 - 3) = 1 - 2/92 = 0.978261
    PMHF = 5 + 3 = 8 FIT (first order);
    with a 10,000 h lifetime, + 30 FIT x 2 FIT x 1e4 h x 1e-9 = 0.0006 FIT.
    ASIL: SPFM 92% < 97% rules out C and D; B needs 90%, 60%, < 100 FIT: B.
    Margins to D: SPFM 0.92 - 0.99 = -0.07, LFM 0.978261 - 0.9, PMHF 10 - 8 = 2.
    """
    rates = Lambdas(safe=60, single_point=5, residual=3, multi_point_detected=30, multi_point_latent=2)
    assert rates.total == 100 and rates.dangerous == 8
    assert metrics.spfm(rates) == pytest.approx(0.92)
    assert metrics.lfm(rates) == pytest.approx(1 - 2 / 92)
    assert metrics.pmhf(rates) == 8
    assert metrics.pmhf(rates, lifetime_hours=10_000) == pytest.approx(8.0006)
    assert metrics.asil_reached(metrics.spfm(rates), metrics.lfm(rates), metrics.pmhf(rates)) == "B"
    margins = metrics.asil_margins(metrics.spfm(rates), metrics.lfm(rates), metrics.pmhf(rates), "D")
    assert margins == pytest.approx({"spfm": -0.07, "lfm": 1 - 2 / 92 - 0.9, "pmhf_fit": 2.0})
    assert Lambdas.from_classes({"single_point": 2.0, IsoClass.SAFE: 1.0}) == Lambdas(safe=1.0, single_point=2.0)
    # Every fault dangerous: LFM is undefined.
    assert metrics.lfm(Lambdas(single_point=1.0)) is None
    with pytest.raises(ValueError, match="total failure rate is 0"):
        metrics.spfm(Lambdas())


@pytest.mark.parametrize("spfm, lfm, pmhf, want", [
    (0.99, 0.90, 9.999, "D"),
    (1.00, 1.00, 10.0, "C"),     # PMHF must be strictly below 10 for D
    (0.98999, 0.95, 1.0, "C"),   # SPFM just under 99%
    (0.99, 0.89999, 1.0, "C"),   # LFM just under 90%
    (0.97, 0.80, 99.999, "C"),
    (0.96999, 0.95, 1.0, "B"),
    (0.97, 0.79999, 1.0, "B"),
    (0.90, 0.60, 99.999, "B"),
    (0.95, 0.95, 100.0, "A"),    # PMHF 100 misses B and C
    (0.89999, 0.95, 1.0, "A"),
    (0.95, 0.59999, 1.0, "A"),
    (0.0, 0.0, 999.999, "A"),    # A asks only PMHF < 1000 FIT
    (1.0, 1.0, 1000.0, "QM"),
    (0.995, None, 1.0, "D"),     # undefined LFM (no multi-point fault) does not block
])
def test_asil_at_the_table_boundaries(spfm, lfm, pmhf, want):
    assert metrics.asil_reached(spfm, lfm, pmhf) == want
    for level in metrics.ASILS:
        reached = metrics.ASILS.index(level) <= metrics.ASILS.index(want)
        assert metrics.meets(level, spfm, lfm, pmhf) == reached, level


def test_asil_margins():
    assert metrics.asil_margins(0.95, 0.7, 50.0, "QM") == {"spfm": None, "lfm": None, "pmhf_fit": None}
    assert metrics.asil_margins(0.95, 0.7, 50.0, "A") == {"spfm": None, "lfm": None, "pmhf_fit": 950.0}
    assert metrics.asil_margins(0.95, None, 50.0, "B") == pytest.approx({"spfm": 0.05, "lfm": None, "pmhf_fit": 50.0})
    with pytest.raises(ValueError, match="ASIL: got 'E'"):
        metrics.asil_margins(0.95, 0.7, 50.0, "E")


def test_block_fit_and_coverage():
    assert metrics.block_fit(4388, 1e-4, 0.2) == pytest.approx(0.08776)
    assert metrics.block_fit(10, 0.5, 0.0) == 0.0
    with pytest.raises(ValueError, match="block FIT"):
        metrics.block_fit(10, 0.5, 1.5)
    assert metrics.diagnostic_coverage(2, 10) == pytest.approx(0.8)
    assert metrics.diagnostic_coverage(0, 0) is None


MANIFEST = {"fault_sites": [
    {"path": "core.pe_0_0.acc", "kind": "register", "width": 8, "block": "core.pe_0_0", "aliases": []},
    {"path": "core.pe_0_1.acc", "kind": "register", "width": 8, "block": "core.pe_0_1", "aliases": []},
    {"path": "core.ctl.state", "kind": "register", "width": 2, "block": "core.ctl", "aliases": []},
]}


def test_mechanisms_from_manifest():
    assert metrics.mechanisms_from_manifest(MANIFEST) == []
    manifest = {**MANIFEST, "mechanisms": [
        {"name": "acc_parity", "covers": ["core.pe_*.acc"], "alarm": "err"},
        {"name": "watchdog", "covers": ["core.ctl.state"], "detects_hang": True, "reports": True},
    ]}
    parity, watchdog = metrics.mechanisms_from_manifest(manifest)
    assert parity.covers_site("core.pe_0_1.acc") and not parity.covers_site("core.ctl.state")
    assert watchdog.detects_hang and not parity.detects_hang and parity.reports
    bad = [
        ({"name": "x", "covers": ["core.nothing"]}, "mechanisms\\[0\\].covers: .* matches no fault site"),
        ({"name": "x", "covers": []}, "mechanisms\\[0\\].covers: got \\[\\]"),
        ({"name": "", "covers": ["core.ctl.state"]}, "mechanisms\\[0\\].name"),
        ({"name": "x", "covers": ["core.ctl.state"], "reports": "no"}, "mechanisms\\[0\\].reports: got 'no'"),
        ({"name": "x", "covers": ["core.ctl.state"], "dc": 0.9}, "mechanisms\\[0\\]: got"),
    ]
    for entry, message in bad:
        with pytest.raises(ValueError, match=message):
            metrics.mechanisms_from_manifest({**MANIFEST, "mechanisms": [entry]})
    twice = [{"name": "x", "covers": ["core.ctl.state"]}] * 2
    with pytest.raises(ValueError, match="mechanisms\\[1\\].name: got 'x'; allowed: a unique"):
        metrics.mechanisms_from_manifest({**MANIFEST, "mechanisms": twice})
