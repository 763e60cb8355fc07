"""``hw.arith.tree.balanced``: the same result as a chain, in logarithmic depth."""

import math
import operator
from functools import reduce

import pytest

from hw.arith.tree import balanced


class Depth:
    """A value that remembers how many operations lie below it."""

    def __init__(self, value, depth=0):
        self.value, self.depth = value, depth

    def __or__(self, other):
        return Depth(self.value | other.value, max(self.depth, other.depth) + 1)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16, 17, 256])
def test_balanced_equals_chain_in_log_depth(n):
    items = [Depth(1 << i) for i in range(n)]
    tree = balanced(operator.or_, items)
    assert tree.value == reduce(operator.or_, (item.value for item in items)) == (1 << n) - 1
    assert tree.depth == math.ceil(math.log2(n))
    assert reduce(operator.or_, items).depth == n - 1  # what the chain it replaces costs


def test_balanced_keeps_order_for_non_commutative_ops():
    for n in range(1, 12):
        letters = "abcdefghijk"[:n]
        assert balanced(operator.add, list(letters)) == letters


def test_balanced_refuses_nothing():
    with pytest.raises(ValueError, match="no items"):
        balanced(operator.or_, [])
