"""Selective protection: the minimum-area ``protect:`` assignment that reaches a target ASIL.

Inputs: an unprotected campaign (its stored meta and results), the design's protectable
blocks (the manifest's ``protectable`` list; without one, fault sites grouped by their first
hierarchical component below the part of the hierarchy every site shares, indices collapsed),
an area table (added area per block and mechanism) and the raw FIT per bit. Output: one
mechanism per block (``"none"`` included) of least total added area whose *predicted* SPFM,
LFM and first-order PMHF meet the target at the pessimistic end of the campaign's intervals.

The choice is an exact 0-1 integer program solved by ``scipy.optimize.milp`` (HiGHS): one
binary per (block, mechanism), exactly one per block; SPFM, LFM and PMHF are linear in the
binaries once their ratios are multiplied out (see :func:`optimise`). The prediction model
and its assumptions are in ``docs/protection.md`` (section Optimiser) and
:data:`ASSUMPTIONS`.

Use::

    blocks = blocks_from_campaign(meta, results, fit_per_bit={"register": 1e-4})
    model = model_for(blocks, coverage={}, abft_fraction=abft_fraction(design))
    problem = build_problem(blocks, area_table["blocks"], model)   # costed_mechanisms(block) to price
    solution = optimise(problem, "D")          # OptimiseError (one line) when unreachable
    protect_section(solution)                  # [{"match": block, "mechanism": m}, ...]
    prediction_record(meta, blocks, problem, solution, area_table, model, "D")   # the JSON record
    compare(load_prediction(path), report)     # predicted beside a re-run campaign's report
"""

import fnmatch
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gen.errors import ConfigError, NpuforgeError
from hw.protect import BLOCK_KINDS
from hw.protect import MECHANISMS as LIBRARY
from hw.protect import stored_width

from . import metrics
from .metrics import IsoClass
from .model import FaultModel, InjectionResult
from .report import RATE_MODELS, group_name

#: Version of the prediction JSON written next to the ``protect:`` config.
PREDICTION_FORMAT = 1


#: The Arm Ethos-U55 anchor (Tyagi et al., 2024): area overhead of selective protection that
#: reaches ASIL-D, and of dual-core lockstep, in percent of the unprotected NPU.
ETHOS_U55 = {"selective_pct": 38.0, "lockstep_pct": 100.0}


#: Coverage of the single-bit upsets of its block that the optimiser predicts for each mechanism
#: it may choose (where each fits, what it corrects: ``hw.protect.MECHANISMS``). Parity, SECDED,
#: DMR and TMR catch every single-bit error of the words they protect. Residue and ABFT check
#: the datapath's results, not the block's control and pipeline state: 0.9 ("medium" in ISO
#: 26262-5 Annex D terms) until a campaign measures them; the area file's ``coverage`` overrides
#: any of these. Clip is not a choice: whether a fault leaves the activation range depends on the
#: data, so it has no per-upset coverage to predict with.
COVERAGE = {"parity": 1.0, "secded": 1.0, "dmr": 1.0, "tmr": 1.0, "residue": 0.9, "abft": 0.9}
MECHANISMS = tuple(COVERAGE)
NONE = "none"

#: Flip-flops each mechanism adds that no check covers (the sticky alarm bit of the block).
OWN_FLOPS = 1

ASSUMPTIONS = [
    "A mechanism covers every fault site of its block; parity, DMR and residue detect, SECDED and TMR "
    "correct, ABFT locates and corrects; all of them report (TMR's disagreements are reported), so none "
    "leaves a latent fault.",
    "Coverage of single-bit upsets: parity, SECDED, DMR and TMR 100% of their block's dangerous upsets "
    "(every single-bit error of a protected word is caught); residue and ABFT 90% (they check results, "
    "not the block's control and pipeline state). Clip is never chosen: its coverage depends on the data.",
    "The redundancy a mechanism adds (check bits, replicas, residues, checksums) is a new population of "
    "bits at the raw FIT/bit of its site kind, with the block's pessimistic dangerous fraction, covered by "
    "the mechanism like the block's own bits; its alarm flip-flop is one more register bit at that "
    "fraction, uncovered (residual).",
    "The block's dangerous fraction (single-point and residual outcomes) is taken at the upper end of its "
    "two-sided interval per stratum: the prediction is pessimistic; a stratum without injections counts "
    "as 100% dangerous.",
    "PMHF is first order, sum(l_SPF + l_RF); the dual-point term is not included.",
    "Only single-bit upsets (seu on registers, mem_seu on memories) enter the rates, as in npuforge report.",
]


class OptimiseError(NpuforgeError):
    """The campaign, blocks, area table or target cannot give an assignment; one line."""

    exit_code = 2


# ------------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class Stratum:
    """Part of a block with one site kind (and one manifest block when the campaign sampled by block)."""

    kind: str            # fault-site kind: register or memory
    bits: int
    fit_per_bit: float
    injections: int
    dangerous: int       # single-point or residual injections
    latent: int = 0      # multi-point latent injections (only behind silently correcting mechanisms)


