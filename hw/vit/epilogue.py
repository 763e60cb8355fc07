"""The linear engine's output stage: bias, accumulator format, requantisation, GELU, residual add.

Per element, with the arithmetic of the golden's matmul (``sim/golden/moevit/fixed.py``) and
every rule from :mod:`hw.arith.fixed`:

1. ``x = S << (acc.frac - a.frac - b.frac) + shift_round(bias, bias.frac - acc.frac)``, where
   ``S`` is the engine's exact sum of products (products are exact: the accumulator keeps at
   least ``a.frac + b.frac`` fraction bits);
2. ``acc = fit(x, acc, overflow)``; ``y = requantize(acc, acc.frac, out, rounding, overflow)`` (with a
   ``scale``, ``y = requantize(acc * code, acc.frac + frac, out, ...)``: the attention scores);
3. with ``gelu``: ``y = requantize(GELU(requantize(y, out.frac, gelu.input)), gelu.output.frac, out)``
   (the golden's ``feature_gelu``);
4. with ``weight`` (the experts' ``scatter``, when built with a ``score`` format):
   ``y = requantize(y * score, out.frac + score.frac, out)`` with the row's gate score (the golden's
   ``moe``: the expert's output, second bias included, times its score);
5. with ``residual``: ``y = fit(y + r, out, overflow)`` (the golden's ``add``); with ``weight`` only for
   rows whose ``accumulate`` is set (a token's first expert starts its sum).

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
    #: ``(code, frac)``: the accumulator is multiplied by ``code * 2**-frac`` before the requantisation
    #: (the attention scores' scale ``1/sqrt(head_dim)``, as the golden's ``scale_scores`` applies it).
    scale: tuple[int, int] | None = None

    @property
    def product_shift(self) -> int:
        """Bits the exact sum of products moves left to reach the accumulator's fraction."""
        return self.acc.frac - self.a.frac - self.b.frac

    def to_json(self) -> dict:
        fmt = lambda f: None if f is None else {"width": f.width, "frac": f.frac, "signed": f.signed}  # noqa: E731
        return {"names": list(self.names), "a": fmt(self.a), "b": fmt(self.b), "bias": fmt(self.bias),
                "acc": fmt(self.acc), "out": fmt(self.out), "rounding": self.rounding.value,
                "overflow": self.overflow.value,
                "scale": None if self.scale is None else {"code": self.scale[0], "frac": self.scale[1]}}


def epilogue_input_layout(cols: int, acc_shape, bias_bits: int, out: FixedFormat,
                          score: FixedFormat | None = None) -> data.StructLayout:
    """One result row entering the epilogue: sums, the bias codes (raw, ``bias_bits`` each), residuals; with a
    ``score`` format also the row's gate ``score`` and ``accumulate`` (add the residual to this row)."""
    members = {
        "acc": data.ArrayLayout(acc_shape, cols),
        "bias": data.ArrayLayout(unsigned(max(1, bias_bits)), cols),
        "res": data.ArrayLayout(out.shape(), cols),
    }
    if score is not None:
        members |= {"score": score.shape(), "accumulate": 1}
    return data.StructLayout(members)


