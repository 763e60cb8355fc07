"""Weight-stationary systolic array (``SystolicWS``) in Amaranth's own simulator (fast, no Verilator).

Jobs are cut into beats of the ``rows_with_weights`` format (``hw/tpe/interface.py``)
two ways: *alone*, every job's ``K`` weight rows in beats with ``load`` only just
before its rows of ``A`` (``K + M`` beats a job, the old ``weights_then_rows``
shape), and *riding*, the next job's weight rows on this job's row beats from its
first row on (the tightest timing the double-buffered weights must survive: weight
row ``k`` of the next job is written into ``w_next`` at the very edge where this
job's swap reads it). Jobs have random ``K`` in ``1..rows`` and ``M`` in ``1..6``,
some reuse the weights in use (no weight rows), some send weight rows past
``rows`` (dropped). Fields the engine must ignore (``a`` past ``K`` or without
``row``, ``b`` without ``load``) carry random bits. Every row of ``C`` is compared
bit-exactly with the golden model, under random ``valid``/``ready`` and at full
rate, where the latency and the spacing of ``last`` beats must be exact. Arrays
with two operand formats (``A`` and the weights ``B`` of different widths and
signedness, ``mac`` baseline and ``opt1``) run the same streams.
"""

import random
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Fragment, Module, signed, unsigned
from amaranth.sim import Simulator
from engine_streams import OperandFormats, step_streams

from hw.arith import accumulator_width, operand_range
from hw.tpe.systolic_ws import SystolicWS
from sim.golden.tpe import matmul


@dataclass(frozen=True)
class Arch(OperandFormats):
    """``width``/``signed``: ``A``'s format; ``b_width``/``b_signed``: the weights' (default: ``A``'s)."""

    name: str
    rows: int
    cols: int
    width: int
    signed: bool
    acc: int | None = None  # None: the minimum for k_max = rows
    b_width: int | None = None
    b_signed: bool | None = None
    mac: str = "baseline"

    @property
    def acc_width(self) -> int:
        b_width, b_signed = self.b_format
        return self.acc if self.acc is not None else accumulator_width(
            self.width, self.signed, self.rows, b_width=b_width, b_signed=b_signed)

    def build(self) -> SystolicWS:
        return SystolicWS(self.rows, self.cols, self.shape, self.acc_width, b_shape=self.b_shape, mac=self.mac)

    def __str__(self):
        return self.name


ARCHS = [
    Arch("3x2_s8", 3, 2, 8, True),
    Arch("2x4_u6", 2, 4, 6, False),
    Arch("1x1_s4", 1, 1, 4, True),
    Arch("3x2_s8_acc9", 3, 2, 8, True, acc=9),  # narrower than the minimum: sums wrap
]

#: Two operand formats: unsigned pixels times signed weights, the reverse, 24 x 16 bits, opt1.
MIXED = [
    Arch("3x2_u8xs16", 3, 2, 8, False, b_width=16, b_signed=True),
    Arch("2x3_s24xu9", 2, 3, 24, True, b_width=9, b_signed=False),
    Arch("2x2_s10xu6_opt1", 2, 2, 10, True, b_width=6, b_signed=False, mac="opt1"),
]


# --- host side: jobs, beats, golden ------------------------------------------------------------

def random_job(arch: Arch, k: int, m: int, rng: random.Random, *, reuse: bool = False) -> dict:
    """``{"a": M x K, "b": K x cols or None}``; ``b = None`` reuses the weights in use (and their ``K``)."""
    lo, hi = operand_range(arch.width, arch.signed)
    b_lo, b_hi = operand_range(*arch.b_format)
    return {"a": [[rng.randint(lo, hi) for _ in range(k)] for _ in range(m)],
            "b": None if reuse else [[rng.randint(b_lo, b_hi) for _ in range(arch.cols)] for _ in range(k)]}


def random_jobs(arch: Arch, rng: random.Random, n: int) -> list[dict]:
    """``n`` jobs: ``K = 1``, ``K = rows``, ``M = 1`` among them, and some reusing weights."""
    ks = [1, arch.rows, arch.rows, 1] + [rng.randint(1, arch.rows) for _ in range(n - 4)]
    ms = [1, 6, 1, rng.randint(1, 6)] + [rng.randint(1, 6) for _ in range(n - 4)]
    jobs, k_in_use = [], None
    for k, m in zip(ks, ms):
        reuse = k_in_use is not None and rng.random() < 0.25
        k = k_in_use if reuse else k
        jobs.append(random_job(arch, k, m, rng, reuse=reuse))
        k_in_use = k
    return jobs