@dataclass(frozen=True)
class Block:
    """A protectable block: its fault sites (manifest dicts) and the campaign's strata over them."""

    name: str
    kind: str
    sites: tuple
    strata: tuple
    protectable: bool = True

    @property
    def bits(self) -> int:
        return sum(s.bits for s in self.strata)

    @property
    def injections(self) -> int:
        return sum(s.injections for s in self.strata)

    @property
    def dangerous(self) -> int:
        return sum(s.dangerous for s in self.strata)

    @property
    def fit_raw(self) -> float:
        return sum(s.bits * s.fit_per_bit for s in self.strata)


def site_bits(site: dict) -> int:
    return site["width"] * (site.get("depth") or 1)


def _common_prefix(blocks: Iterable[str]) -> list[str]:
    parts = [block.split(".") if block else [] for block in blocks]
    prefix = []
    for column in zip(*parts):
        if len(set(column)) != 1:
            break
        prefix.append(column[0])
    return prefix


def fallback_grouping(manifest: dict) -> dict[str, list[dict]]:
    """Block name -> sites, for a manifest without ``protectable``.

    Each site goes to the first hierarchical component of its manifest block below the part
    every site shares (``core`` for the TPE, whose sites are all under ``core``), with runs of
    indices collapsed (``core.pe_0_1`` and ``core.pe_7_7`` -> ``core.pe_*``: one block, one
    mechanism for every PE); sites right at the shared part form a block named after it
    (``top`` when that is the top module).
    """
    sites = manifest["fault_sites"]
    depth = len(_common_prefix(site["block"] for site in sites))
    groups: dict[str, list[dict]] = {}
    for site in sites:
        parts = site["block"].split(".") if site["block"] else []
        name = ".".join(parts[:depth + 1])
        groups.setdefault(group_name(name, "group"), []).append(site)
    return groups


def _declared_blocks(manifest: dict) -> list[tuple[str, str, list[dict]]]:
    """(name, kind, sites) of the manifest's ``protectable`` list, checked; one-line errors."""
    sites = {site["path"]: site for site in manifest["fault_sites"]}
    declared = manifest["protectable"]
    if not isinstance(declared, list) or not declared:
        raise OptimiseError(f"manifest protectable: got {declared!r}; allowed: a non-empty list of blocks")
    owner: dict[str, str] = {}
    out = []
    for index, entry in enumerate(declared):
        where = f"manifest protectable[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise OptimiseError(f"{where}: got {entry!r}; allowed: a mapping with name, kind, sites")
        name, kind, paths = entry["name"], entry.get("kind"), entry.get("sites")
        if kind not in BLOCK_KINDS:
            raise OptimiseError(f"{where}.kind: got {kind!r}; allowed: {', '.join(BLOCK_KINDS)}")
        if not isinstance(paths, list):
            raise OptimiseError(f"{where}.sites: got {paths!r}; allowed: a list of fault-site paths")
        if not paths:  # no flip-flop or memory bit: no upset to protect against
            continue
        for path in paths:
            if path not in sites:
                raise OptimiseError(f"{where}.sites: '{path}' is not a fault site of the manifest")
            if path in owner:
                raise OptimiseError(f"{where}.sites: '{path}' is in block '{owner[path]}' already; allowed: "
                                    "each fault site in at most one block")
            owner[path] = name
        if name in (n for n, _, _ in out):
            raise OptimiseError(f"{where}.name: '{name}' appears twice; allowed: unique block names")
        out.append((name, kind, [sites[path] for path in paths]))
    rest = [site for path, site in sites.items() if path not in owner]
    if rest:
        out.append(("(unprotectable)", "registers", rest))
    return out


