"""Host-side comparison of produced results with the golden results in the vectors."""

from conftest import RTL_CONFIGS

from gen.config import load_config
from sim.tb import tpe


def _vectors():
    cfg = load_config(RTL_CONFIGS["tpe_3x5_w8"])
    return tpe.make_vectors(cfg, seed=4, n_random=3)


def test_identical_results_match():
    vectors = _vectors()
    assert tpe.first_mismatch(vectors, {"jobs": [job["c"] for job in vectors["jobs"]]}) is None


def test_first_wrong_element_is_named():
    vectors = _vectors()
    got = [[list(row) for row in job["c"]] for job in vectors["jobs"]]
    got[4][1][2] -= 7
    got[6][0][0] += 1
    m = tpe.first_mismatch(vectors, {"jobs": got})
    assert (m["job"], m["index"], m["expected"] - m["got"]) == (4, [1, 2], 7)
    assert tpe.describe_mismatch(m).startswith(f"job 4 ({vectors['jobs'][4]['label']}): C[1][2] expected")


def test_missing_jobs_and_short_rows_are_mismatches():
    vectors = _vectors()
    complete = [job["c"] for job in vectors["jobs"]]
    missing = tpe.first_mismatch(vectors, {"jobs": complete[:-1], "stopped": "no further result after 9 cycles"})
    assert missing["job"] == len(complete) - 1 and "no further result" in missing["got"]
    short = [list(job) for job in complete]
    short[2] = [row[:-1] for row in short[2]]
    assert tpe.first_mismatch(vectors, {"jobs": short})["job"] == 2


def test_vectors_carry_edge_cases_and_golden_results():
    vectors = _vectors()
    labels = [job["label"] for job in vectors["jobs"]]
    assert labels[:10] == [f"{name} K={k}" for k in (1, 32) for name in
                           ("zeros", "all max", "all min", "min x max", "checkerboard extremes")]
    all_min = vectors["jobs"][7]  # K = 32, every operand -128
    assert all_min["c"] == [[32 * 128 * 128] * 5] * 3
