"""sim/fault/report.py and ``npuforge report``: the report's numbers on a hand-made campaign, the table, the CLI."""

import io
import json
from itertools import count

import pytest
from rich.console import Console

from npuforge import cli
from sim.fault import metrics
from sim.fault.model import Fault, FaultModel, InjectionResult, Outcome
from sim.fault.report import ReportError, build_report, group_name, render_table
from sim.fault.store import CampaignStore

SITES = [
    {"path": "core.a.reg", "kind": "register", "width": 10, "block": "core.a", "aliases": []},
    {"path": "core.b.reg", "kind": "register", "width": 20, "block": "core.b", "aliases": []},
    {"path": "core.c.mem", "kind": "memory", "width": 8, "depth": 4, "block": "core.c", "aliases": []},
]
MECHANISMS = [
    {"name": "parity_b", "covers": ["core.b.*"], "alarm": "parity_err"},
    {"name": "tmr_c", "covers": ["core.c.mem"], "reports": False},
]
# outcomes per site: masked, sdc, detected, corrected, hang
OUTCOMES = {
    "core.a.reg": (6, 3, 0, 0, 1),
    "core.b.reg": (10, 2, 7, 1, 0),
    "core.c.mem": (12, 2, 0, 2, 0),
}


def _manifest(mechanisms=MECHANISMS, sites=SITES):
    bits = sum(site["width"] * site.get("depth", 1) for site in sites)
    manifest = {"top": "toy", "fault_sites": sites, "fault_site_bits": bits}
    if mechanisms is not None:
        manifest["mechanisms"] = mechanisms
    return manifest


def _meta(manifest, **extra):
    window = 50
    return {"config": {"name": "toy_seu", "faults": {"models": ["seu", "mem_seu"], "stratify": "none"}},
            "design": {"name": "toy"}, "design_hash": "0" * 64, "manifest": manifest,
            "reference": {"cycles": window}, "window": window, "population": manifest["fault_site_bits"] * window,
            "fit_per_bit": {"register": 0.5, "memory": 2.0}, "target_asil": "D", **extra}


def _results(outcomes=OUTCOMES, *, model_of=None, start=0):
    """InjectionResults with the given outcome counts per site; SDCs differ in 2 elements by up to 7."""
    index = count(start)
    results = []
    for path, counts in outcomes.items():
        model = (model_of or {}).get(path) or (FaultModel.MEM_SEU if path.endswith("mem") else FaultModel.SEU)
        for outcome, n in zip(Outcome, counts):
            for i in range(n):
                fault = Fault(index=next(index), model=model, site=path, bit=i % 8, cycle=i,
                              word=0 if model is FaultModel.MEM_SEU else None)
                sdc = outcome is Outcome.SDC
                results.append(InjectionResult(fault, outcome, differing=2 if sdc else 0,
                                               max_abs_diff=7 - i if sdc else 0, cycles=50))
    return results


