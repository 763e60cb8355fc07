"""The linear engine's output stage: bias, accumulator format, requantisation, GELU, residual add.

Per element, with the arithmetic of the golden's matmul (``sim/golden/moevit/fixed.py``) and
every rule from :mod:`hw.arith.fixed`:

1. ``x = S << (acc.frac - a.frac - b.frac) + shift_round(bias, bias.frac - acc.frac)``, where
   ``S`` is the engine's exact sum of products (products are exact: the accumulator keeps at
   least ``a.frac + b.frac`` fraction bits);
2. ``acc = fit(x, acc, overflow)``; ``y = requantize(acc, acc.frac, out, rounding, overflow)``;
3. with ``gelu``: ``y = requantize(GELU(requantize(y, out.frac, gelu.input)), gelu.output.frac, out)``
   (the golden's ``feature_gelu``);
4. with ``residual``: ``y = fit(y + r, out, overflow)`` (the golden's ``add``).

Which arithmetic (formats of ``a``, ``b``, the bias, the accumulator and the output) is a
run-time choice among the rows of a table fixed at elaboration (:class:`EpilogueFormat`,
``fmt`` selects), so every layer of the model runs on one circuit whose shifts are muxes of
constants.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith.fixed import FixedFormat, Overflow, Rounding, fit_hw, requantize_hw, shift_round_hw
from hw.nonlinear.gelu import _CORES as GELU_CORES
from hw.nonlinear.gelu import Gelu, GeluSpec
from hw.nonlinear.pipeline import stage

from .select import equals


#: Enabled cycles of the GELU block per method.
GELU_LATENCY = {method: core.LATENCY for method, core in GELU_CORES.items()}


@dataclass(frozen=True)
class EpilogueFormat:
    """One row of the format table: the formats of one kind of linear layer.

    ``names`` are the model's matmuls that use it (``qkv``, ``proj``, ...); ``bias`` is
    ``None`` for layers without a bias.
    """

    names: tuple[str, ...]
    a: FixedFormat
    b: FixedFormat
    acc: FixedFormat
    out: FixedFormat
    rounding: Rounding
    overflow: Overflow
    bias: FixedFormat | None = None

    @property
    def product_shift(self) -> int:
        """Bits the exact sum of products moves left to reach the accumulator's fraction."""
        return self.acc.frac - self.a.frac - self.b.frac

    def to_json(self) -> dict:
        fmt = lambda f: None if f is None else {"width": f.width, "frac": f.frac, "signed": f.signed}  # noqa: E731
        return {"names": list(self.names), "a": fmt(self.a), "b": fmt(self.b), "bias": fmt(self.bias),
                "acc": fmt(self.acc), "out": fmt(self.out), "rounding": self.rounding.value,
                "overflow": self.overflow.value}


def epilogue_input_layout(cols: int, acc_shape, bias_bits: int, out: FixedFormat) -> data.StructLayout:
    """One result row entering the epilogue: sums, the bias codes (raw, ``bias_bits`` each), residuals."""
    return data.StructLayout({
        "acc": data.ArrayLayout(acc_shape, cols),
        "bias": data.ArrayLayout(unsigned(max(1, bias_bits)), cols),
        "res": data.ArrayLayout(out.shape(), cols),
    })


