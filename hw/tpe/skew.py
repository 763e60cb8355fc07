"""Input skew buffer for systolic arrays."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class SkewBuffer(wiring.Component):
    """Delays lane ``l`` of a vector by ``l + 1`` clock cycles.

    A systolic array needs element ``l`` of each input vector to enter one cycle
    after element ``l - 1``; one extra register on every lane also registers the
    input stream, so the array never sees a combinational path from a port.

    Registers are named ``lane<l>_<s>`` (stage ``s`` of lane ``l``, stage 0 first)
    so fault-injection reports can name them.

    Parameters
    ----------
    lanes : int
        Number of lanes.
    lane_shape : ShapeLike
        Shape of one lane (a plain shape or a layout).
    keep : bool
        Mark every register ``keep``. Fields that enter every lane with the same value (a
        step tag) make stage ``s`` of all lanes identical; synthesis merges them into one
        chain with a tap per lane, which must then reach every lane's destination (on an
        FPGA, a net across the array). ``keep`` leaves each lane its own chain.
    """

    def __init__(self, lanes: int, lane_shape, *, keep: bool = False):
        self._lanes = lanes
        self._lane_shape = lane_shape
        self._attrs = {"keep": 1} if keep else {}
        layout = data.ArrayLayout(lane_shape, lanes)
        super().__init__({"i": In(layout), "o": Out(layout)})

    def elaborate(self, platform):
        m = Module()
        for lane in range(self._lanes):
            previous = self.i[lane]
            for stage in range(lane + 1):
                reg = Signal(self._lane_shape, name=f"lane{lane}_{stage}", attrs=self._attrs)
                m.d.sync += reg.eq(previous)
                previous = reg
            m.d.comb += self.o[lane].eq(previous)
        return m


class DelayLine(wiring.Component):
    """Delays ``i`` by ``stages`` clock cycles through registers ``stage_0`` .. ``stage_<n-1>``.

    Parameters
    ----------
    shape : ShapeLike
        Shape of the delayed value (a plain shape or a layout).
    stages : int
        Number of registers, at least 1.
    """

    def __init__(self, shape, stages: int):
        if stages < 1:
            raise ValueError(f"a delay line needs at least one stage, not {stages}")
        self._shape, self._stages = shape, stages
        super().__init__({"i": In(shape), "o": Out(shape)})

    def elaborate(self, platform):
        m = Module()
        previous = self.i
        for stage in range(self._stages):
            reg = Signal(self._shape, name=f"stage_{stage}")
            m.d.sync += reg.eq(previous)
            previous = reg
        m.d.comb += self.o.eq(previous)
        return m