def test_hand_computed_campaign():
    """Three sites, FIT/bit 0.5 (registers) and 2.0 (memory); outcomes masked/sdc/detected/corrected/hang.

    core.a.reg: 10 bits x 0.5 = 5 FIT, no mechanism, no watchdog; 6/3/0/0/1 of 10:
        safe 6/10 -> 3 FIT; single-point (3 sdc + 1 hang) 4/10 -> 2 FIT.
    core.b.reg: 20 x 0.5 = 10 FIT, covered by parity_b; 10/2/7/1/0 of 20:
        safe 10/20 -> 5; residual 2/20 -> 1; multi-point detected 8/20 -> 4.
    core.c.mem: 8 x 4 = 32 bits x 2.0 = 64 FIT, covered by tmr_c which does not report; 12/2/0/2/0 of 16:
        latent (masked) 12/16 -> 48; residual 2/16 -> 8; multi-point detected 2/16 -> 8.
    Totals: l = 79; l_SPF = 2; l_RF = 9; l_MPF,detected = 12; l_MPF,latent = 48; safe 8.
    SPFM = 1 - 11/79 = 68/79 = 86.08%; LFM = 1 - 48/(79 - 11) = 20/68 = 29.41%; PMHF = 11 FIT.
    ASIL: SPFM < 90% rules out B..D; PMHF 11 < 1000: A. To D: SPFM 68/79 - 0.99, LFM 20/68 - 0.9, PMHF 10 - 11.
    DC: parity_b 1 - 2/10 = 80% (2 sdc of 10 dangerous); tmr_c 1 - 2/4 = 50%.
    """
    report = build_report(_meta(_manifest()), _results())
    assert report["lambda_fit"] == pytest.approx({"safe": 8, "single_point": 2, "residual": 9,
                                                  "multi_point_detected": 12, "multi_point_latent": 48})
    assert report["spfm"] == pytest.approx(68 / 79)
    assert report["lfm"] == pytest.approx(20 / 68)
    assert report["pmhf_fit"] == pytest.approx(11)
    assert report["asil"] == "A" and report["target_asil"] == "D" and report["meets_target"] is False
    assert report["margins"] == pytest.approx({"spfm": 68 / 79 - 0.99, "lfm": 20 / 68 - 0.9, "pmhf_fit": -1.0})
    assert report["injections"] == report["rated_injections"] == 46
    dc = {m["name"]: m for m in report["mechanisms"]}
    assert (dc["parity_b"]["dangerous"], dc["parity_b"]["escapes"], dc["parity_b"]["dc"]) == (10, 2, pytest.approx(0.8))
    assert (dc["tmr_c"]["dangerous"], dc["tmr_c"]["escapes"], dc["tmr_c"]["dc"]) == (4, 2, pytest.approx(0.5))
    assert (dc["parity_b"]["dc_low"], dc["parity_b"]["dc_high"]) == metrics.clopper_pearson_interval(8, 10)

    # Intervals: each stratum's Clopper-Pearson bounds times its raw rate, summed.
    cp = metrics.clopper_pearson_interval
    dangerous = [(5, 4, 10), (10, 2, 20), (64, 2, 16)]  # (raw FIT, dangerous, injections)
    assert report["pmhf_fit_low"] == pytest.approx(sum(raw * cp(k, n)[0] for raw, k, n in dangerous))
    assert report["pmhf_fit_high"] == pytest.approx(sum(raw * cp(k, n)[1] for raw, k, n in dangerous))
    assert report["spfm_low"] == pytest.approx(1 - report["pmhf_fit_high"] / 79)
    latent_high = 64 * cp(12, 16)[1]
    # Pessimistic LFM: the most latent faults over the fewest multi-point ones, clamped at 0.
    assert 1 - latent_high / (79 - report["pmhf_fit_high"]) < 0 and report["lfm_low"] == 0.0
    assert report["lfm_high"] == pytest.approx(1 - 64 * cp(12, 16)[0] / (79 - report["pmhf_fit_low"]))
    assert report["asil_conservative"] == "A" and report["meets_target_conservative"] is False

    rows = {row["name"]: row for row in report["blocks"]}
    assert list(rows) == ["core.a", "core.b", "core.c"]
    a, b, c = rows.values()
    assert (a["bits"], a["injections"], a["masked"], a["sdc"], a["detected"], a["corrected"], a["hang"]) == \
        (10, 10, 6, 3, 0, 0, 1)
    assert (a["sdc_low"], a["sdc_high"]) == cp(3, 10)
    assert a["fit"] == pytest.approx(2) and (a["fit_low"], a["fit_high"]) == pytest.approx((5 * cp(4, 10)[0],
                                                                                            5 * cp(4, 10)[1]))
    assert b["classes"] == {"safe": 10, "single_point": 0, "residual": 2, "multi_point_detected": 8,
                            "multi_point_latent": 0}
    assert c["bits"] == 32 and c["fit_raw"] == 64 and c["fit"] == pytest.approx(8)
    assert (a["max_differing"], a["max_abs_diff"]) == (2, 7)
    total = report["total"]
    assert (total["injections"], total["sdc"], total["hang"]) == (46, 7, 1)
    assert (total["sdc_low"], total["sdc_high"]) == cp(7, 46)
    assert report["margin"] == pytest.approx(metrics.leveugle_margin(46, 62 * 50))
    assert "safe; multi_point_latent at sites covered by tmr_c" in report["iso_mapping"]["masked"]
    assert report["iso_mapping"]["hang"].startswith("as sdc")