class Epilogue(wiring.Component):
    """``cols`` lanes of the output stage between the streams ``inp`` and ``out``.

    ``fmt`` (a row of ``formats``), ``gelu`` and ``residual`` are constant while an
    operator runs. Every lane is the same pipeline of :attr:`latency` enabled stages;
    the pipeline advances when its output slot is empty or being taken (``inp.ready``
    is that enable), like :class:`hw.nonlinear.elementwise.Elementwise`, so a row
    leaves :attr:`latency` cycles after it entered while ``out.ready`` stays high.
    All formats share one output format ``formats[0].out``.
    """

    def __init__(self, *, cols: int, acc_shape, formats: list[EpilogueFormat], gelu: GeluSpec | None,
                 bias_bits: int):
        if not formats:
            raise ValueError("the epilogue needs at least one format")
        outs = {f.out for f in formats}
        if len(outs) != 1:
            raise ValueError(f"every format must write the same output format, not {sorted(o.describe() for o in outs)}")
        for f in formats:
            if f.product_shift < 0:
                raise ValueError(f"format {'/'.join(f.names)}: the accumulator ({f.acc.describe()}) keeps fewer "
                                 f"fraction bits than the products ({f.a.frac + f.b.frac}); the engine sums exact "
                                 "products")
            if f.bias is not None and f.bias.width > bias_bits:
                raise ValueError(f"format {'/'.join(f.names)}: bias of {f.bias.width} bits in {bias_bits}-bit codes")
        self.cols = cols
        self.formats = list(formats)
        self.out_format = formats[0].out
        self.acc_shape = Shape.cast(acc_shape)
        self.gelu_spec = gelu
        self.bias_bits = bias_bits
        super().__init__({
            "inp": In(stream.Signature(epilogue_input_layout(cols, acc_shape, bias_bits, self.out_format))),
            "fmt": In(range(max(2, len(formats)))),
            "gelu": In(1),
            "residual": In(1),
            "out": Out(stream.Signature(data.ArrayLayout(self.out_format.shape(), cols))),
        })

    @property
    def _gelu_latency(self) -> int:
        return GELU_LATENCY[self.gelu_spec.method] if self.gelu_spec is not None else 0

    @property
    def latency(self) -> int:
        """Enabled cycles from a row entering to its result on ``out``."""
        # x | fit | requantise | gelu in | gelu block | gelu out | residual add
        return 3 + (2 + self._gelu_latency if self.gelu_spec is not None else 0) + 1

    def _groups(self):
        """Formats grouped by the part after the sum (accumulator, rounding, overflow): one circuit each."""
        groups = {}
        for index, f in enumerate(self.formats):
            groups.setdefault((f.acc, f.rounding, f.overflow), []).append(index)
        return list(groups.items())

    def _selects(self, members: list[int]):
        return Cat(*[equals(self.fmt, index) for index in members]).any()

    def _sum(self, m: Module, acc, bias_raw, lane: int) -> Signal:
        """Stage 1 input: the sum and the bias moved to the accumulator's fraction, for the selected format."""
        terms = []
        for index, f in enumerate(self.formats):
            product = acc << f.product_shift
            if f.bias is None:
                bias = 0
            else:
                code = bias_raw[:f.bias.width]
                code = code.as_signed() if f.bias.signed else code.as_unsigned()
                bias = shift_round_hw(code, f.bias.frac - f.acc.frac, f.rounding)
            terms.append((index, product + bias))
        width = max(Shape.cast(v.shape()).width for _, v in terms) + 1
        x = Signal(signed(width), name=f"sum_{lane}")
        value = terms[-1][1]
        for index, term in reversed(terms[:-1]):
            value = Mux(equals(self.fmt, index), term, value)
        m.d.comb += x.eq(value)
        return x

    def elaborate(self, platform):
        m = Module()
        out_fmt = self.out_format
        en = Signal(name="advance")
        m.d.comb += [en.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(en)]
        groups = self._groups()

        valid = stage(m, en, "valid_1", self.inp.valid)
        gelu_flag, residual_flag = self.gelu, self.residual
        results = []
        for j in range(self.cols):
            x = stage(m, en, f"x_{j}", self._sum(m, self.inp.payload.acc[j], self.inp.payload.bias[j], j))
            res = stage(m, en, f"res_1_{j}", self.inp.payload.res[j])
            # fit to the accumulator of the format's group
            fitted = [fit_hw(x, acc, overflow) for (acc, _, overflow), _ in groups]
            acc_value = fitted[-1]
            for g in reversed(range(len(groups) - 1)):
                acc_value = Mux(self._selects(groups[g][1]), fitted[g], acc_value)
            acc_width = max(acc.width for (acc, _, _), _ in groups)
            acc_q = stage(m, en, f"acc_{j}", acc_value, signed(acc_width + 1))
            res = stage(m, en, f"res_2_{j}", res)
            # requantise to the output format
            quantised = [requantize_hw(acc_q, acc.frac, out_fmt, rounding, overflow)
                         for (acc, rounding, overflow), _ in groups]
            y_value = quantised[-1]
            for g in reversed(range(len(groups) - 1)):
                y_value = Mux(self._selects(groups[g][1]), quantised[g], y_value)
            y = stage(m, en, f"y_{j}", y_value, out_fmt.shape())
            res = stage(m, en, f"res_3_{j}", res)
            rounding, overflow = self.formats[0].rounding, self.formats[0].overflow
            if self.gelu_spec is not None:
                spec = self.gelu_spec
                g_in = stage(m, en, f"gelu_in_{j}", requantize_hw(y, out_fmt.frac, spec.input, rounding, overflow),
                             spec.input.shape())
                m.submodules[f"gelu_{j}"] = unit = Gelu(spec)
                m.d.comb += [unit.x.eq(g_in), unit.en.eq(en)]
                bypass, resid = y, res  # wait beside the GELU path: gelu_in, the block, gelu_out
                for depth in range(2 + unit.latency):
                    bypass = stage(m, en, f"bypass_{depth}_{j}", bypass)
                    resid = stage(m, en, f"res_g{depth}_{j}", resid)
                g_out = stage(m, en, f"gelu_out_{j}", requantize_hw(unit.y, spec.output.frac, out_fmt, rounding,
                                                                     overflow), out_fmt.shape())
                y = Signal(out_fmt.shape(), name=f"act_{j}")
                m.d.comb += y.eq(Mux(gelu_flag, g_out, bypass))
                res = resid
            total = Mux(residual_flag, y + res, y)
            results.append(stage(m, en, f"out_{j}", fit_hw(total, out_fmt, overflow), out_fmt.shape()))
        for depth in range(2, self.latency + 1):
            valid = stage(m, en, f"valid_{depth}", valid)
        m.d.comb += self.out.valid.eq(valid)
        for j, value in enumerate(results):
            m.d.comb += self.out.payload[j].eq(value)
        return m