def blocks_from_campaign(meta: dict, results: Iterable[InjectionResult], *,
                         fit_per_bit: dict | None = None) -> list[Block]:
    """The campaign's protectable blocks with their injections per stratum.

    ``meta`` as ``CampaignStore.meta()`` returns it; ``fit_per_bit`` (``register``,
    ``memory``) overrides the campaign's. Sites of no declared block form one more block,
    ``(unprotectable)``, that only takes ``none``.
    """
    manifest = meta.get("manifest")
    if not isinstance(manifest, dict) or not manifest.get("fault_sites"):
        raise OptimiseError("campaign meta has no manifest with fault sites; allowed: a database written by "
                            "'npuforge inject'")
    rates = {**meta.get("fit_per_bit", {}), **(fit_per_bit or {})}
    sites = {site["path"]: site for site in manifest["fault_sites"]}
    for site in sites.values():
        if not rates.get(site["kind"], 0) > 0:
            raise OptimiseError(f"fit_per_bit: no positive rate for fault sites of kind '{site['kind']}'; "
                                "allowed: a number > 0")
    if manifest.get("protectable") is not None:
        grouped = _declared_blocks(manifest)
    else:
        grouped = []
        for name, members in sorted(fallback_grouping(manifest).items()):
            kind = "memory" if all(site["kind"] == "memory" for site in members) else "registers"
            grouped.append((name, kind, members))
    try:
        mechanisms = metrics.mechanisms_from_manifest(manifest)
    except ValueError as error:
        raise OptimiseError(str(error)) from None
    watchdog = any(m.detects_hang for m in mechanisms)
    stratified = meta.get("config", {}).get("faults", {}).get("stratify", "none") == "block"

    # Injections per site of the model whose rate stands for the site's kind (as the report does).
    per_site: dict[tuple[str, str], list] = {}
    for result in results:
        path = result.fault.site
        if path not in sites:
            raise OptimiseError(f"result #{result.fault.index}: fault site '{path}' is not in the campaign's "
                                "manifest")
        covering = [m for m in mechanisms if m.covers_site(path)]
        iso = metrics.iso_class(result.outcome, covered=bool(covering), watchdog=watchdog,
                                silent=any(not m.reports for m in covering))
        per_site.setdefault((path, FaultModel(result.fault.model).value), []).append(iso)
    if not per_site:
        raise OptimiseError("the campaign has no injection results yet; run 'npuforge inject' first")
    present = {}
    for path, model in per_site:
        present.setdefault(sites[path]["kind"], set()).add(model)
    rate_model = {kind: next((m for m in RATE_MODELS.get(kind, ()) if m in models), None)
                  for kind, models in present.items()}

    blocks = []
    for name, kind, members in grouped:
        strata: dict[tuple[str, str], list] = {}
        for site in members:
            key = (site["block"] if stratified else name, site["kind"])
            entry = strata.setdefault(key, [0, 0, 0, 0])
            entry[0] += site_bits(site)
            for iso in per_site.get((site["path"], rate_model.get(site["kind"])), ()):
                entry[1] += 1
                entry[2] += iso in metrics.DANGEROUS
                entry[3] += iso is IsoClass.MULTI_POINT_LATENT
        blocks.append(Block(
            name=name, kind=kind, sites=tuple(members), protectable=name != "(unprotectable)",
            strata=tuple(Stratum(kind=site_kind, bits=b, fit_per_bit=float(rates[site_kind]), injections=n,
                                 dangerous=d, latent=lat)
                         for (_, site_kind), (b, n, d, lat) in sorted(strata.items()))))
    return blocks


# ---------------------------------------------------------------------------- prediction


def abft_fraction(manifest_config: dict) -> float:
    """Checksum row and column of a rows x cols array: (rows + cols) / (rows x cols) more state."""
    compute = manifest_config.get("compute", manifest_config) if isinstance(manifest_config, dict) else {}
    rows, cols = compute.get("rows", 8), compute.get("cols", 8)
    return (rows + cols) / (rows * cols)


def added_bits(site: dict, mechanism: str, abft_fraction: float = 0.25) -> int:
    """Bits ``mechanism`` adds to protect one fault site (per word of a memory, times its depth)."""
    width, depth = site["width"], site.get("depth") or 1
    if mechanism in ("residue", "abft"):  # a 2-bit mod-3 residue; checksums: a share of the array
        return 2 if mechanism == "residue" else math.ceil(width * depth * abft_fraction)
    return (stored_width(width, mechanism) - width) * depth


def fits(block: Block, mechanism: str) -> str | None:
    """Why ``mechanism`` does not fit ``block`` (None if it does)."""
    if mechanism == NONE:
        return None
    library = LIBRARY[mechanism]
    if not block.protectable:
        return "the block is not protectable"
    if block.kind not in library.applies_to:
        return f"{mechanism} applies to {', '.join(library.applies_to)} blocks, not {block.kind}"
    # Register codes and replicas protect every register of the block, so its narrowest one counts;
    # residue and ABFT check the block's arithmetic results, its widest values.
    widths = [site["width"] for site in block.sites]
    width = max(widths) if mechanism in DATAPATH else min(widths)
    if width < library.min_width:
        return f"{mechanism} needs values of at least {library.min_width} bits; the block has a {width}-bit one"
    return None


#: Mechanisms that check a block's arithmetic results rather than each of its registers.
DATAPATH = ("residue", "abft")

#: Whole-design replication the report compares the selective assignment with.
UNIFORM = ("dmr", "tmr")


def costed_mechanisms(block: Block) -> list[str]:
    """Mechanisms an area table needs for ``block``: those that fit it, and DMR and TMR for the comparison."""
    if not block.protectable:
        return []
    return [m for m in MECHANISMS if fits(block, m) is None or m in UNIFORM]


@dataclass(frozen=True)
class Option:
    """One (block, mechanism) choice: its added area and its failure rates in FIT."""

    block: str
    mechanism: str
    area: float
    total: float             # raw rate of the block and of the bits the mechanism adds
    dangerous: float         # l_SPF + l_RF, pessimistic (interval upper ends)
    latent: float            # l_MPF,latent, pessimistic
    dangerous_point: float   # l_SPF + l_RF at the point estimates
    latent_point: float
    added_bits: int


@dataclass(frozen=True)
class Model:
    """The prediction's parameters: interval, coverage overrides, ABFT's share of added state."""

    confidence: float = metrics.CONFIDENCE
    method: str = metrics.DEFAULT_INTERVAL
    coverage: dict = field(default_factory=dict)   # mechanism -> SEU coverage, overriding COVERAGE
    abft_fraction: float = 0.25
    #: Dangerous and latent injections and all injections of the design: the point estimate of a
    #: stratum without injections.
    pooled: tuple = (1, 0, 1)

    def coverage_of(self, mechanism: str) -> float:
        if mechanism == NONE:
            return 0.0
        return float(self.coverage.get(mechanism, COVERAGE[mechanism]))


