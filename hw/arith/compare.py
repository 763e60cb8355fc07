"""Comparisons with a constant that fold to a constant when the operand's shape decides them.

``code < 0`` on an unsigned code, or ``field > 31`` on a 5-bit field, is constant;
Verilator's lint flags such a comparison (``UNSIGNED``, ``CMPCONST``), and whether it
is constant often depends on the config (signedness, a bound that happens to be the
field's largest value). Generators that compare a value with a config-derived bound
call these instead: a comparison the shape decides becomes ``Const(0, 1)`` or
``Const(1, 1)`` (synthesis removes the logic it guards), every other one is the
plain comparison, so the Verilog of a config where nothing is constant is unchanged.
"""

import operator

from amaranth.hdl import Const, Shape, Value

from .widths import operand_range


def value_range(value) -> tuple[int, int]:
    """Smallest and largest value of ``value``'s shape."""
    shape = Shape.cast(Value.cast(value).shape())
    return operand_range(shape.width, shape.signed)


def _compare(value, bound, op) -> Value:
    """``op(value, bound)``, or its constant when the shape decides it.

    A comparison with a constant is monotone in ``value``, so it is constant over the
    shape's range exactly when it gives the same answer at both ends of it.
    """
    lo, hi = value_range(value)
    limit = bound.value if isinstance(bound, Const) else int(bound)
    answers = {bool(op(lo, limit)), bool(op(hi, limit))}
    if len(answers) == 1:
        return Const(int(answers.pop()), 1)
    return op(value, bound)


def below(value, bound) -> Value:
    """``value < bound`` for a constant ``bound`` (an int or a ``Const``)."""
    return _compare(value, bound, operator.lt)


def above(value, bound) -> Value:
    """``value > bound`` for a constant ``bound`` (an int or a ``Const``)."""
    return _compare(value, bound, operator.gt)


def at_least(value, bound) -> Value:
    """``value >= bound`` for a constant ``bound`` (an int or a ``Const``)."""
    return _compare(value, bound, operator.ge)


def at_most(value, bound) -> Value:
    """``value <= bound`` for a constant ``bound`` (an int or a ``Const``)."""
    return _compare(value, bound, operator.le)
