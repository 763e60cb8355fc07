"""Broadcast grids (``matrix2d``, ``cube``, ``adder_tree``) in Amaranth's own simulator (fast, no Verilator).

Random jobs of random ``K`` (1, not a multiple of ``depth``, far beyond ``depth``
and beyond ``k_max``, where sums wrap) stream back to back under random
``valid``/``ready``; every ``C`` is compared bit-exactly with the golden model.
At full rate the documented latency and job interval must hold exactly;
extreme operands at ``K = k_max`` must fit the minimal accumulator; reset must
drop a job in flight; every architecture must convert to Verilog.

Besides one operand format, grids with two (``A`` and ``B`` of different widths
and signedness, ``mac`` baseline and ``opt1``, one of them the ``adder_tree`` of
``tests/configs/tree_2x3_u7xu12.yaml``, one 32 x 32 bits) and, with two formats,
``systolic_os`` arrays (both readouts, ``opt1``) run the same streams.
"""

import math
import random
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Fragment, Module, signed, unsigned
from amaranth.sim import Simulator
from engine_streams import OperandFormats, step_streams

from conftest import ROOT

from gen.config import load_config
from hw.arith import accumulator_width, operand_range
from hw.tpe.broadcast import BroadcastGrid
from hw.tpe.systolic_os import SystolicOS
from sim.golden.tpe import matmul


@dataclass(frozen=True)
class Arch(OperandFormats):
    """An engine of the ``k_steps`` format: a broadcast grid, or (``engine``) a ``systolic_os`` array.

    ``width``/``signed`` are ``A``'s format, ``b_width``/``b_signed`` ``B``'s (default: ``A``'s).
    ``engine``: ``"broadcast"``, or ``"systolic_os"`` with ``result_buffers`` 1 or 2 (``depth`` 1).
    """

    name: str
    rows: int
    cols: int
    depth: int
    width: int
    signed: bool
    tree_register: bool
    k_max: int
    b_width: int | None = None
    b_signed: bool | None = None
    mac: str = "baseline"
    engine: str = "broadcast"
    result_buffers: int = 2
    result_rows: int = 1  # rows of C per result beat (broadcast grids)
    fanout: int = 0  # PEs per registered operand copy (broadcast grids; 0: no copies)

    @classmethod
    def from_config(cls, path) -> "Arch":
        """The engine of a ``kind: tpe`` config file of a broadcast architecture."""
        cfg = load_config(path)
        depth = {"cube": cfg.depth, "adder_tree": cfg.k_tile}.get(cfg.arch, 1)
        arch = cls(cfg.name, cfg.c_rows, cfg.cols, depth, cfg.a_format.width, cfg.a_format.signed,
                   cfg.arch != "matrix2d" and cfg.mac != "opt1", cfg.k_max, cfg.b_format.width,
                   cfg.b_format.signed, cfg.mac)
        assert arch.acc_width == cfg.acc_width
        return arch

    @property
    def acc_width(self) -> int:
        b_width, b_signed = self.b_format
        return accumulator_width(self.width, self.signed, self.k_max, b_width=b_width, b_signed=b_signed)

    def build(self):
        if self.engine == "systolic_os":
            return SystolicOS(self.rows, self.cols, self.shape, self.acc_width, b_shape=self.b_shape,
                              result_buffers=self.result_buffers, mac=self.mac)
        return BroadcastGrid(self.rows, self.cols, self.depth, self.shape, self.acc_width, b_shape=self.b_shape,
                             tree_register=self.tree_register, mac=self.mac, result_rows=self.result_rows,
                             fanout=self.fanout)

    def __str__(self):
        return self.name