def _fractions(stratum: Stratum, model: Model) -> tuple[float, float, float, float]:
    """(dangerous point, dangerous high, latent point, latent high) fractions of one stratum."""
    n = stratum.injections
    if n == 0:  # no injection: the design's pooled fractions as point, the whole range as bound
        k_d, k_l, n_p = model.pooled
        return k_d / n_p, 1.0, k_l / n_p, 1.0 if k_l else 0.0
    _, d_high = metrics.proportion_interval(stratum.dangerous, n, model.confidence, model.method)
    l_high = (metrics.proportion_interval(stratum.latent, n, model.confidence, model.method)[1]
              if stratum.latent else 0.0)
    return stratum.dangerous / n, d_high, stratum.latent / n, l_high


def option_for(block: Block, mechanism: str, area: float, model: Model = Model()) -> Option:
    """The rates of ``block`` protected by ``mechanism`` (``none``: as measured), per :data:`ASSUMPTIONS`.

    The block's own bits: dangerous = raw x (dangerous fraction) x (1 - coverage); latent
    likewise. The added redundancy: its bits at its kind's FIT/bit, with the block's
    dangerous fraction, covered the same way. The alarm flip-flop: uncovered, at the block's
    dangerous fraction.
    """
    c = model.coverage_of(mechanism)
    raw = total = d_point = d_high = l_point = l_high = 0.0
    for stratum in block.strata:
        fractions = _fractions(stratum, model)
        rate = stratum.bits * stratum.fit_per_bit
        raw += rate
        d_point, d_high, l_point, l_high = (acc + rate * f for acc, f in
                                            zip((d_point, d_high, l_point, l_high), fractions))
    total = raw
    dangerous_point, dangerous, latent_point, latent = (v * (1 - c) for v in (d_point, d_high, l_point, l_high))
    extra = 0
    if mechanism != NONE:
        fit_of = {s.kind: s.fit_per_bit for s in block.strata}
        fit_flop = fit_of.get("register", max(fit_of.values()))
        added = sum(added_bits(site, mechanism, model.abft_fraction) * fit_of[site["kind"]] for site in block.sites)
        extra = sum(added_bits(site, mechanism, model.abft_fraction) for site in block.sites) + OWN_FLOPS
        own = OWN_FLOPS * fit_flop
        total += added + own
        dangerous += (added * (1 - c) + own) * d_high / raw
        dangerous_point += (added * (1 - c) + own) * d_point / raw
    return Option(block=block.name, mechanism=mechanism, area=float(area), total=total, dangerous=dangerous,
                  latent=latent, dangerous_point=dangerous_point, latent_point=latent_point, added_bits=extra)


def predict(chosen: Iterable[Option], target: str = "D") -> dict:
    """SPFM, LFM, PMHF (first order) of a set of options, one per block: point and pessimistic (``_bound``).

    From the options' rates directly (SPFM = 1 - D / l, LFM = 1 - L / (l - D), clamped to
    [0, 1] as the report's bounds are; PMHF = D), the same sums the integer program's rows use.
    """
    chosen = list(chosen)
    total = sum(o.total for o in chosen)
    if not total > 0:
        raise OptimiseError("the design's raw failure rate is 0 FIT; allowed: FIT per bit > 0")
    out = {}
    for suffix, dangerous, latent in (("", sum(o.dangerous_point for o in chosen),
                                       sum(o.latent_point for o in chosen)),
                                      ("_bound", sum(o.dangerous for o in chosen), sum(o.latent for o in chosen))):
        rest = total - dangerous
        out[f"spfm{suffix}"] = max(0.0, 1.0 - dangerous / total)
        out[f"lfm{suffix}"] = None if rest <= 0 else max(0.0, min(1.0, 1.0 - latent / rest))
        out[f"pmhf_fit{suffix}"] = dangerous
    out["total_fit"] = total
    out["asil"] = metrics.asil_reached(out["spfm"], out["lfm"], out["pmhf_fit"])
    out["asil_conservative"] = metrics.asil_reached(out["spfm_bound"], out["lfm_bound"], out["pmhf_fit_bound"])
    out["meets_target_conservative"] = metrics.meets(target, out["spfm_bound"], out["lfm_bound"],
                                                     out["pmhf_fit_bound"])
    return out


# ------------------------------------------------------------------------------ the program


@dataclass
class Problem:
    """Every block's options (``none`` first), as :func:`optimise` takes them."""

    blocks: list[str]
    options: dict[str, list[Option]] = field(default_factory=dict)


def model_for(blocks: list[Block], **kwargs) -> Model:
    """A :class:`Model` with ``kwargs`` and the design's pooled counts of ``blocks``."""
    strata = [s for b in blocks for s in b.strata]
    n = sum(s.injections for s in strata)
    if n == 0:
        raise OptimiseError("the campaign has no injection in a rated fault model; allowed: seu or mem_seu results")
    return Model(pooled=(sum(s.dangerous for s in strata), sum(s.latent for s in strata), n), **kwargs)


