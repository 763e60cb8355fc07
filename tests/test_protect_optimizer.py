"""sim/fault/optimize.py, fpga/protect_area.py and ``npuforge protect``: the selective-protection optimiser.

The MILP's optimum is checked against brute force over every assignment of random small
problems, infeasible targets and monotonicity; the prediction model against hand-computed
rates and against ``npuforge report`` on the unprotected design; the CLI end to end on a
stored synthetic campaign (no simulator: results are made up, the area table is given).
"""

import itertools
import json
import random

import pytest
import yaml

from fpga import protect_area
from npuforge import cli
from sim.fault import metrics
from sim.fault import optimize as opt
from sim.fault.model import Fault, FaultModel, InjectionResult, Outcome
from sim.fault.report import build_report
from sim.fault.store import CampaignStore

# A toy design: control registers at the top of core, a PE array, an output stage and a memory.
SITES = [
    {"path": "core.busy", "kind": "register", "width": 1, "block": "core", "aliases": []},
    {"path": "core.count", "kind": "register", "width": 6, "block": "core", "aliases": []},
    *({"path": f"core.pe_{r}_{c}.acc", "kind": "register", "width": 16, "block": f"core.pe_{r}_{c}", "aliases": []}
      for r in range(2) for c in range(2)),
    *({"path": f"core.pe_{r}_{c}.a", "kind": "register", "width": 8, "block": f"core.pe_{r}_{c}", "aliases": []}
      for r in range(2) for c in range(2)),
    {"path": "core.out.data", "kind": "register", "width": 32, "block": "core.out", "aliases": []},
    {"path": "core.buf.mem", "kind": "memory", "width": 8, "depth": 16, "block": "core.buf", "aliases": []},
]
#: Per site: (masked, sdc, hang) injections of its rated model.
OUTCOMES = {"core.busy": (3, 1, 1), "core.count": (8, 2, 0), "core.out.data": (30, 9, 0), "core.buf.mem": (40, 12, 0),
            **{f"core.pe_{r}_{c}.acc": (10, 6, 0) for r in range(2) for c in range(2)},
            **{f"core.pe_{r}_{c}.a": (12, 3, 0) for r in range(2) for c in range(2)}}


def _meta(sites=SITES, **manifest_extra):
    window = 40
    bits = sum(s["width"] * s.get("depth", 1) for s in sites)
    manifest = {"top": "toy", "fault_sites": sites, "fault_site_bits": bits, **manifest_extra}
    return {"config": {"name": "toy_seu", "faults": {"models": ["seu", "mem_seu"], "stratify": "none"}},
            "design": {"kind": "toy", "name": "toy"}, "design_hash": "0" * 64, "manifest": manifest,
            "reference": {"cycles": window}, "window": window, "population": bits * window,
            "fit_per_bit": {"register": 0.01, "memory": 0.05}, "target_asil": "D"}


def _results(outcomes=OUTCOMES):
    index = itertools.count()
    out = []
    for path, counts in outcomes.items():
        model = FaultModel.MEM_SEU if path.endswith("mem") else FaultModel.SEU
        for outcome, n in zip((Outcome.MASKED, Outcome.SDC, Outcome.HANG), counts):
            for i in range(n):
                fault = Fault(index=next(index), model=model, site=path, bit=0, cycle=i,
                              word=0 if model is FaultModel.MEM_SEU else None)
                out.append(InjectionResult(fault, outcome, differing=int(outcome is Outcome.SDC)))
    return out


def _area(blocks, scale=1.0):
    """A made-up area table: per bit, parity 3, secded 8, dmr 40, tmr 85, residue 10, abft 12."""
    per_bit = {"parity": 3, "secded": 8, "dmr": 40, "tmr": 85, "residue": 10, "abft": 12}
    return {b.name: {m: scale * per_bit[m] * b.bits for m in opt.costed_mechanisms(b)} for b in blocks}


# ----------------------------------------------------------------------------- blocks


def test_fallback_grouping_collapses_indices_below_the_shared_prefix():
    groups = opt.fallback_grouping(_meta()["manifest"])
    assert sorted(groups) == ["core", "core.buf", "core.out", "core.pe_*"]
    assert {s["path"] for s in groups["core"]} == {"core.busy", "core.count"}
    assert len(groups["core.pe_*"]) == 8
    # Sites at the top itself form the block "top".
    top = [{"path": "x", "kind": "register", "width": 2, "block": "", "aliases": []},
           {"path": "u.y", "kind": "register", "width": 2, "block": "u", "aliases": []}]
    assert sorted(opt.fallback_grouping({"fault_sites": top})) == ["top", "u"]


