"""The TPE golden model against plain Python integer arithmetic."""

import numpy as np
import pytest

from sim.golden import tpe
from sim.golden.intmath import wrap


def _reference(a, b, acc_width, signed):
    rows, k, cols = len(a), len(b), len(b[0])
    out = []
    for i in range(rows):
        row = []
        for j in range(cols):
            total = sum(int(a[i][t]) * int(b[t][j]) for t in range(k)) % (1 << acc_width)
            if signed and total >= 1 << (acc_width - 1):
                total -= 1 << acc_width
            row.append(total)
        out.append(row)
    return out


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("width,acc_width", [(4, 12), (8, 22), (8, 18), (16, 38), (16, 48)])
def test_matmul_matches_python_integers(width, acc_width, signed):
    rng = np.random.default_rng(width * 100 + acc_width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    for _ in range(5):
        rows, k, cols = (int(x) for x in rng.integers(1, 9, size=3))
        a = rng.integers(lo, hi + 1, size=(rows, k))
        b = rng.integers(lo, hi + 1, size=(k, cols))
        got = tpe.matmul(a, b, width=width, signed=signed, acc_width=acc_width)
        assert got.tolist() == _reference(a.tolist(), b.tolist(), acc_width, signed)


def test_extremes_at_k_max_16_bit():
    a = np.full((2, 65536), -32768)
    b = np.full((65536, 2), -32768)
    # 65536 * 2**30 = 2**46: exact in int64, fits 48 signed bits.
    assert tpe.matmul(a, b, width=16, signed=True, acc_width=48)[0, 0] == 1 << 46


def test_wrap_is_twos_complement():
    assert wrap([2047, 2048, -2049, 4096], 12, True).tolist() == [2047, -2048, 2047, 0]
    assert wrap([255, 256, -1], 8, False).tolist() == [255, 0, 255]
    assert wrap([1 << 40], 64, True).tolist() == [1 << 40]


def test_rejects_bad_operands():
    with pytest.raises(ValueError, match="shapes"):
        tpe.matmul(np.zeros((2, 3)), np.zeros((2, 3)), width=8, signed=True, acc_width=22)
    with pytest.raises(ValueError, match="range"):
        tpe.matmul(np.full((1, 1), 128), np.zeros((1, 1)), width=8, signed=True, acc_width=22)
