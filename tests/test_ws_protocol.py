"""Corners of the weight-stationary protocol, in Amaranth's own simulator (fast, no Verilator).

The cocotb tests pack every job with its own weights; these drive beats by hand:
a job that reuses the weights in use, weight rows past ``rows`` (dropped), and a
job's weights sent while the previous job still streams.
"""

import numpy as np
from amaranth.hdl import signed
from amaranth.sim import Simulator

from hw.arith import accumulator_width
from hw.tpe import SystolicWS
from sim.golden.tpe import matmul

ROWS, COLS, WIDTH = 3, 2, 8
ACC = accumulator_width(WIDTH, True, ROWS)


def _beat(*, a=None, b=None, last=0):
    return {"a": list(a) + [0] * (ROWS - len(a)) if a is not None else [0] * ROWS,
            "b": list(b) if b is not None else [0] * COLS,
            "row": int(a is not None), "load": int(b is not None), "last": last}


def _run(beats, n_rows):
    """Drive ``beats`` at full rate; return the rows of C that come out."""
    dut = SystolicWS(ROWS, COLS, signed(WIDTH), ACC)
    got = []

    async def bench(ctx):
        ctx.set(dut.results.ready, 1)
        pending = list(beats)
        for _ in range(len(beats) + 4 * (ROWS + COLS) + n_rows):
            if pending:
                ctx.set(dut.operands.valid, 1)
                ctx.set(dut.operands.payload, pending[0])
            else:
                ctx.set(dut.operands.valid, 0)
            if ctx.get(dut.results.valid):
                got.append([int(x) for x in ctx.get(dut.results.payload).c])
            if pending and ctx.get(dut.operands.ready):
                pending.pop(0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def _golden(a, b):
    return matmul(np.array(a), np.array(b), width=WIDTH, signed=True, acc_width=ACC).tolist()


def test_job_without_weights_reuses_the_weights_in_use():
    b = [[1, -2], [3, 4]]
    a1, a2 = [[5, 6], [-7, 8]], [[127, -128]]
    beats = [_beat(b=row) for row in b]
    beats += [_beat(a=row, last=int(m == len(a1) - 1)) for m, row in enumerate(a1)]
    beats += [_beat(a=row, last=1) for row in a2]  # no weights: K = 2 and B stay
    assert _run(beats, 3) == _golden(a1, b) + _golden(a2, b)


def test_weight_rows_past_rows_are_dropped_and_unused_elements_ignored():
    b = [[1, 2], [3, 4], [5, 6]]
    a = [[1, 1, 1]]
    beats = [_beat(b=row) for row in b] + [_beat(b=[100, 100])]  # a fourth row: dropped
    beats += [_beat(a=a[0], last=1)]
    assert _run(beats, 1) == _golden(a, b)
    # K = 1 next: a[1] and a[2] carry values the engine must not use.
    beats = [_beat(b=[7, -7]), _beat(a=[2, 99, -99], last=1)]
    assert _run(beats, 1) == _golden([[2]], [[7, -7]])


def test_next_weights_ride_on_rows_and_overflow_alone():
    b1, b2 = [[1, 2], [3, 4], [5, 6]], [[-1, 0], [2, -3], [4, 5]]
    a1, a2 = [[1, 2, 3]], [[-4, 5, -6], [7, 8, 9]]  # job 1 has one row: two of b2's rows go alone
    beats = [_beat(b=row) for row in b1]
    beats += [_beat(a=a1[0], b=b2[0], last=1), _beat(b=b2[1]), _beat(b=b2[2])]
    beats += [_beat(a=row, last=int(m == 1)) for m, row in enumerate(a2)]
    assert _run(beats, 3) == _golden(a1, b1) + _golden(a2, b2)