def test_blocks_from_campaign_counts_and_kinds():
    blocks = {b.name: b for b in opt.blocks_from_campaign(_meta(), _results())}
    assert blocks["core.buf"].kind == "memory" and blocks["core"].kind == "registers"
    assert blocks["core.pe_*"].bits == 4 * 16 + 4 * 8
    assert blocks["core.pe_*"].injections == 4 * 16 + 4 * 15 and blocks["core.pe_*"].dangerous == 4 * 6 + 4 * 3
    assert blocks["core"].dangerous == 4  # sdc and hang: no watchdog
    assert blocks["core.buf"].fit_raw == pytest.approx(128 * 0.05)
    # --fit-flop / --fit-sram override the campaign's rates.
    override = {b.name: b for b in opt.blocks_from_campaign(_meta(), _results(), fit_per_bit={"memory": 1.0})}
    assert override["core.buf"].fit_raw == pytest.approx(128.0)
    assert override["core.out"].fit_raw == pytest.approx(32 * 0.01)


def test_declared_protectable_blocks_and_their_errors():
    protectable = [{"name": "buf_a", "kind": "memory", "sites": ["core.buf.mem"], "bits": 128},
                   {"name": "compute", "kind": "compute", "sites": [s["path"] for s in SITES if ".pe_" in s["path"]]}]
    blocks = {b.name: b for b in opt.blocks_from_campaign(_meta(protectable=protectable), _results())}
    assert sorted(blocks) == ["(unprotectable)", "buf_a", "compute"]
    with_empty = [*protectable, {"name": "post", "kind": "activation", "sites": [], "bits": 0}]
    assert len(opt.blocks_from_campaign(_meta(protectable=with_empty), _results())) == 3  # nothing to protect
    rest = blocks["(unprotectable)"]
    assert not rest.protectable and {s["path"] for s in rest.sites} == {"core.busy", "core.count", "core.out.data"}
    assert opt.costed_mechanisms(rest) == []
    assert opt.fits(blocks["buf_a"], "tmr") is not None and opt.fits(blocks["buf_a"], "secded") is None
    assert opt.fits(blocks["compute"], "residue") is None and opt.fits(blocks["compute"], "parity") is not None
    for bad, message in (
            ([{"name": "x", "kind": "memory", "sites": ["nope"]}], "'nope' is not a fault site"),
            ([{"name": "x", "kind": "disk", "sites": ["core.busy"]}], "kind: got 'disk'"),
            ([{"name": "x", "kind": "registers", "sites": ["core.busy"]},
              {"name": "y", "kind": "registers", "sites": ["core.busy"]}], "in block 'x' already"),
            ([], "non-empty list")):
        with pytest.raises(opt.OptimiseError, match=message):
            opt.blocks_from_campaign(_meta(protectable=bad), _results())


def test_secded_does_not_fit_a_one_bit_register():
    blocks = {b.name: b for b in opt.blocks_from_campaign(_meta(), _results())}
    assert "1-bit" in opt.fits(blocks["core"], "secded")
    assert "secded" not in opt.costed_mechanisms(blocks["core"])
    assert opt.fits(blocks["core.out"], "secded") is None


# --------------------------------------------------------------------------- the model


def test_option_rates_hand_computed():
    site = {"path": "b.r", "kind": "register", "width": 10, "block": "b"}
    block = opt.Block("b", "registers", (site,), (opt.Stratum("register", 10, 0.5, injections=20, dangerous=4),))
    high = metrics.clopper_pearson_interval(4, 20)[1]
    none = opt.option_for(block, "none", 0)
    assert (none.total, none.dangerous, none.dangerous_point) == pytest.approx((5.0, 5 * high, 1.0))
    # Parity: one parity bit (covered) and one alarm flop (uncovered, at the block's fraction).
    parity = opt.option_for(block, "parity", 7)
    assert parity.total == pytest.approx(6.0) and parity.added_bits == 2 and parity.area == 7
    assert (parity.dangerous, parity.dangerous_point) == pytest.approx((0.5 * high, 0.5 * 0.2))
    # TMR: 20 replica bits (covered) and the alarm flop.
    tmr = opt.option_for(block, "tmr", 0)
    assert tmr.total == pytest.approx(15.5) and tmr.dangerous == pytest.approx(0.5 * high)
    # SECDED on 10 bits stores a 15-bit code: 5 added bits.
    assert opt.option_for(block, "secded", 0).added_bits == 5 + opt.OWN_FLOPS
    # A coverage of 0.9 leaves 10% of the block's and its redundancy's dangerous rate residual.
    model = opt.Model(coverage={"dmr": 0.9})
    dmr = opt.option_for(block, "dmr", 0, model)
    assert dmr.dangerous == pytest.approx((5 * 0.1 + 5 * 0.1 + 0.5) * high)
    prediction = opt.predict([tmr])
    assert prediction["spfm_bound"] == pytest.approx(1 - 0.5 * high / 15.5)
    assert prediction["lfm_bound"] == 1.0 and prediction["pmhf_fit_bound"] == pytest.approx(0.5 * high)