class EpilogueLane(wiring.Component):
    """One element's path through the output stage (see the module docstring), :attr:`latency` stages.

    Ports: ``en`` (the pipeline advances), ``fmt``, ``gelu``, ``residual`` (the operator's choices),
    ``acc``, ``bias`` (raw codes), ``res`` in; ``y`` out, the result of the inputs ``latency``
    enabled cycles earlier.
    """

    def __init__(self, *, formats: list, gelu: GeluSpec | None, acc_shape, bias_bits: int,
                 score: FixedFormat | None = None):
        self.formats, self.gelu_spec = formats, gelu
        self.out_format = formats[0].out
        self.bias_bits = bias_bits
        self.score_format = score
        members = {
            "en": In(1), "fmt": In(range(max(2, len(formats)))), "gelu": In(1), "residual": In(1),
            "acc": In(acc_shape), "bias": In(max(1, bias_bits)), "res": In(self.out_format.shape()),
            "y": Out(self.out_format.shape()),
        }
        if score is not None:
            members |= {"weight": In(1), "score": In(score.shape()), "accumulate": In(1)}
        super().__init__(members)

    @property
    def scaled(self) -> bool:
        """Whether a format multiplies the accumulator by a scale (a stage of its own)."""
        return any(f.scale is not None for f in self.formats)

    @property
    def latency(self) -> int:
        # sum | fit | (scale product) | requantise | (gelu in | the block | gelu out) | (score product | weighted)
        # | residual add
        return 3 + self.scaled + (2 + GELU_LATENCY[self.gelu_spec.method] if self.gelu_spec is not None else 0) + \
            2 * (self.score_format is not None) + 1

    def _groups(self):
        """Formats grouped by the part after the sum (accumulator, rounding, overflow): one circuit each."""
        groups = {}
        for index, f in enumerate(self.formats):
            groups.setdefault((f.acc, f.rounding, f.overflow, f.scale), []).append(index)
        return list(groups.items())

    def _selects(self, members: list[int]):
        return Cat(*[equals(self.fmt, index) for index in members]).any()

    def _sum(self):
        """The sum and the bias moved to the accumulator's fraction, for the selected format."""
        terms = []
        for f in self.formats:
            if f.bias is None:
                bias = 0
            else:
                code = self.bias[:f.bias.width]
                code = code.as_signed() if f.bias.signed else code.as_unsigned()
                bias = shift_round_hw(code, f.bias.frac - f.acc.frac, f.rounding)
            terms.append((self.acc << f.product_shift) + bias)
        value = terms[-1]
        for index in reversed(range(len(terms) - 1)):
            value = Mux(equals(self.fmt, index), terms[index], value)
        return value

    def _by_group(self, groups, values):
        value = values[-1]
        for g in reversed(range(len(groups) - 1)):
            value = Mux(self._selects(groups[g][1]), values[g], value)
        return value

    def elaborate(self, platform):
        m = Module()
        en, out_fmt = self.en, self.out_format
        groups = self._groups()
        rounding, overflow = self.formats[0].rounding, self.formats[0].overflow
        total = self._sum()
        x = stage(m, en, "sum", total, signed(Shape.cast(total.shape()).width))
        # The row's residual (and with a score format its score and accumulate bit) waits beside the sum.
        side = self.res if self.score_format is None else Cat(self.res, self.score, self.accumulate)
        res = stage(m, en, "res_1", side)
        acc_width = max(acc.width for (acc, _, _, _), _ in groups)
        acc = stage(m, en, "acc_fit", self._by_group(groups, [fit_hw(x, a, o) for (a, _, o, _), _ in groups]),
                    signed(acc_width + 1))
        res = stage(m, en, "res_2", res)
        # A scale (the attention scores' 1/sqrt(head_dim)) is an exact product registered before its
        # requantisation: both in one stage were among the accelerator's deepest paths.
        scaled = {}
        if self.scaled:
            for g, ((_, _, _, scale), _) in enumerate(groups):
                if scale is not None:
                    scaled[g] = stage(m, en, f"scaled_{g}", acc * scale[0])
            acc = stage(m, en, "acc_s", acc)
            res = stage(m, en, "res_s", res)

        def output(g, a, r, o, scale):
            if scale is None:
                return requantize_hw(acc, a.frac, out_fmt, r, o)
            return requantize_hw(scaled[g], a.frac + scale[1], out_fmt, r, o)

        y = stage(m, en, "act", self._by_group(groups, [output(g, *key) for g, (key, _) in enumerate(groups)]),
                  out_fmt.shape())
        res = stage(m, en, "res_3", res)
        if self.gelu_spec is not None:
            spec = self.gelu_spec
            g_in = stage(m, en, "gelu_in", requantize_hw(y, out_fmt.frac, spec.input, rounding, overflow),
                         spec.input.shape())
            m.submodules.gelu = unit = Gelu(spec)
            m.d.comb += [unit.x.eq(g_in), unit.en.eq(en)]
            bypass, resid = y, res  # wait beside the GELU path: gelu_in, the block, gelu_out
            for depth in range(2 + unit.latency):
                bypass = stage(m, en, f"bypass_{depth}", bypass)
                resid = stage(m, en, f"res_g{depth}", resid)
            g_out = stage(m, en, "gelu_out", requantize_hw(unit.y, spec.output.frac, out_fmt, rounding, overflow),
                          out_fmt.shape())
            y = Mux(self.gelu, g_out, bypass)
            res = resid
        add_residual = self.residual
        if self.score_format is not None:
            score = self.score_format
            width = out_fmt.width
            code = res[width:width + score.width]
            code = code.as_signed() if score.signed else code.as_unsigned()
            # The product with the score registered before its requantisation (as the scale's).
            product = stage(m, en, "weight_product", y * code)
            y = stage(m, en, "weight_bypass", y)
            res = stage(m, en, "res_p", res)
            weighted = requantize_hw(product, out_fmt.frac + score.frac, out_fmt, rounding, overflow)
            y = stage(m, en, "weighted", Mux(self.weight, weighted, y), out_fmt.shape())
            res = stage(m, en, "res_w", res)
            add_residual = self.residual & (~self.weight | res[-1])
            res = res[:width].as_signed() if out_fmt.signed else res[:width].as_unsigned()
        result = stage(m, en, "out", fit_hw(Mux(add_residual, y + res, y), out_fmt, overflow), out_fmt.shape())
        m.d.comb += self.y.eq(result)
        return m


