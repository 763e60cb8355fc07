"""The NPU tile's accumulators: the engine's result rows summed over a K loop (block ``acc``)."""

from functools import reduce
from operator import or_

from amaranth.hdl import Const, Module, Mux, Shape
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .storage import UNPROTECTED, RegisterGroup


class Accumulator(wiring.Component):
    """``rows x cols`` accumulators of ``acc_shape``, fed by the engine's result rows.

    Contract, per clock cycle:

    * When ``res_valid``: row ``ptr`` becomes ``res_c`` (``acc_add = 0``) or
      ``acc + res_c`` (``acc_add = 1``), wrapped to the accumulator width;
      ``ptr`` steps, and returns to 0 after a row with ``res_last`` (always
      ready: the engine's ``results.ready`` is tied high).
    * ``row`` shows accumulator row ``row_sel`` (combinationally).
    * with ``fixable`` (ABFT correction; otherwise ``fix`` is ignored): ``fix``
      makes element ``(fix_row, fix_col)`` ``acc - fix_delta`` (wrapped), unless
      a result row writes that element in the same cycle.

    Registers (one group each, :mod:`hw.npu.storage`): ``acc_<i>_<j>`` and,
    with more than one row, ``ptr``.
    """

    def __init__(self, rows: int, cols: int, in_shape, acc_shape, *, mechanism: str = UNPROTECTED,
                 fixable: bool = False):
        self._rows, self._cols = rows, cols
        self._fixable = fixable
        self._acc_shape = Shape.cast(acc_shape)
        self._mechanism = mechanism
        super().__init__({
            "res_valid": In(1), "res_last": In(1), "res_c": In(data.ArrayLayout(in_shape, cols)),
            "acc_add": In(1),
            "row_sel": In(range(max(rows, 2))),
            "row": Out(data.ArrayLayout(self._acc_shape, cols)),
            "fix": In(1), "fix_row": In(range(max(rows, 2))), "fix_col": In(range(max(cols, 2))),
            "fix_delta": In(self._acc_shape.width),
            "corrected": Out(1), "detected": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        groups = [[RegisterGroup(m, f"acc_{i}_{j}", self._acc_shape, mechanism=self._mechanism)
                   for j in range(self._cols)] for i in range(self._rows)]
        every = [g for row in groups for g in row]
        if self._rows > 1:
            ptr = RegisterGroup(m, "ptr", range(self._rows), mechanism=self._mechanism)
            every.append(ptr)
            row_in = ptr.q
            with m.If(self.res_valid):
                m.d.comb += ptr.d.eq(Mux(self.res_last | (ptr.q == self._rows - 1), 0, ptr.q + 1))
        else:
            row_in = Const(0, 1)
        if self._fixable:  # first, so that a result row written in the same cycle takes precedence
            for i in range(self._rows):
                for j in range(self._cols):
                    at = (~self.fix_row.any() if i == 0 else self.fix_row == i) & \
                        (~self.fix_col.any() if j == 0 else self.fix_col == j)
                    with m.If(self.fix & at):
                        m.d.comb += groups[i][j].d.eq(groups[i][j].q - self.fix_delta)
        for i in range(self._rows):
            with m.If(self.res_valid & (~row_in.any() if i == 0 else row_in == i)):
                for j in range(self._cols):
                    g = groups[i][j]
                    m.d.comb += g.d.eq(Mux(self.acc_add, g.q, 0) + self.res_c[j])
        # The read mux as a Mux chain (row 0 last): no case statement for Verilator to call incomplete.
        for j in range(self._cols):
            value = groups[0][j].q
            for i in range(1, self._rows):
                value = Mux(self.row_sel == i, groups[i][j].q, value)
            m.d.comb += self.row[j].eq(value)
        m.d.comb += [
            self.corrected.eq(reduce(or_, (g.corrected for g in every))),
            self.detected.eq(reduce(or_, (g.detected for g in every))),
        ]
        return m
