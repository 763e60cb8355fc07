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


@pytest.mark.parametrize("a_format,b_format,acc_width", [
    ((24, True), (16, True), 46), ((9, False), (16, True), 30), ((16, True), (9, False), 24),
    ((7, False), (12, False), 23), ((32, True), (32, False), 64), ((32, False), (32, False), 64)])
def test_two_formats_match_python_integers(a_format, b_format, acc_width):
    """Two operand formats, mixed signedness, and sums beyond int64 (32 x 32 bits, K up to 8)."""
    rng = np.random.default_rng(a_format[0] * 1000 + b_format[0])
    (a_lo, a_hi), (b_lo, b_hi) = (tpe.operand_range(*f) for f in (a_format, b_format))
    acc_signed = a_format[1] or b_format[1]
    for _ in range(6):
        rows, k, cols = (int(x) for x in rng.integers(1, 9, size=3))
        a = rng.integers(a_lo, a_hi + 1, size=(rows, k))
        b = rng.integers(b_lo, b_hi + 1, size=(k, cols))
        a[0, 0], b[0, 0] = a_lo, b_lo  # extremes meet in C[0][0] ...
        a[-1, -1], b[-1, -1] = a_hi, b_lo  # ... and the most negative mixed product in C[-1][-1]
        got = tpe.matmul(a, b, width=a_format[0], signed=a_format[1], acc_width=acc_width,
                         b_width=b_format[0], b_signed=b_format[1])
        assert got.tolist() == _reference(a.tolist(), b.tolist(), acc_width, acc_signed)


def test_two_formats_check_each_side_against_its_own_range():
    ok = np.full((1, 1), 300)
    assert tpe.matmul(np.full((1, 1), -5), ok, width=4, signed=True, acc_width=14, b_width=9,
                      b_signed=False).tolist() == [[-1500]]
    with pytest.raises(ValueError, match="B has values outside the 9-bit unsigned range"):
        tpe.matmul(np.ones((1, 1)), np.full((1, 1), -1), width=4, signed=True, acc_width=14, b_width=9,
                   b_signed=False)
    with pytest.raises(ValueError, match="A has values outside the 4-bit signed range"):
        tpe.matmul(ok, ok, width=4, signed=True, acc_width=14, b_width=9, b_signed=False)


def test_wrap_of_python_integers_beyond_int64():
    big = np.array([(1 << 64) + 5, -(1 << 63) - 1, (1 << 64) - 1], dtype=object)
    assert wrap(big, 64, True).tolist() == [5, (1 << 63) - 1, -1]
    assert wrap(big, 64, False).tolist() == [5, (1 << 63) - 1, (1 << 64) - 1]
    assert wrap(big, 8, True).dtype == np.int64