def build_problem(blocks: list[Block], area: dict, model: Model, *, allowed: dict | None = None) -> Problem:
    """Options of every block: ``none`` and each mechanism that fits it and has an area.

    ``area``: block name -> mechanism -> added area (the area table's ``blocks``). A
    mechanism without an area for a block is not a choice for it, nor one missing from
    ``allowed[block]`` when given (what the design's generator implements).
    """
    problem = Problem(blocks=[b.name for b in blocks])
    for block in blocks:
        table = area.get(block.name, {})
        permitted = None if allowed is None else set(allowed.get(block.name, ()))
        problem.options[block.name] = [
            option_for(block, mechanism, 0.0 if mechanism == NONE else table[mechanism], model)
            for mechanism in (NONE, *MECHANISMS)
            if mechanism == NONE or (mechanism in table and fits(block, mechanism) is None
                                     and (permitted is None or mechanism in permitted))]
    return problem


@dataclass
class Solution:
    """The chosen option per block, its total added area and the predicted metrics."""

    chosen: dict[str, Option]
    area: float
    prediction: dict

    @property
    def assignment(self) -> dict[str, str]:
        return {name: option.mechanism for name, option in self.chosen.items()}


def _flat(problem: Problem) -> list[Option]:
    return [option for name in problem.blocks for option in problem.options[name]]


def _solve(problem: Problem, objective, rows: list[tuple[list[float], float]]):
    """min objective . x over the one-hot binaries with ``rows`` (coefficients, upper bound) <= ; x or None."""
    import numpy as np
    from scipy.optimize import LinearConstraint, milp

    flat = _flat(problem)
    one_hot = np.zeros((len(problem.blocks), len(flat)))
    column = 0
    for index, name in enumerate(problem.blocks):
        for _ in problem.options[name]:
            one_hot[index, column] = 1
            column += 1
    constraints = [LinearConstraint(one_hot, 1, 1)]
    if rows:
        constraints.append(LinearConstraint(np.array([r for r, _ in rows]), -np.inf, np.array([b for _, b in rows])))
    result = milp(np.asarray(objective, dtype=float), integrality=np.ones(len(flat)), bounds=(0, 1),
                  constraints=constraints, options={"mip_rel_gap": 0.0, "presolve": True})
    if result.status != 0 or result.x is None:
        return None
    return [option for option, value in zip(flat, result.x) if value > 0.5]


#: Constraints are scaled by the design's raw rate and tightened by this much, so that the
#: solver's feasibility tolerance (1e-6 by default) never admits a point that misses a target.
_SLACK = 1e-7


def required(target: str, headroom: float = 0.0) -> metrics.AsilTarget:
    """``target``'s requirements with ``headroom`` (a fraction) added to SPFM and LFM, at most 1."""
    need = metrics.ASIL_TARGETS[target]
    return metrics.AsilTarget(spfm=None if need.spfm is None else min(1.0, need.spfm + headroom),
                              lfm=None if need.lfm is None else min(1.0, need.lfm + headroom),
                              pmhf_fit=need.pmhf_fit)


def _meets(prediction: dict, need: metrics.AsilTarget) -> bool:
    spfm, lfm = prediction["spfm_bound"], prediction["lfm_bound"]
    return ((need.spfm is None or spfm >= need.spfm) and (need.lfm is None or lfm is None or lfm >= need.lfm)
            and prediction["pmhf_fit_bound"] < need.pmhf_fit)


def _rows(problem: Problem, need: metrics.AsilTarget) -> list[tuple[list[float], float]]:
    """SPFM, LFM, PMHF requirements as linear rows over the binaries, scaled by the unprotected raw rate."""
    flat = _flat(problem)
    scale = sum(problem.options[name][0].total for name in problem.blocks)
    rows = []
    if need.spfm is not None:  # sum D <= (1 - s) sum l
        rows.append(([(o.dangerous - (1 - need.spfm) * o.total) / scale for o in flat], -_SLACK))
    if need.lfm is not None:   # sum L <= (1 - l) sum (l - D)
        rows.append(([(o.latent - (1 - need.lfm) * (o.total - o.dangerous)) / scale for o in flat], -_SLACK))
    rows.append(([o.dangerous / scale for o in flat], need.pmhf_fit / scale * (1 - 1e-9) - _SLACK))  # strict <
    return rows


def best_reachable(problem: Problem) -> dict:
    """The best pessimistic SPFM, LFM and PMHF any assignment reaches, each on its own (exact).

    SPFM and LFM are ratios of sums: minimised by Dinkelbach's method, a MILP per step.
    """
    flat = _flat(problem)

    def min_ratio(top, bottom) -> float:
        chosen = [problem.options[name][0] for name in problem.blocks]
        ratio = sum(map(top, chosen)) / sum(map(bottom, chosen))
        for _ in range(50):
            step = _solve(problem, [top(o) - ratio * bottom(o) for o in flat], [])
            value = sum(map(top, step)) / sum(map(bottom, step))
            if value >= ratio - 1e-12:
                return ratio
            ratio = value
        return ratio

    spfm = 1 - min_ratio(lambda o: o.dangerous, lambda o: o.total)
    lfm = 1 - min_ratio(lambda o: o.latent, lambda o: max(o.total - o.dangerous, 1e-300))
    pmhf = sum(min(o.dangerous for o in problem.options[name]) for name in problem.blocks)
    return {"spfm": spfm, "lfm": lfm, "pmhf_fit": pmhf}


