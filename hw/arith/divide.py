"""Division by a constant as a multiply and a shift (no divider circuit).

``floor(x / d) == (x * c) >> s`` with ``c = ceil(2**s / d)`` holds for every
``0 <= x <= x_max`` when ``x_max * (c * d - 2**s) < 2**s`` (the error term
``x * (c*d - 2**s) / (d * 2**s)`` then stays below ``1/d``, too little to cross the
next multiple). :func:`magic` picks the smallest such ``s``; :func:`floor_div_const`
and :func:`ceil_div_const` build the circuit, :func:`floor_div` is the integer twin
the tests compare it with.
"""

from amaranth.hdl import Value


def magic(divisor: int, x_max: int) -> tuple[int, int]:
    """``(c, s)`` such that ``(x * c) >> s == x // divisor`` for ``0 <= x <= x_max``."""
    if divisor < 1 or x_max < 0:
        raise ValueError(f"need divisor >= 1 and x_max >= 0, not {divisor}, {x_max}")
    s = 0
    while True:
        c = -(-(1 << s) // divisor)
        if x_max * (c * divisor - (1 << s)) < (1 << s):
            return c, s
        s += 1


def floor_div(x: int, divisor: int, x_max: int) -> int:
    """The integer rule the circuit implements (asserts the range)."""
    if not 0 <= x <= x_max:
        raise ValueError(f"{x} outside 0..{x_max}")
    c, s = magic(divisor, x_max)
    return (x * c) >> s


def floor_div_const(value, divisor: int, x_max: int) -> Value:
    """``floor(value / divisor)`` for an unsigned ``value`` known to be at most ``x_max``."""
    value = Value.cast(value)
    if divisor & (divisor - 1) == 0:
        return value >> (divisor.bit_length() - 1)
    c, s = magic(divisor, x_max)
    return (value * c) >> s


def ceil_div_const(value, divisor: int, x_max: int) -> Value:
    """``ceil(value / divisor)`` for an unsigned ``value`` known to be at most ``x_max``."""
    return floor_div_const(Value.cast(value) + (divisor - 1), divisor, x_max + divisor - 1)