ARCHS = [
    Arch("matrix2d_2x3_s8", 2, 3, 1, 8, True, False, 8),
    Arch("matrix2d_3x2_u5", 3, 2, 1, 5, False, False, 6),
    Arch("cube_3x2x4_s8", 3, 2, 4, 8, True, True, 10),
    Arch("cube_3x2x4_u6", 3, 2, 4, 6, False, True, 10),
    Arch("cube_2x2x3_u3", 2, 2, 3, 3, False, True, 7),  # odd depth: an unbalanced tree level
    Arch("adder_tree_4x8_s8", 1, 4, 8, 8, True, True, 20),
    # Several rows of C per result beat: a job drains in rows / result_rows beats.
    Arch("cube_4x2x2_s8_rows2", 4, 2, 2, 8, True, True, 9, result_rows=2),
    Arch("cube_4x3x2_u6_opt1_rows4", 4, 3, 2, 6, False, False, 9, mac="opt1", result_rows=4),
    Arch("cube_6x2x3_s5_opt2_rows3", 6, 2, 3, 5, True, True, 9, mac="opt2", result_rows=3),
    # Registered operand copies (fanout): a copy per PE, groups that do not divide the grid, opt1 and the tree.
    Arch("matrix2d_3x5_s8_fan1", 3, 5, 1, 8, True, False, 8, fanout=1),
    Arch("cube_4x3x2_u6_opt1_fan2", 4, 3, 2, 6, False, False, 9, mac="opt1", fanout=2),
    Arch("adder_tree_5x4_s7_fan3", 1, 5, 4, 7, True, True, 9, fanout=3),
    Arch("cube_4x2x2_s8_rows2_fan4", 4, 2, 2, 8, True, True, 9, result_rows=2, fanout=4),
]

#: Two operand formats: mixed signedness both ways, widths up to 32 bits, the opt1 Booth path.
MIXED = [
    Arch("matrix2d_2x3_u9xs16", 2, 3, 1, 9, False, False, 7, 16, True),
    Arch("cube_2x2x3_s24xs16", 2, 2, 3, 24, True, True, 9, 16, True),
    Arch("cube_2x3x2_s5xu6_opt1", 2, 3, 2, 5, True, False, 6, 6, False, mac="opt1"),
    Arch.from_config(ROOT / "tests" / "configs" / "tree_2x3_u7xu12.yaml"),
    Arch("matrix2d_2x2_s32xu32", 2, 2, 1, 32, True, False, 1, 32, False),  # 64-bit accumulators, K = 1
    Arch("os_2x3_s12xu5", 2, 3, 1, 12, True, False, 5, 5, False, engine="systolic_os"),
    Arch("os_3x2_u6xs9_shift", 3, 2, 1, 6, False, False, 4, 9, True, engine="systolic_os", result_buffers=1),
    Arch("os_2x2_u7xs10_opt1", 2, 2, 1, 7, False, False, 5, 10, True, mac="opt1", engine="systolic_os"),
]


# --- host side: jobs, beats, golden ---------------------------------------------------------

def random_job(arch: Arch, k: int, rng: random.Random) -> dict:
    lo, hi = operand_range(arch.width, arch.signed)
    b_lo, b_hi = operand_range(*arch.b_format)
    return {"a": [[rng.randint(lo, hi) for _ in range(k)] for _ in range(arch.rows)],
            "b": [[rng.randint(b_lo, b_hi) for _ in range(arch.cols)] for _ in range(k)]}


def pack(arch: Arch, job: dict) -> list[dict]:
    """The job's beats: element ``s*rows + i`` of ``a`` is ``A[i][k0+s]``, steps past ``K`` zero."""
    a, b = job["a"], job["b"]
    k = len(b)
    beats = []
    count = math.ceil(k / arch.depth)
    for n in range(count):
        ks = [n * arch.depth + s for s in range(arch.depth)]
        beats.append({
            "a": [a[i][kk] if kk < k else 0 for kk in ks for i in range(arch.rows)],
            "b": [b[kk][j] if kk < k else 0 for kk in ks for j in range(arch.cols)],
            "last": int(n == count - 1),
        })
    return beats


def golden(arch: Arch, job: dict) -> list[list[int]]:
    b_width, b_signed = arch.b_format
    return matmul(np.array(job["a"]), np.array(job["b"]), width=arch.width, signed=arch.signed,
                  acc_width=arch.acc_width, b_width=b_width, b_signed=b_signed).tolist()