def optimise(problem: Problem, target: str, *, headroom: float = 0.0) -> Solution:
    """The least-area assignment whose pessimistic metrics meet ``target`` (exact, by MILP).

    With x[b, m] in {0, 1} and sum_m x[b, m] = 1 per block, l, D, L the option's total,
    dangerous and latent rates (pessimistic):

        minimise  sum x area
        SPFM >= s    <=>  sum x (D - (1 - s) l) <= 0
        LFM  >= f    <=>  sum x (L - (1 - f) (l - D)) <= 0
        PMHF <  p    <=>  sum x D < p

    ``headroom`` (a fraction, e.g. 0.003) raises the SPFM and LFM requirements, so that a
    re-run campaign, whose own intervals are wide, still shows the target at its bounds.
    Raises :class:`OptimiseError` (one line, the best reachable value of the first metric
    that cannot be met) when no assignment meets the target.
    """
    if target not in metrics.ASILS:
        raise OptimiseError(f"--target: got {target!r}; allowed: {', '.join(metrics.ASILS)}")
    if not 0.0 <= headroom < 0.1:
        raise OptimiseError(f"--headroom: got {headroom!r}; allowed: a fraction from 0 to below 0.1")
    if target == "QM":
        chosen = [problem.options[name][0] for name in problem.blocks]
        need = None
    else:
        need = required(target, headroom)
        chosen = _solve(problem, [o.area for o in _flat(problem)], _rows(problem, need))
        if chosen is None:
            raise OptimiseError(infeasible_message(problem, target, need))
    prediction = predict(chosen, target)
    if need is not None and not _meets(prediction, need):  # cannot happen with the slack; never print it as met
        raise OptimiseError(f"the solver's assignment misses ASIL {target} when re-checked; allowed: another target")
    return Solution(chosen={o.block: o for o in chosen}, area=sum(o.area for o in chosen), prediction=prediction)


def infeasible_message(problem: Problem, target: str, need: metrics.AsilTarget | None = None) -> str:
    """Why no assignment meets ``target`` (``need``: its requirements with any headroom): one line."""
    need = need or metrics.ASIL_TARGETS[target]
    best = best_reachable(problem)
    where = "at the pessimistic end of the campaign's intervals"
    if need.spfm is not None and best["spfm"] < need.spfm:
        return (f"--target {target}: unreachable; the best SPFM any assignment reaches {where} is "
                f"{best['spfm']:.2%} (needs >= {need.spfm:.2%}); allowed: a lower target, more injections, or "
                "more mechanisms in the area table")
    if need.lfm is not None and best["lfm"] < need.lfm:
        return (f"--target {target}: unreachable; the best LFM any assignment reaches {where} is "
                f"{best['lfm']:.2%} (needs >= {need.lfm:.2%}); allowed: a lower target")
    if best["pmhf_fit"] >= need.pmhf_fit:
        return (f"--target {target}: unreachable; the lowest PMHF any assignment reaches {where} is "
                f"{best['pmhf_fit']:.3g} FIT (needs < {need.pmhf_fit:g}); allowed: a lower target or lower "
                "FIT per bit")
    return (f"--target {target}: unreachable; SPFM {best['spfm']:.2%}, LFM {best['lfm']:.2%} and PMHF "
            f"{best['pmhf_fit']:.3g} FIT are each reachable {where}, but not together; allowed: a lower target")


def uniform(blocks: list[Block], area: dict, mechanism: str, model: Model, target: str = "D") -> dict | None:
    """Area and prediction of ``mechanism`` on every protectable block (full DMR, full TMR), fit or not.

    None when the area table lacks ``mechanism`` for some protectable block.
    """
    chosen = []
    for block in blocks:
        if not block.protectable:
            chosen.append(option_for(block, NONE, 0.0, model))
        elif mechanism in area.get(block.name, {}):
            chosen.append(option_for(block, mechanism, area[block.name][mechanism], model))
        else:
            return None
    return {"area": sum(o.area for o in chosen), **predict(chosen, target)}


# ------------------------------------------------------------------------------- output


def protect_section(solution: Solution) -> list[dict]:
    """The ``protect:`` entries: one per protected block, its name as the match pattern."""
    return [{"match": name, "mechanism": option.mechanism}
            for name, option in solution.chosen.items() if option.mechanism != NONE]


def check_section(section: list[dict], block_names: list[str]) -> None:
    """Every entry's pattern matches a block and no block gets two mechanisms (the contract's rules)."""
    taken: dict[str, int] = {}
    for index, entry in enumerate(section):
        hits = [name for name in block_names if fnmatch.fnmatchcase(name, entry["match"])]
        if not hits:
            raise OptimiseError(f"protect[{index}].match: '{entry['match']}' matches no block; allowed: "
                                f"{', '.join(block_names)}")
        for name in hits:
            if name in taken:
                raise OptimiseError(f"protect[{index}].match: block '{name}' has a mechanism from "
                                    f"protect[{taken[name]}] already")
            taken[name] = index


