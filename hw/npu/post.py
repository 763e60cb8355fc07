"""The NPU tile's output stage: requantisation, activation, result register (block ``post``)."""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith.compare import below
from hw.arith.fixed import FixedFormat, Overflow, Rounding, requantize_hw
from hw.protect.clip import Clip

from .commands import ACT_MODES, shift_shape
from .storage import UNPROTECTED, RegisterGroup


def result_row_layout(cols: int, out_shape) -> data.StructLayout:
    """Payload of one ``results`` beat: a row of output codes and ``last`` (the row ends a WRITE)."""
    return data.StructLayout({"c": data.ArrayLayout(out_shape, cols), "last": unsigned(1)})


class PostProcess(wiring.Component):
    """Requantises a row of accumulators to output codes, applies the activation, and offers the row.

    Per element ``x`` (all ``cols`` at once):
    ``y = fit(shift_round(x * scale, shift, rounding), out_format, saturate)``
    (the rules of :mod:`hw.arith.fixed`), then mode ``none``: ``y``; ``relu``:
    ``max(y, 0)``; ``clip``: ``min(max(y, lo), hi)``.

    Contract, per clock cycle:

    * ``quant_we`` loads ``scale, shift`` and ``act_we`` loads ``mode, lo,
      hi`` from ``quant``/``act`` (views of the current command). Reset
      values: ``scale = 1``, ``shift = 0``, mode ``none``, ``lo``/``hi`` the
      format's extremes.
    * ``in_ready = ~results.valid | results.ready``; a row accepted on ``in``
      appears on ``results`` in the next cycle and stays until taken.

    Registers (groups, :mod:`hw.npu.storage`): ``params`` and ``out``
    (``valid``, ``last``, ``c``).

    Range clipping (``clip = (low, high)``, the ``clip`` mechanism): every
    element of the offered row passes a :class:`hw.protect.clip.Clip`
    (submodules ``clip_<j>``) between the ``out`` register and ``results``, so
    a value outside ``[low, high]`` -- a fault in the requantisation, its
    parameters or the result register, or a legitimate value the profile did
    not foresee -- leaves the tile clamped to the bound. ``clip_count`` counts
    result beats taken with at least one clamped element (register group
    ``clipped``, saturating); it is not an alarm (``corrected``/``detected``
    stay 0), because in-range faults are invisible to it and out-of-range
    values also occur without a fault. Without ``clip``, ``clip_count`` is 0.
    """

    def __init__(self, cols: int, acc_shape, *, scale_width: int, shift_max: int, out_format: FixedFormat,
                 rounding: Rounding, quant_layout: data.Layout, act_layout: data.Layout,
                 mechanism: str = UNPROTECTED, clip: tuple[int, int] | None = None,
                 counter_width: int = 16):
        self._cols = cols
        self._clip = clip
        self._counter_width = counter_width
        self._acc_shape = Shape.cast(acc_shape)
        self._scale_width = scale_width
        self._shift_max = shift_max
        self._format = out_format
        self._rounding = Rounding(rounding)
        self._mechanism = mechanism
        out_shape = out_format.shape()
        self._params_layout = data.StructLayout({
            "scale": unsigned(scale_width), "shift": shift_shape(shift_max), "mode": unsigned(2),
            "lo": out_shape, "hi": out_shape})
        self._out_layout = data.StructLayout({"valid": unsigned(1), "row": result_row_layout(cols, out_shape)})
        super().__init__({
            "in_valid": In(1), "in_ready": Out(1), "in_last": In(1),
            "in_row": In(data.ArrayLayout(self._acc_shape, cols)),
            "quant_we": In(1), "quant": In(quant_layout),
            "act_we": In(1), "act": In(act_layout),
            "results": Out(stream.Signature(result_row_layout(cols, out_shape))),
            "corrected": Out(1), "detected": Out(1),
            "clip_count": Out(counter_width),
        })

    def _requantize(self, m: Module, x, params, name: str) -> Signal:
        """The output code of accumulator ``x`` under ``params`` (before the activation).

        A run-time shift ``s`` becomes one fixed shift: ``x * scale`` is first moved left
        by ``shift_max - s`` (exact), then rounded by ``shift_max`` bits with the rule of
        :func:`hw.arith.fixed.requantize_hw`. Rounding ``v * 2**a`` by ``a + s`` bits gives
        the same code as rounding ``v`` by ``s`` bits for every rule there (the dropped
        fraction and the kept bits are the same), so one rounding circuit serves all shifts.
        """
        if self._shift_max:
            distance = Signal(range(self._shift_max + 1), name=f"{name}_align")
            m.d.comb += distance.eq(self._shift_max - params.shift)
            aligned = (x * params.scale) << distance
        else:  # no shift to undo (and no zero-width distance)
            aligned = x * params.scale
        code = Signal(self._format.shape(), name=name)
        m.d.comb += code.eq(requantize_hw(aligned, self._shift_max, self._format, self._rounding, Overflow.SATURATE))
        return code

    def elaborate(self, platform):
        m = Module()
        fmt = self._format
        params = RegisterGroup(m, "params", self._params_layout, mechanism=self._mechanism,
                               init={"scale": 1, "shift": 0, "mode": ACT_MODES["none"],
                                     "lo": fmt.min_code, "hi": fmt.max_code})
        out = RegisterGroup(m, "out", self._out_layout, mechanism=self._mechanism)
        p, o = params.q, out.q

        with m.If(self.quant_we):
            m.d.comb += [params.d.scale.eq(self.quant.scale), params.d.shift.eq(self.quant.shift)]
        with m.If(self.act_we):
            m.d.comb += [params.d.mode.eq(self.act.mode), params.d.lo.eq(self.act.lo), params.d.hi.eq(self.act.hi)]

        m.d.comb += [
            self.results.valid.eq(o.valid),
            self.results.payload.eq(o.row),
            self.in_ready.eq(~o.valid | self.results.ready),
            self.corrected.eq(params.corrected | out.corrected),
            self.detected.eq(params.detected | out.detected),
        ]
        active = []
        for j in range(self._cols):
            code = self._requantize(m, self.in_row[j], p, f"code_{j}")
            relu = Mux(below(code, 0), 0, code)  # an unsigned code is its own ReLU
            clip = Mux(code < p.lo, p.lo, Mux(code > p.hi, p.hi, code))
            active.append(Mux(p.mode == ACT_MODES["relu"], relu, Mux(p.mode == ACT_MODES["clip"], clip, code)))
        with m.If(self.in_valid & self.in_ready):
            m.d.comb += [out.d.valid.eq(1), out.d.row.last.eq(self.in_last)]
            m.d.comb += [out.d.row.c[j].eq(value) for j, value in enumerate(active)]
        with m.Elif(self.results.ready):
            m.d.comb += out.d.valid.eq(0)
        if self._clip is not None:
            self._add_clip(m, o)
        else:
            m.d.comb += self.clip_count.eq(0)
        return m

    def _add_clip(self, m: Module, o) -> None:
        """Clamp the offered row to the clip bounds and count the beats taken with a clamped element."""
        low, high = self._clip
        clamped = []
        for j in range(self._cols):
            m.submodules[f"clip_{j}"] = lane = Clip(self._format.shape(), low, high)
            m.d.comb += [lane.value.eq(o.row.c[j]), self.results.payload.c[j].eq(lane.out)]
            clamped.append(lane.out_of_range)
        counter = RegisterGroup(m, "clipped", unsigned(self._counter_width))
        top = (1 << self._counter_width) - 1
        m.d.comb += self.clip_count.eq(counter.q)
        taken = self.results.valid & self.results.ready
        with m.If(taken & Cat(clamped).any() & (counter.q != top)):
            m.d.comb += counter.d.eq(counter.q + 1)