# --- simulator side ---------------------------------------------------------------------------

@dataclass
class Trace:
    operands: list   # (cycle, beat) per operand transfer
    results: list    # (cycle, valid_since, c, last) per result transfer
    problems: list   # stream-rule violations on results
    ready_low: int   # cycles in which a beat was offered and operands.ready was low
    grid: BroadcastGrid = None  # the simulated design (its properties)
    at_reset: tuple = ()  # (results.valid, operand beats moved) in the cycle rst was asserted


def stream(arch: Arch, jobs: list[dict], *, valid_prob=1.0, ready_prob=1.0, seed=0,
           reset_after_results=None, after_reset=()) -> Trace:
    """Drive ``jobs`` back to back; run until all their result beats have left (plus a margin).

    With ``reset_after_results = n``: once ``n`` result beats have left, hold the
    sink off for a few cycles while the next beats stream in, assert ``rst`` for
    one cycle, then send the jobs ``after_reset`` instead of what was left.
    """
    dut = arch.build()
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    rng = random.Random(seed)
    beats = [beat for job in jobs for beat in pack(arch, job)]
    wanted = sum(arch.rows for _ in jobs)
    if reset_after_results is not None:
        wanted = reset_after_results + arch.rows * len(after_reset)
    trace = Trace([], [], [], 0, dut)
    budget = 4 * (len(beats) + (arch.rows + 4) * (len(jobs) + len(after_reset))) / min(valid_prob, ready_prob)
    budget = int(budget) + 50

    async def bench(ctx):
        pending = list(beats)
        offered = False       # a beat is on offer and has not moved yet
        held = None           # (payload, valid_since) of a result beat on offer that did not move
        hold_sink = 0
        reset_done = reset_after_results is None
        for cycle in range(budget):
            if len(trace.results) * arch.result_rows >= wanted and not pending and not offered:
                # A margin for stray beats.
                if cycle > trace.results[-1][0] + arch.rows + 6:
                    break
            if not reset_done and len(trace.results) * arch.result_rows == reset_after_results and hold_sink == 0:
                hold_sink = arch.rows + 6  # long enough for the next job to be captured and wait
            if hold_sink:
                hold_sink -= 1
                if hold_sink == 0:
                    trace.at_reset = (ctx.get(dut.results.valid), len(trace.operands))
                    ctx.set(cd.rst, 1)
                    ctx.set(dut.operands.valid, 0)
                    ctx.set(dut.results.ready, 0)
                    await ctx.tick()
                    ctx.set(cd.rst, 0)
                    pending = [beat for job in after_reset for beat in pack(arch, job)]
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
    trace.results = _rows_of(arch, trace.results)
    return trace


def _rows_of(arch: Arch, beats: list) -> list:
    """Result beats as rows ``(cycle, valid_since, row, last)``: ``result_rows`` rows per beat, the final row
    of a beat carrying its ``last``."""
    per_beat = arch.result_rows
    return [(cycle, since, c[r * arch.cols:(r + 1) * arch.cols], last if r == per_beat - 1 else 0)
            for cycle, since, c, last in beats for r in range(per_beat)]


def results_by_job(arch: Arch, trace: Trace, n_jobs: int) -> list[list[list[int]]]:
    """Regroup result beats into jobs, checking the ``last`` flags."""
    beats = trace.results
    assert len(beats) == arch.rows * n_jobs, f"{len(beats)} result beats for {n_jobs} jobs of {arch.rows} rows"
    jobs = []
    for n in range(n_jobs):
        group = beats[n * arch.rows:(n + 1) * arch.rows]
        assert [last for *_, last in group] == [0] * (arch.rows - 1) + [1], f"job {n}: result last flags"
        jobs.append([c for _, _, c, _ in group])
    return jobs


def last_operand_cycles(trace: Trace) -> list[int]:
    return [cycle for cycle, beat in trace.operands if beat["last"]]


# --- tests -------------------------------------------------------------------------------------