# ------------------------------------------------------------------ the record and its display


def _pct(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def prediction_record(meta: dict, blocks: list[Block], problem: Problem, solution: Solution, table: dict,
                      model: Model, target: str) -> dict:
    """The JSON-ready record of one optimisation: assignment, predictions, areas, assumptions.

    ``npuforge protect`` writes it beside the config; ``npuforge report --predicted``
    compares its ``predicted`` metrics with a re-run campaign's measured ones.
    """
    baseline = float(table["baseline"])
    unprotected = predict([problem.options[name][0] for name in problem.blocks], target)
    uniform_rows = {m: uniform(blocks, table["blocks"], m, model, target) for m in UNIFORM}
    # Full DMR / TMR: whole-design lockstep when the table prices it, else every block's option summed.
    lockstep = table.get("lockstep") or {}
    full = {m: lockstep.get(m, None if uniform_rows[m] is None else uniform_rows[m]["area"]) for m in UNIFORM}
    rows = []
    for block in blocks:
        chosen = solution.chosen[block.name]
        none = problem.options[block.name][0]
        rows.append({
            "name": block.name, "kind": block.kind, "bits": block.bits, "sites": len(block.sites),
            "injections": block.injections, "dangerous": block.dangerous,
            "fit_raw": block.fit_raw, "fit_dangerous_bound": none.dangerous,
            "mechanism": chosen.mechanism, "area": chosen.area, "added_bits": chosen.added_bits,
            "fit_dangerous_bound_protected": chosen.dangerous,
            "options": {o.mechanism: o.area for o in problem.options[block.name][1:]},
        })
    assumptions = list(ASSUMPTIONS)
    if table.get("estimated"):
        assumptions.append(f"Areas are ESTIMATED: {table.get('source')}; baseline {baseline:,.0f} "
                           f"{table.get('unit')} (one generic synthesis of the unprotected design).")
    else:
        assumptions.append(f"Areas: {table.get('source')}; baseline {baseline:,.0f} {table.get('unit')}.")
    assumptions.extend(f"Area: {note}." for note in table.get("notes", ()))
    return {
        "format": PREDICTION_FORMAT,
        "campaign": meta.get("config", {}).get("name"),
        "design": meta.get("manifest", {}).get("top"),
        "design_hash": meta.get("design_hash"),
        "target_asil": target,
        "confidence": model.confidence,
        "interval": model.method,
        "fit_per_bit": {s.kind: s.fit_per_bit for b in blocks for s in b.strata},
        "coverage": {m: model.coverage_of(m) for m in MECHANISMS},
        "grouping": "manifest protectable" if meta.get("manifest", {}).get("protectable") is not None else
                    "first hierarchical component below the shared prefix, indices collapsed",
        "blocks": rows,
        "protect": protect_section(solution),
        "unprotected": unprotected,
        "predicted": solution.prediction,
        "uniform": uniform_rows,
        "area": {
            "unit": table.get("unit"), "estimated": bool(table.get("estimated")), "source": table.get("source"),
            "baseline": baseline, "selected": solution.area, "selected_pct": 100 * solution.area / baseline,
            **{f"full_{m}": full[m] for m in UNIFORM},
            **{f"full_{m}_pct": None if full[m] is None else 100 * full[m] / baseline for m in UNIFORM},
            "full_source": "lockstep: the whole design replicated, outputs compared or voted" if lockstep else
                           "every block with the mechanism (the area table's per-block areas summed)",
            "ethos_u55": dict(ETHOS_U55),
        },
        "pmhf_terms": "first order: sum(l_SPF + l_RF); the dual-point term is not included",
        "assumptions": assumptions,
    }


def area_lines(prediction: dict) -> list[str]:
    """The area overhead beside full DMR, full TMR and the Ethos-U55 anchor, as lines of text."""
    area = prediction["area"]
    label = " (ESTIMATED: analytic model calibrated by one synthesis)" if area["estimated"] else ""
    lines = [f"added area{label}, in % of the unprotected design ({area['baseline']:,.0f} {area['unit']}):",
             f"  selected assignment   {area['selected_pct']:7.1f}%   (ASIL "
             f"{prediction['predicted']['asil_conservative']} at the bounds)"]
    for m in UNIFORM:
        pct = area[f"full_{m}_pct"]
        asil = (prediction["uniform"][m] or {}).get("asil_conservative")
        lines.append(f"  full {m.upper():16} "
                     + ("    n/a    (the area table has no lockstep entry and no area for every block)"
                        if pct is None else f"{pct:7.1f}%" + (f"   (ASIL {asil} at the bounds)" if asil else "")))
    lines.append(f"  Ethos-U55 anchor      {area['ethos_u55']['selective_pct']:7.1f}%   selective, ASIL D "
                 f"(lockstep {area['ethos_u55']['lockstep_pct']:.0f}%; Tyagi et al. 2024)")
    return lines


_SHORT_KIND = {"registers": "reg", "memory": "mem", "compute": "comp", "activation": "act"}


def render(prediction: dict, console) -> None:
    """Print the assignment, the predicted metrics and the area comparison on a rich ``console``."""
    from rich.markup import escape
    from rich.table import Table

    level = f"{prediction['confidence']:.0%}"
    rows = Table(title=f"protection for ASIL {prediction['target_asil']}: campaign {prediction['campaign']} on "
                       f"{prediction['design']}", caption=f"blocks: {prediction['grouping']}; danger: sdc + hang "
                                                     f"fraction, bound: its {level} upper end"
                                                     + ("; * estimated" if prediction["area"]["estimated"] else ""))
    for header in ("block", "kind", "bits", "inj", "danger", "bound", "mechanism",
                   "area" + ("*" if prediction["area"]["estimated"] else "")):
        rows.add_column(header, justify="left" if header in ("block", "kind", "mechanism") else "right",
                        no_wrap=header in ("kind", "mechanism"), overflow="fold",
                        min_width=min(24, max(len(r["name"]) for r in prediction["blocks"])) if header == "block"
                        else None)
    for row in prediction["blocks"]:
        fraction = row["dangerous"] / row["injections"] if row["injections"] else None
        bound = row["fit_dangerous_bound"] / row["fit_raw"] if row["fit_raw"] else None
        rows.add_row(escape(row["name"]), _SHORT_KIND.get(row["kind"], row["kind"]), f"{row['bits']:,}",
                     f"{row['injections']:,}", _pct(fraction, 1), _pct(bound, 1), row["mechanism"],
                     f"{row['area']:,.0f}")
    console.print(rows)
    metrics_table = Table(title="predicted ISO 26262 metrics (PMHF first order)")
    need = metrics.ASIL_TARGETS.get(prediction["target_asil"])
    for header in ("metric", f"unprotected (bound {level})", "protected (point)", f"protected (bound {level})",
                   "target"):
        metrics_table.add_column(header, justify="left" if header == "metric" else "right")
    u, p = prediction["unprotected"], prediction["predicted"]
    for key, label in (("spfm", "SPFM"), ("lfm", "LFM")):
        goal = None if need is None else getattr(need, key)
        metrics_table.add_row(label, _pct(u[f"{key}_bound"]), _pct(p[key]), _pct(p[f"{key}_bound"]),
                              "-" if goal is None else f">= {_pct(goal, 0)}")
    metrics_table.add_row("PMHF (FIT)", f"{u['pmhf_fit_bound']:.3g}", f"{p['pmhf_fit']:.3g}",
                          f"{p['pmhf_fit_bound']:.3g}", "-" if need is None else f"< {need.pmhf_fit:g}")
    metrics_table.add_row("ASIL", u["asil_conservative"], p["asil"], p["asil_conservative"],
                          prediction["target_asil"])
    console.print(metrics_table)
    for line in area_lines(prediction):
        console.print(line, markup=False, highlight=False)
    console.print("assumptions:")
    for line in prediction["assumptions"]:
        console.print(f"  - {line}", markup=False, highlight=False)


def load_prediction(path) -> dict:
    """A prediction written by ``npuforge protect`` (the JSON, or the config next to it); one-line errors."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        path = path.with_name(path.stem + ".prediction.json")
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"--predicted: cannot read '{path}': {error.strerror}; allowed: the .prediction.json "
                          "(or the config) written by 'npuforge protect'") from None
    except ValueError:
        raise ConfigError(f"--predicted: '{path}' is not JSON; allowed: the .prediction.json written by "
                          "'npuforge protect'") from None
    if not isinstance(data, dict) or data.get("format") != PREDICTION_FORMAT or "predicted" not in data:
        raise ConfigError(f"--predicted: '{path}' is not a prediction of format {PREDICTION_FORMAT}; allowed: "
                          "the .prediction.json written by 'npuforge protect'")
    return data


def compare(prediction: dict, report: dict) -> dict:
    """Predicted (point and pessimistic bound) beside measured (point and interval) SPFM, LFM, PMHF, ASIL."""
    p = prediction["predicted"]
    rows = []
    for key, label, bound, low, high in (("spfm", "SPFM", "spfm_bound", "spfm_low", "spfm_high"),
                                         ("lfm", "LFM", "lfm_bound", "lfm_low", "lfm_high"),
                                         ("pmhf_fit", "PMHF (FIT, first order)", "pmhf_fit_bound",
                                          "pmhf_fit_low", "pmhf_fit_high")):
        rows.append({"metric": label, "key": key, "predicted": p[key], "predicted_bound": p[bound],
                     "measured": report[key], "measured_low": report[low], "measured_high": report[high]})
    source = prediction.get("design_hash")
    return {
        # True when this report is of the very design the prediction was made from (not the protected one).
        "same_design": bool(source) and source == report.get("design_hash"),
        "source_campaign": prediction["campaign"],
        "target_asil": prediction["target_asil"],
        "protect": prediction["protect"],
        "rows": rows,
        "asil": {"predicted": p["asil"], "predicted_bound": p["asil_conservative"],
                 "measured": report["asil"], "measured_bound": report["asil_conservative"]},
        "area": prediction["area"],
        "uniform": {m: (None if v is None else {"asil_conservative": v["asil_conservative"]})
                    for m, v in prediction["uniform"].items()},
        "area_lines": area_lines(prediction),
    }