REQUIRED_TOP = {"spfm", "lfm", "pmhf_fit", "asil", "target_asil", "injections", "assumptions", "blocks"}
REQUIRED_BLOCK = {"name", "bits", "injections", "masked", "sdc", "detected", "corrected", "hang", "sdc_low",
                  "sdc_high"}


def test_json_layout():
    report = build_report(_meta(_manifest()), _results(), interval="wilson")
    assert REQUIRED_TOP <= set(report)
    assert {"iso_mapping", "interval", "grouping", "mechanisms", "total", "lambda_fit"} <= set(report)
    for row in [*report["blocks"], report["total"]]:
        assert REQUIRED_BLOCK <= set(row)
    assert report["interval"] == {"method": "wilson", "confidence": 0.95}
    assert (report["blocks"][0]["sdc_low"], report["blocks"][0]["sdc_high"]) == metrics.wilson_interval(3, 10)
    assert all(isinstance(line, str) for line in report["assumptions"])
    assert json.loads(json.dumps(report)) == report  # plain JSON types only


def test_no_mechanism_and_watchdog():
    """Without mechanisms every sdc and hang is single-point; a watchdog turns hangs into detected faults.

    No mechanism: l_SPF = 5 x 4/10 + 10 x 2/20 + 64 x 2/16 = 2 + 1 + 8 = 11, nothing latent: LFM = 100%.
    Watchdog covering core.a.reg: its sdc are residual (3/10 -> 1.5 FIT), its hang detected (1/10 -> 0.5).
    """
    bare = build_report(_meta(_manifest(mechanisms=None)), _results())
    assert bare["lambda_fit"]["single_point"] == pytest.approx(11)
    assert bare["lambda_fit"]["residual"] == bare["lambda_fit"]["multi_point_latent"] == 0
    assert bare["lfm"] == 1.0 and bare["lfm_low"] == 1.0 and bare["mechanisms"] == []
    assert any("declares no safety mechanism" in line for line in bare["assumptions"])
    assert any("a hang counts like an SDC" in line for line in bare["assumptions"])

    watchdog = [{"name": "wd", "covers": ["core.a.reg"], "detects_hang": True}]
    guarded = build_report(_meta(_manifest(mechanisms=watchdog)), _results())
    assert guarded["lambda_fit"]["residual"] == pytest.approx(1.5)
    assert guarded["lambda_fit"]["single_point"] == pytest.approx(1 + 8)
    assert guarded["lambda_fit"]["multi_point_detected"] == pytest.approx(0.5 + 4 + 8)
    assert guarded["iso_mapping"]["hang"] == "multi_point_detected (watchdog: wd)"
    assert guarded["mechanisms"][0]["escapes"] == 3 and guarded["mechanisms"][0]["dangerous"] == 4


def test_zero_escapes_give_the_zero_failure_coverage():
    outcomes = {"core.a.reg": (0, 0, 0, 0, 0), "core.b.reg": (1, 0, 299, 0, 0), "core.c.mem": (5, 0, 0, 0, 0)}
    report = build_report(_meta(_manifest()), _results(outcomes))
    parity = report["mechanisms"][0]
    assert parity["dc"] == 1.0 and parity["dc_zero_failure"] == pytest.approx(metrics.zero_failure_coverage(299))
    assert parity["dc_zero_failure"] >= 0.99
    # core.a had no injection: point from the design's pooled fractions, bounds 0 .. its whole rate.
    a = report["blocks"][0]
    assert a["injections"] == 0 and a["fit_estimated_from_design"] and (a["fit_low"], a["fit_high"]) == (0, 5)
    assert any("core.a/register" in line and "had no injection" in line for line in report["assumptions"])