def pack(arch: Arch, jobs: list[dict], rng: random.Random, *, ride: float, extra: float = 0.0):
    """The beats of ``jobs`` back to back, and per job the beats it adds to the stream.

    ``ride``: probability that a job's weight rows ride on the previous job's row
    beats (as many as it has rows; the rest go alone just before the job's rows).
    ``extra``: probability that a job with ``K = rows`` sends one more weight row,
    which the engine must drop.
    """
    def junk(n, fmt=(arch.width, arch.signed)):
        lo, hi = operand_range(*fmt)
        return [rng.randint(lo, hi) for _ in range(n)]

    def weights(job):
        if job["b"] is None:
            return []
        rows = [list(r) for r in job["b"]]
        if len(rows) == arch.rows and rng.random() < extra:
            rows.append(junk(arch.cols, arch.b_format))  # past ``rows``: dropped
        return rows

    beats, counts = [], []
    waiting = weights(jobs[0]) if jobs else []
    for n, job in enumerate(jobs):
        before = len(beats)
        for row in waiting:
            beats.append({"a": junk(arch.rows), "b": row, "row": 0, "load": 1, "last": 0})
        ahead = weights(jobs[n + 1]) if n + 1 < len(jobs) else []
        carry = ahead if rng.random() < ride else []  # rides from this job's first row on
        waiting = ahead[len(job["a"]):] if carry else ahead
        k = len(job["a"][0])
        for m, a_row in enumerate(job["a"]):
            carried = carry[m] if m < len(carry) else None
            beats.append({"a": list(a_row) + junk(arch.rows - k), "b": carried or junk(arch.cols, arch.b_format),
                          "row": 1, "load": int(carried is not None), "last": int(m == len(job["a"]) - 1)})
        counts.append(len(beats) - before)
    return beats, counts


def golden(arch: Arch, jobs: list[dict]) -> list[list[int]]:
    """Rows of ``C`` of every job, in order (a job with ``b = None`` uses the previous ``B``)."""
    out, b = [], None
    b_width, b_signed = arch.b_format
    for job in jobs:
        b = job["b"] if job["b"] is not None else b
        out += matmul(np.array(job["a"]), np.array(b), width=arch.width, signed=arch.signed,
                      acc_width=arch.acc_width, b_width=b_width, b_signed=b_signed).tolist()
    return out


# --- simulator side ----------------------------------------------------------------------------

@dataclass
class Trace:
    operands: list        # (cycle, beat) per operand transfer
    results: list         # (cycle, valid_since, c, last) per result transfer
    problems: list        # stream-rule violations on results
    ready_low: int = 0    # cycles in which a beat was offered and operands.ready was low
    engine: SystolicWS = None
    at_reset: tuple = ()  # (results.valid, operands.ready, operand beats moved) in the reset cycle

    def row_beats(self) -> list[int]:
        """Cycles in which the row beats (``row = 1``) moved, in order."""
        return [cycle for cycle, beat in self.operands if beat["row"]]

    def last_beats(self) -> list[int]:
        return [cycle for cycle, beat in self.operands if beat["row"] and beat["last"]]


def stream(arch: Arch, beats: list[dict], n_results: int, *, valid_prob=1.0, ready_prob=1.0, seed=0,
           reset_after_results=None, after_reset=(), after_reset_results=0) -> Trace:
    """Drive ``beats``; run until ``n_results`` result beats have left, plus a margin for strays.

    With ``reset_after_results = n``: once ``n`` result beats have left, hold the
    sink off (the row buffer fills and the array stops) for a few cycles while
    beats keep being offered, assert ``rst`` for one cycle, then drive the beats
    ``after_reset`` instead of what was left; ``after_reset_results`` more result
    beats are then expected.
    """
    dut = arch.build()
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    rng = random.Random(seed)
    trace = Trace([], [], [], engine=dut)
    wanted = n_results if reset_after_results is None else reset_after_results + after_reset_results
    margin = arch.rows + arch.cols + 8
    budget = int(4 * (len(beats) + len(after_reset) + 2 * margin) / min(valid_prob, ready_prob)) + 50

    async def bench(ctx):
        pending = list(beats)
        offered = False   # a beat is on offer and has not moved yet
        held = None       # ((c, last), valid_since) of a result beat on offer that did not move
        hold_sink = 0
        reset_done = reset_after_results is None
        for cycle in range(budget):
            if (len(trace.results) >= wanted and not pending
                    and cycle > (trace.results[-1][0] if trace.results else 0) + margin):
                break
            if not reset_done and len(trace.results) == reset_after_results and hold_sink == 0:
                hold_sink = arch.rows + arch.cols + 6  # long enough to fill the row buffer
            if hold_sink:
                hold_sink -= 1
                if hold_sink == 0:
                    ctx.set(dut.operands.valid, int(bool(pending)))
                    ctx.set(dut.results.ready, 0)
                    ctx.set(cd.rst, 1)
                    trace.at_reset = (ctx.get(dut.results.valid), ctx.get(dut.operands.ready),
                                      len(trace.operands))
                    await ctx.tick()
                    ctx.set(cd.rst, 0)
                    pending = list(after_reset)
                    offered, held, reset_done = False, None, True
                    continue
            offered, held = step_streams(ctx, dut, trace, pending, offered, held, cycle=cycle, rng=rng,
                                         valid_prob=valid_prob, ready_prob=ready_prob,
                                         sink_held=bool(hold_sink))
            await ctx.tick()
        else:
            trace.problems.append(f"ran out of {budget} cycles")

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return trace


