"""Accumulator width rule, checked against brute force over every operand value."""

import itertools

import pytest

from hw.arith import accumulator_width, operand_range, product_range


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("signed", [True, False])
def test_product_range_is_exhaustive_min_max(width, signed):
    values = range(operand_range(width, signed)[0], operand_range(width, signed)[1] + 1)
    products = [a * b for a, b in itertools.product(values, repeat=2)]
    assert product_range(width, signed) == (min(products), max(products))


def _fits(value, width, signed):
    if signed:
        return -(1 << (width - 1)) <= value < (1 << (width - 1))
    return 0 <= value < (1 << width)


@pytest.mark.parametrize("width", [2, 3, 4, 8, 16])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("k_max", [1, 2, 3, 7, 64, 100, 65536])
def test_accumulator_width_is_minimal(width, signed, k_max):
    lo, hi = product_range(width, signed)
    acc = accumulator_width(width, signed, k_max)
    assert _fits(k_max * lo, acc, signed) and _fits(k_max * hi, acc, signed)
    assert not (_fits(k_max * lo, acc - 1, signed) and _fits(k_max * hi, acc - 1, signed))


def test_known_widths():
    # INT8 signed, K <= 64: 64 * (-128)**2 = 2**20 needs 22 signed bits.
    assert accumulator_width(8, True, 64) == 22
    # A single signed INT8 product: only (-128)**2 = 16384 needs the 16th bit.
    assert accumulator_width(8, True, 1) == 16
    assert accumulator_width(8, False, 1) == 16


def test_rejects_nonsense():
    with pytest.raises(ValueError):
        accumulator_width(8, True, 0)
    with pytest.raises(ValueError):
        operand_range(0, True)