@pytest.mark.parametrize("stratify", ["none", "block"])
def test_unprotected_prediction_equals_the_reports_bounds(stratify):
    meta, results = _meta(), _results()
    meta["config"]["faults"]["stratify"] = stratify  # block: one stratum per manifest block, as the report
    blocks = opt.blocks_from_campaign(meta, results)
    problem = opt.build_problem(blocks, {}, opt.model_for(blocks))
    unprotected = opt.predict([problem.options[name][0] for name in problem.blocks])
    report = build_report(meta, results)
    assert unprotected["spfm_bound"] == pytest.approx(report["spfm_low"], rel=1e-12)
    assert unprotected["pmhf_fit_bound"] == pytest.approx(report["pmhf_fit_high"], rel=1e-12)
    assert unprotected["spfm"] == pytest.approx(report["spfm"], rel=1e-12)
    assert unprotected["asil_conservative"] == report["asil_conservative"]


# ---------------------------------------------------------------------- the integer program


def _random_blocks(rng: random.Random) -> list[opt.Block]:
    blocks = []
    fit = rng.choice([1e-4, 0.05, 5.0])  # 5 FIT/bit (unphysical) makes PMHF < 10 FIT bind for D
    for index in range(rng.randint(2, 4)):
        kind = rng.choice(["registers", "registers", "compute", "memory"])
        sites = tuple({"path": f"b{index}.s{j}", "kind": "memory" if kind == "memory" else "register",
                       "width": rng.randint(1, 24), "block": f"b{index}",
                       **({"depth": rng.randint(2, 8)} if kind == "memory" else {})}
                      for j in range(rng.randint(1, 3)))
        bits = sum(opt.site_bits(s) for s in sites)
        n = rng.randint(0, 300)
        dangerous = rng.randint(0, n)
        latent = 0
        if rng.random() < 0.4:  # latent faults (behind a silent mechanism) and few dangerous: LFM binds
            dangerous = rng.randint(0, n // 50)
            latent = rng.randint((n - dangerous) // 4, n - dangerous)
        strata = (opt.Stratum(sites[0]["kind"], bits, fit, injections=n, dangerous=dangerous, latent=latent),)
        blocks.append(opt.Block(f"b{index}", kind, sites, strata))
    return blocks


def _brute_force(problem: opt.Problem, target: str) -> float | None:
    best = None
    for chosen in itertools.product(*(problem.options[name] for name in problem.blocks)):
        if opt.predict(chosen, target)["meets_target_conservative"]:
            area = sum(o.area for o in chosen)
            best = area if best is None else min(best, area)
    return best


def _random_problem(seed: int) -> opt.Problem:
    rng = random.Random(seed)
    blocks = _random_blocks(rng)
    area = {b.name: {m: rng.uniform(1, 100) * b.bits for m in opt.costed_mechanisms(b) if rng.random() < 0.8}
            for b in blocks}
    return opt.build_problem(blocks, area, opt.model_for(blocks, coverage={"parity": rng.choice([1.0, 0.95])}))


@pytest.mark.parametrize("seed", range(40))
def test_milp_optimum_equals_brute_force(seed):
    problem = _random_problem(seed)
    for target in ("A", "B", "C", "D"):
        expected = _brute_force(problem, target)
        if expected is None:
            with pytest.raises(opt.OptimiseError, match=f"--target {target}: unreachable"):
                opt.optimise(problem, target)
            continue
        solution = opt.optimise(problem, target)
        assert solution.area == pytest.approx(expected, rel=1e-9, abs=1e-9), (seed, target)
        assert solution.prediction["meets_target_conservative"]
        assert sorted(solution.chosen) == sorted(problem.blocks)


def test_the_brute_force_cases_include_infeasible_and_protected_optima():
    """The random cases above must exercise both outcomes, or the comparison proves little."""
    outcomes = set()
    for seed in range(40):
        problem = _random_problem(seed)
        area = _brute_force(problem, "D")
        outcomes.add("infeasible" if area is None else "free" if area == 0 else "protected")
    assert outcomes >= {"infeasible", "protected"}


@pytest.mark.parametrize("seed", range(20))
def test_a_stricter_target_never_costs_less(seed):
    problem = _random_problem(100 + seed)
    areas = []
    for target in metrics.ASILS:
        try:
            areas.append(opt.optimise(problem, target).area)
        except opt.OptimiseError:
            break  # every stricter target is unreachable too
    assert areas == sorted(areas)
    for stricter in metrics.ASILS[len(areas):]:
        with pytest.raises(opt.OptimiseError):
            opt.optimise(problem, stricter)


@pytest.mark.parametrize("seed", range(10))
def test_best_reachable_metrics_equal_brute_force(seed):
    problem = _random_problem(200 + seed)
    every = [opt.predict(chosen) for chosen in itertools.product(*(problem.options[n] for n in problem.blocks))]
    best = opt.best_reachable(problem)
    assert best["spfm"] == pytest.approx(max(p["spfm_bound"] for p in every), rel=1e-9)
    assert best["lfm"] == pytest.approx(max(p["lfm_bound"] for p in every if p["lfm_bound"] is not None), rel=1e-9)
    assert best["pmhf_fit"] == pytest.approx(min(p["pmhf_fit_bound"] for p in every), rel=1e-9)


def test_infeasible_target_names_the_best_reachable_spfm():
    blocks = opt.blocks_from_campaign(_meta(), _results())
    area = {"core.out": {"parity": 10.0}}  # only one block can be protected
    problem = opt.build_problem(blocks, area, opt.model_for(blocks))
    with pytest.raises(opt.OptimiseError) as error:
        opt.optimise(problem, "D")
    message = str(error.value)
    assert "\n" not in message and "best SPFM" in message and "needs >= 99.00%" in message
    best = max(opt.predict(chosen)["spfm_bound"]
               for chosen in itertools.product(*(problem.options[n] for n in problem.blocks)))
    assert f"{best:.2%}" in message
    assert opt.best_reachable(problem)["spfm"] == pytest.approx(best, rel=1e-9)


@pytest.mark.parametrize("seed", range(10))
def test_headroom_is_a_stricter_target(seed):
    """With headroom h the optimum is the brute-force optimum of SPFM >= s + h, LFM >= f + h."""
    problem = _random_problem(300 + seed)
    need = opt.required("C", 0.01)
    best = None
    for chosen in itertools.product(*(problem.options[n] for n in problem.blocks)):
        p = opt.predict(chosen)
        if p["spfm_bound"] >= need.spfm and (p["lfm_bound"] is None or p["lfm_bound"] >= need.lfm) \
                and p["pmhf_fit_bound"] < need.pmhf_fit:
            area = sum(o.area for o in chosen)
            best = area if best is None else min(best, area)
    if best is None:
        with pytest.raises(opt.OptimiseError, match="needs >= 98.00%|needs >= 81.00%|needs < 100"):
            opt.optimise(problem, "C", headroom=0.01)
    else:
        assert opt.optimise(problem, "C", headroom=0.01).area == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_optimal_assignment_on_the_toy_campaign():
    blocks = opt.blocks_from_campaign(_meta(), _results())
    problem = opt.build_problem(blocks, _area(blocks), opt.model_for(blocks))
    solution = opt.optimise(problem, "D")
    # Parity is cheapest and catches every single-bit upset; the 7-bit control block is left
    # unprotected only if SPFM allows it (its 7 bits at 0.01 FIT are 0.5% of the raw rate).
    assert set(solution.assignment.values()) <= {"none", "parity"}
    assert solution.assignment["core.buf"] == "parity" and solution.assignment["core.pe_*"] == "parity"
    assert solution.prediction["spfm_bound"] >= 0.99
    assert opt.optimise(problem, "QM").area == 0
    section = opt.protect_section(solution)
    assert all(set(e) == {"match", "mechanism"} and e["mechanism"] != "none" for e in section)
    opt.check_section(section, problem.blocks)
    with pytest.raises(opt.OptimiseError, match="matches no block"):
        opt.check_section([{"match": "buf_*", "mechanism": "secded"}], problem.blocks)


# ------------------------------------------------------------------------------ area


def test_area_estimate_orders_the_mechanisms():
    blocks = opt.blocks_from_campaign(_meta(), _results())
    rows = [{"name": b.name, "kind": b.kind, "sites": list(b.sites), "mechanisms": opt.costed_mechanisms(b)}
            for b in blocks]
    table = protect_area.estimate(rows, transistors=100_000, output_bits=40)
    assert table["estimated"] and table["baseline"] == 100_000
    out = table["blocks"]["core.out"]
    assert out["parity"] < out["dmr"] < out["tmr"] and out["parity"] < out["secded"]
    # Register DMR / TMR copy the flip-flops with their enable multiplexers and add a comparator / voter.
    copy = 32 * (protect_area.COSTS["dff"] + protect_area.COSTS["mux"])
    alarm = protect_area.COSTS["dff"] + protect_area.COSTS["or"]  # sticky flag; OR of 1 site + itself
    assert out["dmr"] == pytest.approx(copy + protect_area.comparator(32) + alarm)
    assert out["tmr"] == pytest.approx(2 * copy + protect_area.voter(32) + alarm)
    assert "secded" not in table["blocks"]["core"]  # a 1-bit register: not offered
    # A compute block's DMR is a second instance: its whole share of the design.
    compute = protect_area.estimate([{"name": "c", "kind": "compute", "sites": [SITES[2]], "mechanisms": ["dmr"]},
                                     {"name": "r", "kind": "registers", "sites": [SITES[6]], "mechanisms": []}],
                                    transistors=24_000, output_bits=8)
    assert compute["blocks"]["c"]["dmr"] > 24_000 * 16 / 24
    assert table["lockstep"]["dmr"] == 100_000 + protect_area.comparator(40)
    assert table["lockstep"]["tmr"] == 200_000 + protect_area.voter(40)


def test_area_measure_subtracts_the_baseline():
    calls = []
    site = {"path": "core.acc.x", "kind": "register", "width": 8, "block": "core.acc"}
    block = {"name": "acc", "kind": "registers", "sites": [site], "mechanisms": ["parity", "tmr", "dmr"]}

    def synthesize_with(section):
        calls.append(section)
        # transistors, flip-flops: the DMR replica was merged (no flip-flop added), TMR kept its 16
        return {"parity": {"transistors": 1010, "ff": 51}, "tmr": {"transistors": 1300, "ff": 66},
                "dmr": {"transistors": 1020, "ff": 50}}[section[0]["mechanism"]]

    table = protect_area.measure([block], baseline={"transistors": 1000, "ff": 50}, output_bits=4,
                                 synthesize_with=synthesize_with)
    analytic = protect_area.estimate([block], transistors=1000, output_bits=4)["blocks"]["acc"]
    assert table["blocks"] == {"acc": {"parity": 10, "tmr": 300, "dmr": analytic["dmr"]}} and not table["estimated"]
    assert calls[0] == [{"match": "acc", "mechanism": "parity"}] and len(calls) == 3
    assert len(table["notes"]) == 1 and table["notes"][0].startswith("acc dmr: synthesis kept +0 flip-flops")


def test_area_measure_skips_a_variant_that_fails_to_build():
    """A variant whose generation or synthesis raises is one line in ``skipped`` and no choice; the rest
    are measured."""
    site = {"path": "core.acc.x", "kind": "register", "width": 8, "block": "core.acc"}
    block = {"name": "acc", "kind": "registers", "sites": [site], "mechanisms": ["parity", "secded", "tmr"]}

    def synthesize_with(section):
        if section[0]["mechanism"] == "secded":
            raise AttributeError("'SwitchValue' object has no attribute 'as_value'\nmore detail")
        return {"transistors": 1100, "ff": 80}

    table = protect_area.measure([block], baseline={"transistors": 1000, "ff": 50}, output_bits=4,
                                 synthesize_with=synthesize_with)
    assert table["blocks"] == {"acc": {"parity": 100, "tmr": 100}}
    assert table["skipped"] == ["acc secded: the variant failed to build (AttributeError: 'SwitchValue' object "
                                "has no attribute 'as_value'); not a choice"]
    assert table["skipped"][0] in table["notes"]


def test_cli_reports_a_variant_that_fails_to_build_as_one_line(campaign_db, tmp_path, capsys, monkeypatch):
    from npuforge.cli import protect as protect_cli

    db, _ = campaign_db
    # The toy kind is not registered: measured like a kind with protect: (the area table asks first), but the
    # written file is not validated as a config of it (the run asks afterwards).
    answers = iter([True])
    monkeypatch.setattr(protect_cli, "_kind_takes_protect", lambda design: next(answers, False))
    monkeypatch.setattr(protect_cli, "accepted_mechanisms",
                        lambda design, blocks: {b.name: opt.costed_mechanisms(b) for b in blocks})

    def fake_synth(design, build_root, status):
        section = design.get("protect", [])
        if section == [{"match": "core.out", "mechanism": "tmr"}]:
            raise RuntimeError("elaboration failed")
        return {"transistors": 1000 + 10 * len(section), "ff": 1000 + 40 * len(section)}

    monkeypatch.setattr(protect_cli, "_synth_area", fake_synth)
    out = tmp_path / "p.yaml"
    assert cli.main(["protect", str(db), "--target", "C", "-o", str(out)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ["npuforge: warning: core.out tmr: the variant failed to build (RuntimeError: elaboration "
                        "failed); not a choice"]
    prediction = json.loads(out.with_name("p.prediction.json").read_text())
    row = next(row for row in prediction["blocks"] if row["name"] == "core.out")
    assert "tmr" not in row["options"] and row["mechanism"] != "tmr"


def test_area_table_file_errors(tmp_path):
    path = tmp_path / "area.yaml"
    for text, message in (("blocks: {core.out: {parity: 5}}\n", "baseline"),
                          ("baseline: 10\nblocks: {nope: {parity: 5}}\n", "blocks.nope: not a block"),
                          ("baseline: 10\nblocks: {core.out: {magic: 5}}\n", "not a mechanism"),
                          ("baseline: 10\nblocks: {core.out: {parity: -1}}\n", "a number >= 0"),
                          ("baseline: 10\nblocks: {}\ncoverage: {parity: 2}\n", "coverage")):
        path.write_text(text)
        with pytest.raises(Exception, match=message) as error:
            protect_area.load_table(path, ["core.out"], list(opt.MECHANISMS))
        assert "\n" not in str(error.value)
    path.write_text("baseline: 10\nblocks: {core.out: {parity: 5}}\ncoverage: {residue: 0.95}\n")
    table = protect_area.load_table(path, ["core.out"], list(opt.MECHANISMS))
    assert table["blocks"] == {"core.out": {"parity": 5}} and table["coverage"] == {"residue": 0.95}


# ------------------------------------------------------------------------------- CLI


@pytest.fixture
def campaign_db(tmp_path):
    db = tmp_path / "toy.sqlite"
    with CampaignStore.open(db, create=_meta()) as store:
        store.add(_results())
    blocks = opt.blocks_from_campaign(_meta(), _results())
    area = tmp_path / "area.yaml"
    area.write_text(yaml.safe_dump({"baseline": 50_000, "unit": "transistors", "blocks": _area(blocks)}))
    return db, area


def _fails(capsys, *argv) -> str:
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("npuforge: error:") and err.count("\n") == 1, err
    return err


def test_cli_protect_then_report_predicted(campaign_db, tmp_path, capsys):
    db, area = campaign_db
    out = tmp_path / "out" / "protected.yaml"
    assert cli.main(["protect", str(db), "--target", "D", "-o", str(out), "--area", str(area)]) == 0
    printed = capsys.readouterr().out
    assert "full DMR" in printed and "Ethos-U55" in printed and "SPFM" in printed
    config = yaml.safe_load(out.read_text())
    assert config["kind"] == "toy" and config["protect"]
    prediction = json.loads(out.with_name("protected.prediction.json").read_text())
    assert prediction["protect"] == config["protect"] and prediction["target_asil"] == "D"
    assert prediction["predicted"]["spfm_bound"] >= 0.99 and not prediction["area"]["estimated"]
    assert prediction["area"]["selected_pct"] < prediction["area"]["full_dmr_pct"] < prediction["area"]["full_tmr_pct"]
    # The report shows predicted beside measured, in the table, the JSON and the HTML.
    report_json, html = tmp_path / "r.json", tmp_path / "r.html"
    assert cli.main(["report", str(db), "--predicted", str(out), "--json", str(report_json),
                     "--html", str(html)]) == 0
    assert "vs measured" in capsys.readouterr().out
    compared = json.loads(report_json.read_text())["predicted"]
    spfm = next(row for row in compared["rows"] if row["key"] == "spfm")
    assert spfm["predicted_bound"] == pytest.approx(prediction["predicted"]["spfm_bound"])
    assert spfm["measured"] == pytest.approx(json.loads(report_json.read_text())["spfm"])
    assert 'id="predicted"' in html.read_text()
    assert compared["same_design"]  # the report of the campaign the prediction came from says so
    # Stricter FIT per flop: the same campaign, a different prediction.
    out2 = tmp_path / "p2.yaml"
    assert cli.main(["protect", str(db), "--target", "B", "-o", str(out2), "--area", str(area),
                     "--fit-flop", "0.1", "--fit-sram", "0.001"]) == 0
    assert cli.main(["protect", str(db), "--target", "B", "-o", str(out2), "--area", str(area),
                     "--fit-flop", "0.1", "--fit-sram", "0.001", "--headroom", "0.5"]) == 0
    second = json.loads(out2.with_name("p2.prediction.json").read_text())
    assert second["headroom"] == 0.005 and second["predicted"]["spfm_bound"] >= 0.905
    assert second["target_asil"] == "B" and second["fit_per_bit"] == {"register": 0.1, "memory": 0.001}
    assert prediction["fit_per_bit"] == {"register": 0.01, "memory": 0.05}


def test_cli_protect_errors_are_one_line_and_write_nothing(campaign_db, tmp_path, capsys):
    db, area = campaign_db
    out = tmp_path / "p.yaml"
    small = tmp_path / "small.yaml"
    small.write_text("baseline: 100\nblocks: {core.out: {parity: 1}}\n")
    assert "best SPFM" in _fails(capsys, "protect", str(db), "--target", "D", "-o", str(out), "--area", str(small))
    assert not out.exists() and not out.with_name("p.prediction.json").exists()
    assert "--fit-flop" in _fails(capsys, "protect", str(db), "-o", str(out), "--area", str(area), "--fit-flop", "-1")
    assert "--target" in _fails(capsys, "protect", str(db), "--target", "E", "-o", str(out), "--area", str(area))
    assert "percentage points" in _fails(capsys, "protect", str(db), "-o", str(out), "--area", str(area),
                                         "--headroom", "12")
    assert "directory" in _fails(capsys, "protect", str(db), "-o", str(tmp_path), "--area", str(area))
    assert ".yaml" in _fails(capsys, "protect", str(db), "-o", str(tmp_path / "p.txt"), "--area", str(area))
    assert "no such campaign" in _fails(capsys, "protect", str(tmp_path / "nope.sqlite"), "-o", str(out))
    bad = tmp_path / "bad.yaml"
    bad.write_text("baseline: 100\nblocks: {buf_a: {parity: 1}}\n")
    assert "not a block" in _fails(capsys, "protect", str(db), "-o", str(out), "--area", str(bad))
    assert "measure" in _fails(capsys, "protect", str(db), "-o", str(out), "--area-model", "measure")
    assert not out.exists()
    assert "--predicted" in _fails(capsys, "report", str(db), "--predicted", str(tmp_path / "none.json"))
    (tmp_path / "junk.json").write_text("{}")
    assert "not a prediction" in _fails(capsys, "report", str(db), "--predicted", str(tmp_path / "junk.json"))


def test_cli_estimates_the_area_from_one_synthesis(campaign_db, tmp_path, capsys, monkeypatch):
    from npuforge.cli import protect as protect_cli

    db, _ = campaign_db
    synthesised = []

    def fake_synth(design, build_root, status):
        synthesised.append(design)
        return {"transistors": 50_000, "ff": 300}

    monkeypatch.setattr(protect_cli, "_synth_area", fake_synth)
    out = tmp_path / "est.yaml"
    assert cli.main(["protect", str(db), "--target", "C", "-o", str(out)]) == 0
    assert "ESTIMATED" in capsys.readouterr().out and "ESTIMATED" in out.read_text()
    prediction = json.loads(out.with_name("est.prediction.json").read_text())
    assert prediction["area"]["estimated"] and prediction["area"]["baseline"] == 50_000
    assert synthesised == [{"kind": "toy", "name": "toy"}]  # the unprotected design, once


def test_measured_area_synthesises_each_variant(campaign_db, monkeypatch):
    """With a kind that takes protect:, every (block, mechanism) is synthesised with only that block protected."""
    import argparse

    from npuforge.cli import protect as protect_cli

    db, _ = campaign_db
    with CampaignStore.open(db) as store:
        meta, results = store.meta(), list(store.results())
    blocks = opt.blocks_from_campaign(meta, results)
    monkeypatch.setattr(protect_cli, "_kind_takes_protect", lambda design: True)
    # The toy kind is not registered: accept every mechanism but TMR, as a generator might.
    monkeypatch.setattr(protect_cli, "accepted_mechanisms",
                        lambda design, blocks: {b.name: [m for m in opt.costed_mechanisms(b) if m != "tmr"]
                                                for b in blocks})

    def fake_synth(design, build_root, status):  # 1000, plus 10 per character of the protected block's name
        section = design.get("protect", [])
        assert len(section) <= 1
        return {"transistors": 1000 + sum(10 * len(entry["match"]) for entry in section), "ff": 1000}

    monkeypatch.setattr(protect_cli, "_synth_area", fake_synth)

    class Status:
        def update(self, message):
            pass

    args = argparse.Namespace(area=None, area_model="auto", build_dir=None)
    table = protect_cli.area_table(args, meta["design"], meta["manifest"], blocks, Status())
    assert not table["estimated"] and table["baseline"] == 1000
    out = next(b for b in blocks if b.name == "core.out")
    # DMR added no flip-flop in this fake synthesis: taken as merged replicas, priced analytically.
    assert {m: a for m, a in table["blocks"]["core.out"].items() if m != "dmr"} == {
        m: 10 * len("core.out") for m in opt.costed_mechanisms(out) if m not in ("tmr", "dmr")}
    assert table["blocks"]["core.out"]["dmr"] > 32 * protect_area.COSTS["dff"] and table["notes"]
    assert set(table["blocks"]) == {b.name for b in blocks}


def test_protect_section_round_trips_through_the_npu_tile_schema():
    """The config npuforge protect writes loads as an npu_tile config with the same protect: entries."""
    from pathlib import Path

    from gen.config.loader import parse_config_text
    from hw.npu import BLOCKS
    from npuforge.cli import protect as protect_cli

    design = yaml.safe_load((Path(__file__).parent.parent / "configs" / "npu_tile_8x8.yaml").read_text())
    section = [{"match": "buf_a", "mechanism": "secded"}, {"match": "buf_b", "mechanism": "parity"},
               {"match": "acc", "mechanism": "tmr"}, {"match": "post", "mechanism": "dmr"}]
    opt.check_section(section, list(BLOCKS))
    prediction = {"campaign": "c", "target_asil": "D", "confidence": 0.95,
                  "predicted": {"spfm_bound": 0.995, "lfm_bound": 1.0, "pmhf_fit_bound": 0.01},
                  "area": {"selected_pct": 20.0, "estimated": True}}
    text = protect_cli._config_text(design, section, prediction, takes_protect=True)
    config = parse_config_text(text, "round-trip").model_dump(mode="json")
    assert [{k: e[k] for k in ("match", "mechanism")} for e in config["protect"]] == section


def test_choices_are_what_the_generator_accepts():
    """For a kind with protect:, only mechanisms its config accepts are choices (asked of its validation)."""
    from pathlib import Path

    from gen.config import load_config
    from npuforge.cli import protect as protect_cli

    design = load_config(Path(__file__).parent.parent / "configs" / "npu_tile_8x8.yaml").normalized()
    register = {"path": "core.acc.x", "kind": "register", "width": 16, "block": "core.acc"}
    word = {"path": "core.buf_a.mem", "kind": "memory", "width": 8, "depth": 4, "block": "core.buf_a"}
    blocks = [opt.Block("acc", "registers", (register,), (opt.Stratum("register", 16, 1e-4, 10, 5),)),
              opt.Block("buf_a", "memory", (word,), (opt.Stratum("memory", 32, 1e-3, 10, 5),))]
    accepted = protect_cli.accepted_mechanisms(design, blocks)
    assert set(accepted["buf_a"]) <= {"parity", "secded"} and "tmr" not in accepted["buf_a"]
    assert accepted["acc"], "the tile protects its accumulator registers"
    area = {b.name: {m: 1.0 for m in opt.costed_mechanisms(b)} for b in blocks}
    problem = opt.build_problem(blocks, area, opt.Model(), allowed=accepted)
    for block in blocks:
        assert {o.mechanism for o in problem.options[block.name]} == {"none", *accepted[block.name]}