def test_properties():
    shapes = {
        "matrix2d": BroadcastGrid(4, 3, 1, signed(8), 22, tree_register=False),
        "cube": BroadcastGrid(4, 3, 8, signed(8), 22, tree_register=True),
        "adder_tree": BroadcastGrid(1, 16, 8, unsigned(8), 22, tree_register=True),
        "matrix2d fanout": BroadcastGrid(4, 3, 1, signed(8), 22, tree_register=False, fanout=2),
        "cube fanout": BroadcastGrid(4, 3, 8, signed(8), 22, tree_register=True, fanout=1),
    }
    got = {name: (g.latency, g.job_interval, g.mac_units, g.job, g.flow_control) for name, g in shapes.items()}
    for grid in shapes.values():
        Fragment.get(grid, None)  # elaborates: a component built and never used is an Amaranth warning
    assert got == {
        "matrix2d": (2, 4, 12, {"format": "k_steps", "steps_per_beat": 1, "c_rows": 4}, "stall"),
        "cube": (3, 4, 96, {"format": "k_steps", "steps_per_beat": 8, "c_rows": 4}, "stall"),
        "adder_tree": (3, 1, 128, {"format": "k_steps", "steps_per_beat": 8, "c_rows": 1}, "stall"),
        "matrix2d fanout": (3, 4, 12, {"format": "k_steps", "steps_per_beat": 1, "c_rows": 4}, "stall"),
        "cube fanout": (4, 4, 96, {"format": "k_steps", "steps_per_beat": 8, "c_rows": 4}, "stall"),
    }


def _random_ks(arch: Arch, rng: random.Random, n: int) -> list[int]:
    """K = 1, a K that is not a multiple of depth, K = k_max, K far beyond k_max (wraps), then random."""
    ks = [1, arch.depth + 1, arch.k_max, 2 * arch.k_max + 3]
    ks += [rng.randint(1, 3 * arch.depth + arch.rows) for _ in range(n - len(ks))]
    rng.shuffle(ks)
    return ks


@pytest.mark.parametrize("flow", [(0.7, 0.6), (0.9, 0.25)], ids=["mixed", "slow_sink"])
@pytest.mark.parametrize("arch", ARCHS + MIXED, ids=str)
def test_random_jobs_random_flow(arch, flow):
    # A stable seed: Python's hash() of a str changes from process to process (PYTHONHASHSEED), which once
    # drew a slow-sink run that never stalled the grid.
    rng = random.Random(zlib.crc32(f"{arch.name}/{flow}".encode()))
    jobs = [random_job(arch, k, rng) for k in _random_ks(arch, rng, 8)]
    trace = stream(arch, jobs, valid_prob=flow[0], ready_prob=flow[1], seed=rng.getrandbits(32))
    assert not trace.problems
    assert results_by_job(arch, trace, len(jobs)) == [golden(arch, job) for job in jobs]
    # Under backpressure a job can only take longer than documented, never less.
    for n, cycle in enumerate(last_operand_cycles(trace)):
        assert trace.results[n * arch.rows][1] - cycle >= trace.grid.latency
    if flow[1] < 0.5:
        assert trace.ready_low > 0, "a slow sink should stall the grid at least once"