def check_results(trace: Trace, jobs: list[dict], expected: list[list[int]]) -> None:
    """Rows of ``C`` bit-exact, nothing extra, ``last`` on each job's final row only."""
    assert not trace.problems
    assert [c for _, _, c, _ in trace.results] == expected
    lasts = [0] * len(expected)
    row = 0
    for job in jobs:
        row += len(job["a"])
        lasts[row - 1] = 1
    assert [last for *_, last in trace.results] == lasts


def run_jobs(arch, jobs, *, ride, extra=0.0, seed=0, **flow):
    rng = random.Random(seed)
    beats, counts = pack(arch, jobs, rng, ride=ride, extra=extra)
    expected = golden(arch, jobs)
    trace = stream(arch, beats, len(expected), seed=rng.getrandbits(32), **flow)
    check_results(trace, jobs, expected)
    return trace, counts


# --- tests -------------------------------------------------------------------------------------

def test_properties():
    shapes = {(3, 2): signed(8), (2, 4): unsigned(6), (1, 1): signed(4), (8, 8): signed(8)}
    got = {}
    for (rows, cols), shape in shapes.items():
        ws = SystolicWS(rows, cols, shape, accumulator_width(shape.width, shape.signed, rows))
        Fragment.get(ws, None)  # elaborates: a component built and never used is an Amaranth warning
        got[rows, cols] = (ws.latency, ws.job_interval, ws.mac_units, ws.job, ws.flow_control)
    assert got == {
        (3, 2): (6, 1, 6, {"format": "rows_with_weights", "k_max": 3}, "stall"),
        (2, 4): (7, 1, 8, {"format": "rows_with_weights", "k_max": 2}, "stall"),
        (1, 1): (3, 1, 1, {"format": "rows_with_weights", "k_max": 1}, "stall"),
        (8, 8): (17, 1, 64, {"format": "rows_with_weights", "k_max": 8}, "stall"),
    }


@pytest.mark.parametrize("flow", [(0.7, 0.6), (0.9, 0.3)], ids=["mixed", "slow_sink"])
@pytest.mark.parametrize("ride", [0.0, 0.7], ids=["alone", "riding"])
@pytest.mark.parametrize("arch", ARCHS + MIXED, ids=str)
def test_random_jobs_random_flow(arch, ride, flow):
    rng = random.Random(zlib.crc32(repr((arch.name, ride, flow)).encode()))  # str hash() varies per run
    jobs = random_jobs(arch, rng, 9)
    trace, _ = run_jobs(arch, jobs, ride=ride, extra=0.3, seed=rng.getrandbits(32),
                        valid_prob=flow[0], ready_prob=flow[1])
    # Under backpressure a row can only come out later than documented, never earlier.
    for moved, (_, since, _, _) in zip(trace.row_beats(), trace.results):
        assert since - moved >= trace.engine.latency
    if flow[1] < 0.5:
        assert trace.ready_low > 0, "a slow sink should stall the array at least once"


