"""Small selections written so that Yosys' Verilog passes Verilator's lint as it stands.

``x == 0`` on a multi-bit value becomes ``!x`` in Yosys' output (WIDTHTRUNC), and an indexed
bit or word select becomes a shift truncated by assignment (WIDTHTRUNC); these helpers say the
same thing in forms that lint clean.
"""

from amaranth.hdl import Mux, Value


def equals(value, constant: int) -> Value:
    """``value == constant`` (a reduction for 0, so no logical-not of a vector appears)."""
    value = Value.cast(value)
    return ~value.any() if constant == 0 else value == constant


def pick(index, options: list) -> Value:
    """``options[index]`` as a chain of muxes (the last option also for indices past the end)."""
    index = Value.cast(index)
    value = options[-1]
    for position in reversed(range(len(options) - 1)):
        value = Mux(equals(index, position), options[position], value)
    return value