def test_grouping_and_stratified_sampling():
    """Two PEs of 10 bits (FIT/bit 0.5: 5 FIT each): pe_0_0 has 10 sdc in 20 injections, pe_0_1 0 in 5.

    Uniform sampling pools the group: 10 FIT x 10/25 = 4 FIT dangerous.
    Sampled by block, each block is its own stratum: 5 x 10/20 + 5 x 0/5 = 2.5 FIT.
    """
    sites = [{"path": f"core.pe_0_{i}.acc", "kind": "register", "width": 10, "block": f"core.pe_0_{i}",
              "aliases": []} for i in range(2)]
    results = _results({"core.pe_0_0.acc": (10, 10, 0, 0, 0), "core.pe_0_1.acc": (5, 0, 0, 0, 0)})
    manifest = _manifest(mechanisms=None, sites=sites)
    pooled = build_report(_meta(manifest), results)
    assert [row["name"] for row in pooled["blocks"]] == ["core.pe_*"]
    assert pooled["blocks"][0]["members"] == ["core.pe_0_0", "core.pe_0_1"]
    assert pooled["pmhf_fit"] == pytest.approx(4.0) and pooled["grouping"]["by"] == "group"
    meta = _meta(manifest)
    meta["config"]["faults"]["stratify"] = "block"
    stratified = build_report(meta, results)
    assert stratified["pmhf_fit"] == pytest.approx(2.5)
    assert stratified["blocks"][0]["fit"] == pytest.approx(2.5)
    by_block = build_report(_meta(manifest), results, by="block")
    assert [row["name"] for row in by_block["blocks"]] == ["core.pe_0_0", "core.pe_0_1"]
    assert by_block["pmhf_fit"] == pytest.approx(2.5)

    assert group_name("core.pe_10_3") == "core.pe_*" and group_name("core.lane12") == "core.lane*"
    assert group_name("") == "top" and group_name("core.pe_1_2", "block") == "core.pe_1_2"
    with pytest.raises(ValueError, match="grouping: got 'pe'"):
        group_name("core", "pe")


def test_mbu_injections_are_counted_but_not_rated():
    """seu and mbu on the same registers: the rates use seu (FIT/bit is a single-bit rate); mbu is listed."""
    extra = _results({"core.a.reg": (0, 5, 0, 0, 0)}, model_of={"core.a.reg": FaultModel.MBU}, start=1000)
    report = build_report(_meta(_manifest()), _results() + extra)
    assert report["pmhf_fit"] == pytest.approx(11)  # as without the mbu injections
    assert report["injections"] == 51 and report["rated_injections"] == 46
    assert report["models"] == {"mbu": 5, "mem_seu": 16, "seu": 30}
    assert report["rate_models"] == {"memory": "mem_seu", "register": "seu"}
    assert report["blocks"][0]["by_model"]["mbu"]["sdc"] == 5
    assert any("mbu (5)" in line for line in report["assumptions"])
    # Only mbu on registers: then mbu stands for the register rate.
    only_mbu = build_report(_meta(_manifest()), [r for r in extra])
    assert only_mbu["rate_models"] == {"register": "mbu"}
    assert only_mbu["blocks"][0]["fit"] == pytest.approx(5.0)


def test_report_errors():
    meta = _meta(_manifest())
    with pytest.raises(ReportError, match="no injection results yet"):
        build_report(meta, [])
    stray = InjectionResult(Fault(index=3, model=FaultModel.SEU, site="core.x", bit=0, cycle=0), Outcome.SDC)
    with pytest.raises(ReportError, match="result #3: fault site 'core.x' is not in the campaign's manifest"):
        build_report(meta, [stray])
    with pytest.raises(ReportError, match="fit_per_bit: has no rate for fault sites of kind 'memory'"):
        build_report({**meta, "fit_per_bit": {"register": 1.0}}, _results())
    with pytest.raises(ReportError, match="mechanisms\\[0\\].covers: .* matches no fault site"):
        build_report(_meta(_manifest(mechanisms=[{"name": "x", "covers": ["nothing"]}])), _results())
    with pytest.raises(ReportError, match="campaign meta lacks window"):
        build_report({k: v for k, v in meta.items() if k != "window"}, _results())
    with pytest.raises(ValueError, match="interval method"):
        build_report(meta, _results(), interval="normal")


def _render(report) -> str:
    out = io.StringIO()
    render_table(report, Console(file=out, width=200, color_system=None))
    return out.getvalue()