class Epilogue(wiring.Component):
    """``cols`` lanes of the output stage between the streams ``inp`` and ``out``.

    ``fmt`` (a row of ``formats``), ``gelu`` and ``residual`` are constant while an
    operator runs. Every lane (:class:`EpilogueLane`, submodules ``lane_<j>``) is the same
    pipeline of :attr:`latency` enabled stages; the pipeline advances when its output slot
    is empty or being taken (``inp.ready`` is that enable), like
    :class:`hw.nonlinear.elementwise.Elementwise`, so a row leaves :attr:`latency` cycles
    after it entered while ``out.ready`` stays high. All formats share one output format
    ``formats[0].out``.
    """

    def __init__(self, *, cols: int, acc_shape, formats: list[EpilogueFormat], gelu: GeluSpec | None,
                 bias_bits: int, score: FixedFormat | None = None):
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
        self.score_format = score
        self.lanes = [EpilogueLane(formats=self.formats, gelu=gelu, acc_shape=self.acc_shape, bias_bits=bias_bits,
                                   score=score) for _ in range(cols)]
        members = {
            "inp": In(stream.Signature(epilogue_input_layout(cols, acc_shape, bias_bits, self.out_format, score))),
            "fmt": In(range(max(2, len(formats)))),
            "gelu": In(1),
            "residual": In(1),
            "out": Out(stream.Signature(data.ArrayLayout(self.out_format.shape(), cols))),
        }
        if score is not None:
            members["weight"] = In(1)  # the experts' scatter: weight by the row's score
        super().__init__(members)

    @property
    def latency(self) -> int:
        """Enabled cycles from a row entering to its result on ``out``."""
        return self.lanes[0].latency

    def elaborate(self, platform):
        m = Module()
        en = Signal(name="advance")
        m.d.comb += [en.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(en)]
        for j, lane in enumerate(self.lanes):
            m.submodules[f"lane_{j}"] = lane
            m.d.comb += [lane.en.eq(en), lane.fmt.eq(self.fmt), lane.gelu.eq(self.gelu),
                         lane.residual.eq(self.residual), lane.acc.eq(self.inp.payload.acc[j]),
                         lane.bias.eq(self.inp.payload.bias[j]), lane.res.eq(self.inp.payload.res[j]),
                         self.out.payload[j].eq(lane.y)]
            if self.score_format is not None:
                m.d.comb += [lane.weight.eq(self.weight), lane.score.eq(self.inp.payload.score),
                             lane.accumulate.eq(self.inp.payload.accumulate)]
        valid = self.inp.valid
        for depth in range(1, self.latency + 1):
            valid = stage(m, en, f"valid_{depth}", valid)
        m.d.comb += self.out.valid.eq(valid)
        return m
