"""Comparisons with a constant that fold to a constant when the operand's shape decides them.

``code < 0`` on an unsigned code, or ``field > 31`` on a 5-bit field, is constant;
Verilator's lint flags such a comparison (``UNSIGNED``, ``CMPCONST``), and whether it
is constant often depends on the config (signedness, a bound that happens to be the
field's largest value). Generators that compare a value with a config-derived bound
call these instead: a comparison the shape decides becomes ``Const(0, 1)`` or
``Const(1, 1)`` (synthesis removes the logic it guards), every other one is the
plain comparison, so the Verilog of a config where nothing is constant is unchanged.
"""

from amaranth.hdl import Const, Shape, Value


def value_range(value) -> tuple[int, int]:
    """Smallest and largest value of ``value``'s shape."""
    shape = Shape.cast(Value.cast(value).shape())
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


def _bound(bound) -> int:
    return bound.value if isinstance(bound, Const) else int(bound)


def below(value, bound) -> Value:
    """``value < bound`` for a constant ``bound`` (an int or a ``Const``)."""
    lo, hi = value_range(value)
    if _bound(bound) <= lo:
        return Const(0, 1)
    if _bound(bound) > hi:
        return Const(1, 1)
    return value < bound


def above(value, bound) -> Value:
    """``value > bound`` for a constant ``bound`` (an int or a ``Const``)."""
    lo, hi = value_range(value)
    if _bound(bound) >= hi:
        return Const(0, 1)
    if _bound(bound) < lo:
        return Const(1, 1)
    return value > bound


def at_least(value, bound) -> Value:
    """``value >= bound`` for a constant ``bound`` (an int or a ``Const``)."""
    lo, hi = value_range(value)
    if _bound(bound) <= lo:
        return Const(1, 1)
    if _bound(bound) > hi:
        return Const(0, 1)
    return value >= bound


def at_most(value, bound) -> Value:
    """``value <= bound`` for a constant ``bound`` (an int or a ``Const``)."""
    lo, hi = value_range(value)
    if _bound(bound) >= hi:
        return Const(1, 1)
    if _bound(bound) < lo:
        return Const(0, 1)
    return value <= bound