def test_table_renders():
    text = _render(build_report(_meta(_manifest()), _results()))
    for expected in ("campaign toy_seu on toy: 46 injections", "core.a", "core.b", "core.c", "design",
                     "30.00% [6.67, 65.25]",  # core.a: 3 sdc of 10, Clopper-Pearson
                     "SPFM", "86.08%", "29.41%", "PMHF (FIT, first order)", ">= 99%", "< 10",
                     "ASIL reached: A (point estimates), A (at the 95% bounds); target D missed",
                     "diagnostic coverage per mechanism", "parity_b", "80.00%",
                     "hang -> as sdc", "assumptions:", "PMHF is first order"):
        assert expected in text, expected
    extra = _results({"core.a.reg": (0, 5, 0, 0, 0)}, model_of={"core.a.reg": FaultModel.MBU}, start=1000)
    text = _render(build_report(_meta(_manifest()), _results() + extra))
    assert "design outcomes by fault model" in text and "seu (rates)" in text and "mbu " in text


def test_sdc_with_extra_beats_is_counted_and_an_unwatched_tail_is_said():
    results = _results()
    sdc = [n for n, r in enumerate(results) if r.outcome is Outcome.SDC and r.fault.site == "core.b.reg"]
    results[sdc[0]] = InjectionResult(results[sdc[0]].fault, Outcome.SDC, differing=4, cycles=56, extra_beats=1)
    report = build_report(_meta(_manifest()), results)
    rows = {row["name"]: row for row in report["blocks"]}
    assert (rows["core.b"]["sdc_extra_beats"], rows["core.a"]["sdc_extra_beats"]) == (1, 0)
    assert (report["total"]["sdc_extra_beats"], report["total"]["sdc"]) == (1, 7)
    text = _render(report)
    assert "sdc with output beats after the expected ones (extra_beats): 1 of 7" in text
    assert "watched past its last expected output beat" in text
    old = build_report(_meta(_manifest(), format=1), _results())  # a database of before extra_beats
    assert not old["extra_beats_watched"] and report["extra_beats_watched"]
    text = _render(old)
    assert "extra_beats" not in text.split("assumptions:")[0] and "database is of format 1" in text


def _store(path, results, manifest=None):
    with CampaignStore.open(path, create=_meta(manifest or _manifest())) as store:
        store.add(results)


def test_cli_report_from_a_store(tmp_path, capsys):
    db = tmp_path / "toy.db"
    _store(db, _results())
    out_json = tmp_path / "out" / "report.json"
    assert cli.main(["report", str(db), "--json", str(out_json)]) == 0
    stdout = capsys.readouterr().out
    assert "86.08%" in stdout and f"wrote {out_json}" in stdout
    report = json.loads(out_json.read_text())
    assert report == json.loads(json.dumps(build_report(_meta(_manifest()), _results())))
    assert [p.name for p in out_json.parent.iterdir()] == ["report.json"]  # no temporary left
    assert cli.main(["report", str(db), "--by", "block", "--interval", "wilson"]) == 0
    assert "95% wilson" in capsys.readouterr().out


def test_cli_report_errors(tmp_path, capsys):
    def fails(*args) -> tuple[int, str]:
        code = cli.main(["report", *map(str, args)])
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        return code, err

    code, err = fails(tmp_path / "missing.db")
    assert code == 2 and "missing.db: no such campaign database" in err
    (tmp_path / "text.db").write_text("not sqlite at all, just text that is long enough" * 10)
    code, err = fails(tmp_path / "text.db")
    assert code == 2 and "text.db: not a campaign database" in err
    empty = tmp_path / "empty.db"
    _store(empty, [])
    code, err = fails(empty)
    assert code == 1 and "no injection results yet" in err
    db = tmp_path / "toy.db"
    _store(db, _results())
    code, err = fails(db, "--json", tmp_path)
    assert code == 2 and "which is a directory" in err
    code, err = fails(db, "--interval", "normal")
    assert code == 2 and "invalid choice: 'normal'" in err


# ------------------------------------------- the commands piped to a file (a CI log, make demo | tee)

