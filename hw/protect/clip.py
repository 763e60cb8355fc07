"""Activation range clipping (Ranger-style): bound a value to ``[low, high]`` and flag when it was outside."""

from amaranth.hdl import Module, Mux, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arith import compare


class Clip(wiring.Component):
    """Clamp ``value`` to ``[low, high]``; flag values outside the range.

    Combinational. Ports: ``value`` In(shape), ``out`` Out(shape) = ``low`` if
    ``value < low``, ``high`` if ``value > high``, else ``value`` (the bounds
    themselves pass unchanged); ``out_of_range`` Out(1) high exactly when the
    value was changed. A fault that drives an activation outside the range a
    network ever produces is thereby bounded and flagged (detect only: a clipped
    value is not the right one).

    Parameters: ``shape`` (signed or unsigned), ``low`` <= ``high``, both inside
    the range of ``shape`` (elaboration-time constants, e.g. from a profile).
    """

    def __init__(self, shape, low: int, high: int):
        self._shape = Shape.cast(shape)
        width, signed = self._shape.width, self._shape.signed
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        for field, bound in (("low", low), ("high", high)):
            if not isinstance(bound, int) or not lo <= bound <= hi:
                raise ValueError(f"{field}: {bound!r} must be an integer in [{lo}, {hi}] for {self._shape}")
        if low > high:
            raise ValueError(f"low: {low} must not exceed high: {high}")
        self._low, self._high = low, high
        super().__init__({"value": In(self._shape), "out": Out(self._shape), "out_of_range": Out(1)})

    def elaborate(self, platform):
        m = Module()
        # A bound at the end of the shape's range can never be crossed: the comparison folds to 0.
        below = compare.below(self.value, self._low)
        above = compare.above(self.value, self._high)
        m.d.comb += [
            self.out.eq(Mux(below, self._low, Mux(above, self._high, self.value))),
            self.out_of_range.eq(below | above),
        ]
        return m