@pytest.mark.parametrize("ride", [0.0, 1.0], ids=["alone", "riding"])
@pytest.mark.parametrize("arch", ARCHS[:3] + MIXED, ids=str)
def test_full_rate_interval_and_latency(arch, ride):
    """valid = ready = 1: nothing waits, ``last`` beats exactly the later job's beats apart, latency exact."""
    rng = random.Random(5)
    shapes = [(arch.rows, 1), (1, 1), (arch.rows, 6), (1, 3), (arch.rows, arch.rows), (arch.rows, 2),
              (max(1, arch.rows - 1), 1), (arch.rows, 1)]
    jobs = [random_job(arch, k, m, rng) for k, m in shapes]
    jobs.insert(4, random_job(arch, 1, 2, rng))
    jobs.insert(5, random_job(arch, 1, 3, rng, reuse=True))  # reuses K = 1
    trace, counts = run_jobs(arch, jobs, ride=ride, seed=9)
    ws = trace.engine
    assert trace.ready_low == 0, "at full rate no beat may wait"
    # Beats move in consecutive cycles from cycle 0 on.
    assert [cycle for cycle, _ in trace.operands] == list(range(sum(counts)))
    lasts = trace.last_beats()
    assert lasts[0] == counts[0] - 1
    assert [b - a for a, b in zip(lasts, lasts[1:])] == [max(n, ws.job_interval) for n in counts[1:]]
    if ride == 0.0:  # every job's weights alone: K + M beats a job
        assert counts == [(len(j["b"]) if j["b"] else 0) + len(j["a"]) for j in jobs]
    # Each row of C is valid exactly ``latency`` cycles after its row of A moved and
    # leaves at once (so each job's last result exactly ``latency`` after its last row).
    assert [since - moved for moved, (_, since, _, _) in zip(trace.row_beats(), trace.results)] \
        == [ws.latency] * len(trace.results)
    assert all(since == cycle for cycle, since, _, _ in trace.results)
    final_results = [cycle for cycle, _, _, last in trace.results if last]
    assert [r - c for r, c in zip(final_results, lasts)] == [ws.latency] * len(jobs)
    assert ws.latency == arch.rows + arch.cols + 1


@pytest.mark.parametrize("arch", ARCHS[:2], ids=str)
def test_weights_written_at_the_edge_of_the_swap(arch):
    """Every job's ``K = rows`` weight rows ride on the previous job's rows 0..K-1, at full rate.

    Weight row ``k`` of job ``n + 1`` moves in the cycle ``tau0 + k`` (``tau0``: job
    ``n``'s first row) and reaches ``w_next`` of PE ``(k, j)`` at the edge ending cycle
    ``tau0 + k + j + 1``, the cycle in which job ``n``'s swap reads ``w_next`` there.
    Distinct weights per job: any PE that swapped in the wrong set shows in ``C``.
    """
    rng = random.Random(17)
    jobs = [random_job(arch, arch.rows, m, rng) for m in [arch.rows, arch.rows + 1, arch.rows, 1, arch.rows]]
    trace, counts = run_jobs(arch, jobs, ride=1.0, seed=2)
    assert trace.ready_low == 0
    # Job 4's weights: one rides on job 3's single row, the other rows - 1 go alone.
    assert counts == [arch.rows + len(jobs[0]["a"])] + [len(j["a"]) for j in jobs[1:-1]] \
        + [arch.rows - 1 + len(jobs[-1]["a"])]


def test_job_without_weights_reuses_weights_and_k():
    arch = ARCHS[0]
    b = [[5, -3], [-128, 127]]  # K = 2 < rows
    a1, a2, a3 = [[1, 2], [3, -4]], [[127, -128]], [[-7, 9], [0, 1], [2, 2]]
    jobs = [{"a": a1, "b": b}, {"a": a2, "b": None}, {"a": a3, "b": None}]
    for ride in (0.0, 1.0):
        run_jobs(arch, jobs, ride=ride)  # a[2] carries random bits each time: must be ignored


def test_unused_fields_and_extra_weight_rows_are_ignored():
    arch = ARCHS[0]
    lo, hi = operand_range(arch.width, arch.signed)
    b = [[1, 2], [3, 4], [5, 6]]
    beats = [{"a": [hi, lo, hi], "b": row, "row": 0, "load": 1, "last": 1} for row in b]  # a, last ignored
    beats.append({"a": [lo] * 3, "b": [hi, lo], "row": 0, "load": 1, "last": 0})  # a fourth row: dropped
    beats.append({"a": [1, 1, 1], "b": [lo, lo], "row": 1, "load": 0, "last": 1})  # b ignored
    beats.append({"a": [lo, hi, lo], "b": [9, 9], "row": 0, "load": 0, "last": 1})  # neither: ignored
    beats.append({"a": [lo] * 3, "b": [7, -7], "row": 0, "load": 1, "last": 0})  # K = 1 next
    beats.append({"a": [2, hi, lo], "b": [lo, hi], "row": 1, "load": 0, "last": 1})  # a[1], a[2] ignored
    expected = [[9, 12], [14, -14]]
    trace = stream(arch, beats, 2, valid_prob=0.8, ready_prob=0.8, seed=4)
    assert not trace.problems
    assert [(c, last) for _, _, c, last in trace.results] == [(expected[0], 1), (expected[1], 1)]