@pytest.mark.parametrize("arch", ARCHS + [a for a in MIXED if a.engine == "broadcast"], ids=str)
def test_full_rate_interval_and_latency(arch):
    """valid = ready = 1: last beats ``max(beats, rows)`` apart, every job exactly ``latency`` late."""
    rng = random.Random(7)
    beat_counts = [1, 1, arch.rows, arch.rows + 2, 2, max(1, arch.rows - 1), 1, 3]
    jobs = [random_job(arch, rng.randint((n - 1) * arch.depth + 1, n * arch.depth), rng) for n in beat_counts]
    trace = stream(arch, jobs, seed=1)
    grid = trace.grid
    assert not trace.problems
    assert results_by_job(arch, trace, len(jobs)) == [golden(arch, job) for job in jobs]
    lasts = last_operand_cycles(trace)
    assert [b - a for a, b in zip(lasts, lasts[1:])] == [max(n, grid.job_interval) for n in beat_counts[1:]]
    first_results = [trace.results[n * arch.rows][1] for n in range(len(jobs))]
    assert [r - c for r, c in zip(first_results, lasts)] == [grid.latency] * len(jobs)
    # A job's result beats leave in consecutive cycles, result_rows rows each.
    for n in range(len(jobs)):
        cycles = [t[0] for t in trace.results[n * arch.rows:(n + 1) * arch.rows:arch.result_rows]]
        assert cycles == list(range(cycles[0], cycles[0] + arch.rows // arch.result_rows))
        assert len(set(t[0] for t in trace.results[n * arch.rows:(n + 1) * arch.rows])) == len(cycles)


def _constant_job(arch: Arch, a_value: int, b_value: int, k: int) -> dict:
    return {"a": [[a_value] * k for _ in range(arch.rows)], "b": [[b_value] * arch.cols for _ in range(k)]}


@pytest.mark.parametrize("arch", ARCHS + MIXED, ids=str)
def test_extremes_at_k_max_fit_the_minimal_accumulator(arch):
    """Every corner of the two operand ranges (mixed signedness included) at ``K = k_max``."""
    lo, hi = operand_range(arch.width, arch.signed)
    b_lo, b_hi = operand_range(*arch.b_format)
    pairs = sorted({(x, y) for x in (lo, hi) for y in (b_lo, b_hi)})
    jobs = [_constant_job(arch, x, y, arch.k_max) for x, y in pairs]
    expected = [[[arch.k_max * x * y] * arch.cols for _ in range(arch.rows)] for x, y in pairs]
    assert [golden(arch, job) for job in jobs] == expected  # nothing wraps at k_max
    trace = stream(arch, jobs, valid_prob=0.8, ready_prob=0.7, seed=3)
    assert not trace.problems
    assert results_by_job(arch, trace, len(jobs)) == expected
    # acc_width is the minimum: the most negative or the largest sum would not fit one bit less.
    bits = arch.acc_width - 1
    if arch.acc_signed:
        assert min(arch.k_max * x * y for x, y in pairs) < -(1 << (bits - 1)) or \
            max(arch.k_max * x * y for x, y in pairs) > (1 << (bits - 1)) - 1
    else:
        assert max(arch.k_max * x * y for x, y in pairs) > (1 << bits) - 1


@pytest.mark.parametrize("arch", [ARCHS[0], ARCHS[2], ARCHS[5], ARCHS[6]], ids=str)
def test_reset_drops_the_job_in_flight(arch):
    """Reset while one job drains (sink held off) and the next is half streamed: only later jobs come out."""
    rng = random.Random(11)
    doomed = [random_job(arch, arch.depth, rng), random_job(arch, 4 * arch.depth, rng),
              random_job(arch, 30 * arch.depth, rng)]
    fresh = [random_job(arch, arch.depth + 1, rng), random_job(arch, 1, rng)]
    trace = stream(arch, doomed, reset_after_results=arch.rows, after_reset=fresh, seed=5)
    assert not trace.problems
    waiting, moved = trace.at_reset
    assert waiting and moved < 35, "reset should hit a job waiting to drain and one half streamed"
    got = [c for _, _, c, _ in trace.results]
    assert got[:arch.rows] == golden(arch, doomed[0])
    after = trace.results[arch.rows:]
    assert len(after) == arch.rows * len(fresh), "nothing of the jobs in flight may come out after reset"
    assert [c for _, _, c, _ in after] == [row for job in fresh for row in golden(arch, job)]


@pytest.mark.parametrize("arch", [ARCHS[0], ARCHS[2], ARCHS[5]], ids=str)
def test_converts_to_verilog(arch):
    text = verilog.convert(arch.build(), emit_src=False)
    for i in range(arch.rows):
        for j in range(arch.cols):
            assert f"pe_{i}_{j}" in text
    assert ("dot" in text) == arch.tree_register
