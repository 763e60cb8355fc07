"""Accumulator width rule, checked against brute force over every operand value."""

import itertools

import pytest

from hw.arith import accumulator_signed, accumulator_width, operand_range, product_range


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


FORMATS = [(w, s) for w in (1, 2, 3, 4) for s in (True, False) if not (s and w == 1)]


@pytest.mark.parametrize("a", FORMATS, ids=str)
@pytest.mark.parametrize("b", FORMATS, ids=str)
def test_two_formats_product_range_is_exhaustive_min_max(a, b):
    a_values = range(operand_range(*a)[0], operand_range(*a)[1] + 1)
    b_values = range(operand_range(*b)[0], operand_range(*b)[1] + 1)
    products = [x * y for x in a_values for y in b_values]
    assert product_range(*a, b_width=b[0], b_signed=b[1]) == (min(products), max(products))


@pytest.mark.parametrize("a", [(3, True), (4, False), (8, True), (24, True), (32, False)], ids=str)
@pytest.mark.parametrize("b", [(2, False), (5, True), (16, True), (32, True)], ids=str)
@pytest.mark.parametrize("k_max", [1, 3, 64, 65536])
def test_two_formats_accumulator_width_is_minimal(a, b, k_max):
    """Mixed signedness gives a signed accumulator that holds both ends of k_max products exactly."""
    lo, hi = product_range(*a, b_width=b[0], b_signed=b[1])
    is_signed = accumulator_signed(a[1], b[1])
    assert is_signed == (a[1] or b[1])
    acc = accumulator_width(*a, k_max, b_width=b[0], b_signed=b[1])
    assert _fits(k_max * lo, acc, is_signed) and _fits(k_max * hi, acc, is_signed)
    assert not (_fits(k_max * lo, acc - 1, is_signed) and _fits(k_max * hi, acc - 1, is_signed))


@pytest.mark.parametrize("width", [4, 8, 16, 32])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("k_max", [1, 7, 4096])
def test_equal_formats_keep_their_width(width, signed, k_max):
    assert accumulator_width(width, signed, k_max, b_width=width, b_signed=signed) == \
        accumulator_width(width, signed, k_max)
    assert product_range(width, signed, b_width=width, b_signed=signed) == product_range(width, signed)


def test_known_two_format_widths():
    # The MoE-ViT linear layers: s8.16 activations (24 bits) x 16-bit weights, K <= 65536:
    # 65536 * (-2**23) * (-2**15) = 2**54 needs 56 signed bits.
    assert accumulator_width(24, True, 65536, b_width=16, b_signed=True) == 56
    # Pixels u0.8 x signed 16-bit weights: 255 * -32768 = -8355840 needs 24 signed bits.
    assert accumulator_width(8, False, 1, b_width=16, b_signed=True) == 24
    # 32 x 32 bits, one product: (-2**31) * (2**32 - 1) needs 64 signed bits.
    assert accumulator_width(32, True, 1, b_width=32, b_signed=False) == 64