@pytest.mark.parametrize("arch", [a for a in ARCHS + MIXED if a.acc is None], ids=str)
def test_extremes_at_k_rows_fit_the_minimal_accumulator(arch):
    """Every corner of the two operand ranges (mixed signedness included) at ``K = rows``."""
    lo, hi = operand_range(arch.width, arch.signed)
    b_lo, b_hi = operand_range(*arch.b_format)
    pairs = sorted({(x, y) for x in (lo, hi) for y in (b_lo, b_hi)})
    k = arch.rows
    jobs = [{"a": [[x] * k for _ in range(2)], "b": [[y] * arch.cols for _ in range(k)]} for x, y in pairs]
    expected = [[k * x * y] * arch.cols for x, y in pairs for _ in range(2)]
    assert golden(arch, jobs) == expected  # nothing wraps at K = rows
    for ride in (0.0, 1.0):
        run_jobs(arch, jobs, ride=ride, seed=3, valid_prob=0.8, ready_prob=0.7)
    # acc_width is the minimum: the most negative or the largest sum would not fit in one bit less.
    bits = arch.acc_width - 1
    if arch.acc_signed:
        assert min(k * x * y for x, y in pairs) < -(1 << (bits - 1)) or \
            max(k * x * y for x, y in pairs) > (1 << (bits - 1)) - 1
    else:
        assert max(k * x * y for x, y in pairs) > (1 << bits) - 1


@pytest.mark.parametrize("zeros_first", [True, False], ids=["no_weights_first", "fresh_first"])
@pytest.mark.parametrize("arch", ARCHS[:3], ids=str)
def test_reset_clears_jobs_in_flight_and_weights(arch, zeros_first):
    """Reset while the array is stopped (row buffer full), one job waiting and a later one
    half streamed with the following job's weights riding on it: nothing of them comes out.
    After reset either a job without weight rows gives zeros (no weights, ``K``, pending
    rows survive), or fresh jobs come first and compute correctly (the job framing and
    the count of pending weight rows start from scratch)."""
    rng = random.Random(23)
    doomed = [random_job(arch, arch.rows, 1, rng), random_job(arch, arch.rows, 4, rng),
              random_job(arch, arch.rows, 30, rng), random_job(arch, arch.rows, 2, rng)]
    beats, _ = pack(arch, doomed, rng, ride=1.0)
    fresh = [random_job(arch, rng.randint(1, arch.rows), 2, rng), random_job(arch, arch.rows, 3, rng),
             random_job(arch, arch.rows, 1, rng, reuse=True)]
    hi = operand_range(arch.width, arch.signed)[1]
    zeros_job = {"a": [[hi] * arch.rows] * 2, "b": None}  # K = 0 after reset: zeros
    zeros = len(zeros_job["a"]) if zeros_first else 0
    after = pack(arch, [zeros_job], rng, ride=0.0)[0] if zeros_first else []
    more, _ = pack(arch, fresh, rng, ride=1.0)
    first = len(doomed[0]["a"])
    trace = stream(arch, beats, 0, reset_after_results=first, after_reset=after + more,
                   after_reset_results=zeros + sum(len(j["a"]) for j in fresh), seed=6)
    assert not trace.problems
    valid, ready, moved = trace.at_reset
    assert valid and not ready, "reset should hit a stopped array (row buffer full)"
    assert arch.rows + first < moved < len(beats) - 2, "job 0 streamed, a later one half streamed"
    got = [c for _, _, c, _ in trace.results]
    assert got[:first] == golden(arch, doomed[:1])
    assert got[first:first + zeros] == [[0] * arch.cols] * zeros, "weights must not survive reset"
    assert [last for *_, last in trace.results[first:first + zeros]] == [0, 1][2 - zeros:]
    assert got[first + zeros:] == golden(arch, fresh)


@pytest.mark.parametrize("arch", ARCHS[:3], ids=str)
def test_converts_to_verilog(arch):
    text = verilog.convert(arch.build(), emit_src=False)
    for name in ["skew_a", "skew_w", "out", "w_next", "k_pend", "k_active", "in_job"]:
        assert name in text
    for k in range(arch.rows):
        for j in range(arch.cols):
            assert f"pe_{k}_{j}" in text
    for j in range(arch.cols - 1):
        assert f"deskew_{j}" in text
    assert ("deskew_tag" in text) == (arch.cols > 1)