def _piped(*args) -> str:
    """``python -m npuforge ARGS`` with stdout a pipe (not a terminal): its stdout; it must succeed."""
    import os
    import subprocess
    import sys

    from conftest import BUILD_ROOT, ROOT

    env = {**os.environ, "NPUFORGE_BUILD_DIR": str(BUILD_ROOT), "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "npuforge", *map(str, args)], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _line_with(out: str, name: str) -> str:
    """The one line of ``out`` whose first table cell is ``name``."""
    lines = [line for line in out.splitlines() if line.strip(" │┃|").startswith(name + " ")]
    assert len(lines) == 1, (name, lines)
    return lines[0]


@pytest.mark.rtl
@pytest.mark.xdist_group("tpe_3x5_w8")
def test_inject_and_report_piped_show_every_name_and_number_whole(tmp_path):
    """Outside a terminal rich used 80 columns: ``core.…`` names and numbers wrapped over lines. Piped,
    every block's row is one line holding its whole name and every number of the report."""
    from conftest import ROOT

    campaign = tmp_path / "small.yaml"
    campaign.write_text(f"kind: campaign\nname: small_piped\ndesign: {ROOT / 'tests' / 'configs' / 'tpe_3x5_w8.yaml'}\n"
                        "workload: {type: gemm, jobs: 2, k: 4, seed: 3}\n"
                        "faults: {models: [seu], samples: 300, seed: 11}\ntarget_asil: D\n")
    db = tmp_path / "small.sqlite"
    out = _piped("inject", campaign, "--db", db, "--workers", "1")
    with CampaignStore.open(db) as store:
        results = list(store.results())
    counts = {o.value: sum(1 for r in results if r.outcome is o) for o in Outcome}
    assert len(results) == 300
    assert f"database {db}\n" in out and "done     300 of 300 injections stored" in out
    outcomes = _line_with(out, "outcomes")
    for name, n in counts.items():
        assert f"{name} {n} ({100 * n / 300:.1f}%)" in outcomes, (name, outcomes)

    report_json = tmp_path / "r.json"
    out = _piped("report", db, "--by", "block", "--json", report_json)
    report = json.loads(report_json.read_text())
    assert "…" not in out and "..." not in out
    assert len(report["blocks"]) >= 15  # one per PE and more: long names, many rows
    for row in [*report["blocks"], report["total"]]:
        line = _line_with(out, row["name"])
        cells = [f"{row['bits']:,}", f"{row['injections']:,}", *(f"{row[o]:,}" for o in
                                                                ("masked", "sdc", "detected", "corrected", "hang")),
                 f"{100 * row['sdc_fraction']:.2f}% [{100 * row['sdc_low']:.2f}, {100 * row['sdc_high']:.2f}]",
                 f"{row['fit']:.3g} [{row['fit_low']:.3g}, {row['fit_high']:.3g}]"]
        for cell in cells:
            assert cell in line, (cell, line)
    spfm = _line_with(out, "SPFM")
    assert f"{100 * report['spfm']:.2f}%" in spfm and f"{100 * report['spfm_high']:.2f}]" in spfm
    assert f"ASIL reached: {report['asil']} (point estimates)" in out

    # npuforge clean knows where that campaign left its builds (a dry run: the tests share them).
    from conftest import BUILD_ROOT

    out = _piped("clean", "--build-dir", BUILD_ROOT, "--dry-run")
    found = {(" ".join(line.split()[2:4]), line.split()[-1]) for line in out.splitlines()
             if line.startswith("would remove ") and "/" in line}
    assert any(what == "harness build" and f"{BUILD_ROOT}/fault-harness/tpe_3x5_w8-" in path for what, path in found)
    assert any(what == "campaign scratch" and path.startswith(f"{BUILD_ROOT}/tpe_3x5_w8-") for what, path in found)


def test_perf_piped_shows_every_operator_whole(tmp_path):
    """The same for a table of long operator names: ``npuforge perf --per-layer``."""
    from conftest import ROOT

    out = _piped("perf", ROOT / "configs" / "moevit" / "tiny.yaml", "--per-layer", "--json", tmp_path / "p.json")
    operators = json.loads((tmp_path / "p.json").read_text())["operators"]
    assert "…" not in out and len(operators) > 10
    for operator in operators:
        assert operator["engine"] in _line_with(out, operator["name"])
