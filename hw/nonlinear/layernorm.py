"""LayerNorm over rows of a run-time length: one statistics pass, one output pass, ``lanes`` per cycle.

Per row ``x[0..n-1]`` (codes of ``spec.input``, ``f`` fraction bits), in the
order the golden model ``sim/golden/layernorm.py`` repeats exactly:

**Statistics pass** (one beat per cycle): with ``r = x[0]`` (the row's first
element) and ``d = x - r``, exact integer sums ``S = sum d``, ``Q = sum d**2``
and the count ``n`` (accumulators sized from ``n_max``: they never overflow).
Summing ``d`` rather than ``x`` is the "shifted data" form of the one-pass
variance: ``E[d**2] - E[d]**2`` does not cancel catastrophically when a row's
values sit far from 0 with a small spread. After the row's last beat:

1. ``inv_n = 1/n`` from the reciprocal block (:attr:`LayerNormSpec.inv_n_format`);
2. ``offset = requantize(S * inv_n)`` (:attr:`LayerNormSpec.offset_format`),
   ``mean = fit(r + offset)`` (:attr:`LayerNormSpec.mean_format`) and
   ``ex2 = requantize(Q * inv_n)`` (``E[d**2]``, :attr:`LayerNormSpec.var_format`);
3. ``var = max(0, ex2 - requantize(offset**2)) + eps`` (``eps`` a code of the
   variance format, at least 1), in :attr:`LayerNormSpec.var_eps_format`;
4. ``rstd = rsqrt(var)`` from the rsqrt block.

Every requantisation uses ``spec.rounding`` (saturating; the formats are
sized so that nothing saturates but ``rstd`` and the normalised value).

**Output pass** over the row buffered in a :class:`~.rowstore.RowStore`, for
the element at position ``i``: ``c = x - mean`` (exact), ``y = requantize(c *
rstd)`` into :attr:`LayerNormSpec.norm_format`, ``z = requantize(y * gamma[i] +
beta[i])`` into ``spec.output`` with ``spec.rounding`` and ``spec.overflow``.

``gamma`` and ``beta`` live in a parameter memory of ``n_max`` entries loaded
through the ``params`` stream: per-channel parameters are the same for every
row (token) of a layer, so loading them once costs no row bandwidth.
"""

import operator
from dataclasses import dataclass

from amaranth.hdl import Const, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..arith.fixed import MAX_INTERMEDIATE_BITS, FixedFormat, Overflow, Rounding, fit_hw, requantize_hw
from ..arith.tree import balanced
from ..mem import address_shape, one_word_memory
from .interface import INPUT_STREAM, OUTPUT_STREAM, element_layout
from .pipeline import delayed, split_product, stage
from .reciprocal import Reciprocal, ReciprocalSpec
from .rowstore import OutputRegister, RowUnit, check_row_spec, equals, pick, read_tag
from .rsqrt import Rsqrt, RsqrtSpec
from .softmax import lane_mask

#: Name of the stream that loads gamma and beta.
PARAMS_STREAM = "params"


def params_layout(gamma: FixedFormat, beta: FixedFormat, lanes: int) -> data.StructLayout:
    """One ``params`` beat: ``gamma`` and ``beta`` of ``lanes`` consecutive channels, ``last`` on the final beat."""
    return data.StructLayout({"gamma": data.ArrayLayout(gamma.shape(), lanes),
                              "beta": data.ArrayLayout(beta.shape(), lanes), "last": 1})


def count_format(n_max: int) -> FixedFormat:
    """The row length ``n`` (``1..n_max``) as an unsigned integer."""
    return FixedFormat(bits_for(n_max), 0, False)


def _largest_difference(fmt: FixedFormat) -> int:
    """Largest ``|x - y|`` of two codes of ``fmt``."""
    return fmt.max_code - fmt.min_code


def var_format(fmt: FixedFormat, stat_frac: int) -> FixedFormat:
    """Unsigned, holds ``E[d**2] <= max d**2`` (``d`` a difference of ``fmt`` codes), ``stat_frac`` fraction bits."""
    largest = _largest_difference(fmt) ** 2
    return FixedFormat(bits_for((largest << stat_frac) >> (2 * fmt.frac)) + 1, stat_frac, False)


def var_eps_format(fmt: FixedFormat, stat_frac: int) -> FixedFormat:
    """``var + eps``: one bit more than :func:`var_format`."""
    var = var_format(fmt, stat_frac)
    return FixedFormat(var.width + 1, stat_frac, False)


@dataclass(frozen=True)
class LayerNormSpec:
    """Formats, sizes and blocks of a :class:`LayerNorm` unit (see the module docstring for the steps).

    ``stat_frac``: fraction bits of the mean and the variance (at least
    ``input.frac``). ``eps``: a code of the variance format (>= 1, so the rsqrt
    input is never 0). ``reciprocal``: input :attr:`count_format`, output
    :attr:`inv_n_format` (unsigned). ``rsqrt``: input :attr:`var_eps_format`,
    output the format of ``rstd``. ``norm``: format of the normalised value.
    """

    input: FixedFormat
    output: FixedFormat
    lanes: int
    n_max: int
    gamma: FixedFormat
    beta: FixedFormat
    stat_frac: int
    eps: int
    norm: FixedFormat
    reciprocal: ReciprocalSpec
    rsqrt: RsqrtSpec
    rounding: Rounding = Rounding.HALF_EVEN
    overflow: Overflow = Overflow.SATURATE
    banks: int = 2

    def __post_init__(self):
        check_row_spec(self)
        if self.stat_frac < self.input.frac:
            raise ValueError(f"stat_frac ({self.stat_frac}) must be at least input.frac ({self.input.frac})")
        if self.eps < 1:
            raise ValueError(f"eps must be at least one code of the variance format, not {self.eps}")
        if self.reciprocal.input != self.count_format or self.reciprocal.output.signed:
            raise ValueError(f"the reciprocal must take {self.count_format} and give an unsigned format")
        if self.rsqrt.input != self.var_eps_format or self.rsqrt.output.signed:
            raise ValueError(f"the rsqrt must take {self.var_eps_format} and give an unsigned format")
        if not self.norm.signed:
            raise ValueError("the normalised value's format must be signed")
        # Per element (the output pass, the golden's int64 arrays): at most MAX_INTERMEDIATE_BITS.
        widest = max(self.centered_width + self.rsqrt.output.width + 1, self.scaled_width + 2)
        if widest > MAX_INTERMEDIATE_BITS:
            raise ValueError(f"intermediate products would need {widest} bits (at most {MAX_INTERMEDIATE_BITS}): "
                             "use fewer stat_frac, rstd or output bits")
        # Per row (the exact sums and their products with 1/n) the hardware sizes its registers and the golden
        # uses Python integers beyond 62 bits: at most about 104 bits, as the variance format is within 62.

    # formats and widths (shared by the generator and the golden model)
    @property
    def count_format(self) -> FixedFormat:
        return count_format(self.n_max)

    @property
    def inv_n_format(self) -> FixedFormat:
        return self.reciprocal.output

    @property
    def statistics_width(self) -> int:
        """Widest per-row intermediate: ``S * inv_n``, ``Q * inv_n``, ``E[d]**2``."""
        return max(self.sum_width + self.inv_n_format.width, self.square_sum_width + self.inv_n_format.width,
                   2 * self.offset_format.width, 2 * self.difference_width)

    @property
    def difference_width(self) -> int:
        """Signed bits of ``d = x - x[0]``."""
        return bits_for(_largest_difference(self.input)) + 1

    @property
    def sum_width(self) -> int:
        """Signed bits of ``S``: ``n_max`` differences."""
        return bits_for(_largest_difference(self.input) * self.n_max) + 1

    @property
    def square_sum_width(self) -> int:
        """Unsigned bits of ``Q``: ``n_max`` squared differences."""
        return bits_for(_largest_difference(self.input) ** 2 * self.n_max)

    @property
    def offset_format(self) -> FixedFormat:
        """``E[d]``: signed, the range of a difference, ``stat_frac`` fraction bits."""
        return FixedFormat(self.difference_width - self.input.frac + self.stat_frac, self.stat_frac, True)

    @property
    def mean_format(self) -> FixedFormat:
        """Signed, the input's integer bits (a mean stays in the input's range), ``stat_frac`` fraction bits."""
        return FixedFormat(self.input.width - self.input.frac + self.stat_frac + (0 if self.input.signed else 1),
                           self.stat_frac, True)

    @property
    def var_format(self) -> FixedFormat:
        return var_format(self.input, self.stat_frac)

    @property
    def var_eps_format(self) -> FixedFormat:
        return var_eps_format(self.input, self.stat_frac)

    @property
    def centered_width(self) -> int:
        """Signed bits of ``x - mean`` (``stat_frac`` fraction bits)."""
        return self.mean_format.width + 1

    @property
    def scaled_frac(self) -> int:
        """Fraction bits of ``y * gamma + beta`` before the output requantisation."""
        return max(self.norm.frac + self.gamma.frac, self.beta.frac)

    @property
    def scaled_width(self) -> int:
        return max(self.norm.width + self.gamma.width + self.scaled_frac - self.norm.frac - self.gamma.frac,
                   self.beta.width + self.scaled_frac - self.beta.frac) + 1


class LayerNorm(RowUnit):
    """LayerNorm of each row on ``inp`` to ``out``, per-channel ``gamma``/``beta`` from ``params``.

    Ports: ``inp`` and ``out``, element streams of ``spec.input`` and
    ``spec.output`` (an output row has the beats of its input row); ``params``,
    a stream of :func:`params_layout` beats, always ready: beat ``k`` of a load
    writes the parameters of channels ``k*lanes .. k*lanes + lanes - 1``; the
    beat with ``last`` ends the load (the next beat starts again at channel 0).
    Load before the rows that use the values; a load while rows are in flight
    changes the values their output pass reads.

    Timing: like :class:`~.softmax.Softmax`: ``inp.ready`` is high while a
    row buffer is free; the first output beat is valid :attr:`latency` cycles
    after the row's last input beat moved (idle output pass), then one beat per
    cycle while ``out.ready`` is high; the next rows' statistics passes overlap.
    """

    def __init__(self, spec: LayerNormSpec):
        self.spec = spec
        super().__init__({
            INPUT_STREAM: In(stream.Signature(element_layout(spec.input, spec.lanes))),
            PARAMS_STREAM: In(stream.Signature(params_layout(spec.gamma, spec.beta, spec.lanes))),
            OUTPUT_STREAM: Out(stream.Signature(element_layout(spec.output, spec.lanes))),
        })

    @property
    def latency(self) -> int:
        """Cycles from a row's last input beat moving to its first output beat being valid (idle output pass).

        Differences (1), squares and beat sum (1), row totals (1), 1/n (R1), the exact products with 1/n (1),
        E[d] and E[d^2] (1), the mean and the two halves of E[d]^2 (1), E[d]^2 (1), var + eps (1), rsqrt
        (R2), store the statistics (1), read the row (1), centre (1), the two halves of the product with
        rstd (1), normalise (1), the exact y * gamma + beta (1), requantise into the output register (1).
        """
        return 15 + self.spec.reciprocal.latency + self.spec.rsqrt.latency

    def statistics(self) -> dict:
        """Per row: the mean and ``rstd``."""
        return {"mean": self.spec.mean_format.shape(), "rstd": self.spec.rsqrt.output.shape()}

    # ------------------------------------------------------------------ statistics
    def _statistics_pass(self, m, store, stats):
        spec = self.spec
        row_mean, row_rstd = stats["mean"], stats["rstd"]
        lanes = spec.lanes
        beat = store.inp.payload
        accept = Signal()
        m.d.comb += accept.eq(store.inp.valid & store.inp.ready)
        valid = lane_mask(m, beat, lanes, "in_lanes")
        sum_shape, square_shape = signed(spec.sum_width), unsigned(spec.square_sum_width)
        count_shape = spec.count_format.shape()

        # d = x - r, r the row's first element (lane 0 of its first beat): registered with the beat's control.
        # The reference register is written on the first beat's edge; reference_s copies it one cycle after each
        # beat, when it holds that beat's row's r (the next row's first beat can only have moved in that cycle).
        reference = Signal(spec.input.shape(), name="reference")
        reference_now = Mux(store.first, beat.data[0], reference)
        with m.If(accept & store.first):
            m.d.sync += reference.eq(beat.data[0])
        always = Const(1, 1)
        difference = signed(spec.difference_width)
        diffs = [stage(m, always, f"diff_{l}", Mux(valid[l], beat.data[l] - reference_now, 0), difference)
                 for l in range(lanes)]
        tag_fields = {"valid": 1, "first": 1, "last": 1, "bank": store.write_bank.shape(),
                      "count": spec.count_format.shape()}
        tag_now = Signal(data.StructLayout(tag_fields))
        m.d.comb += [tag_now.valid.eq(accept), tag_now.first.eq(store.first), tag_now.last.eq(beat.last),
                     tag_now.bank.eq(store.write_bank), tag_now.count.eq(beat.count if lanes > 1 else 1)]
        # Then the squares and the beat's sum of differences; then the running sums (one adder tree each, closing
        # the per-beat loop).
        squares = [stage(m, always, f"square_{l}", diffs[l] * diffs[l], unsigned(2 * spec.difference_width - 2))
                   for l in range(lanes)]
        beat_sum = stage(m, always, "beat_sum", balanced(operator.add, diffs), sum_shape)
        reference_s = stage(m, always, "reference_s", reference)
        tag = delayed(m, always, tag_now, 2, "beat_tag")
        running_sum = Signal(sum_shape, name="running_sum")
        running_squares = Signal(square_shape, name="running_squares")
        running_count = Signal(count_shape, name="running_count")
        row_reference = Signal(spec.input.shape(), name="row_reference")
        with m.If(tag.valid):
            m.d.sync += [
                running_sum.eq(Mux(tag.first, 0, running_sum) + beat_sum),
                running_squares.eq(Mux(tag.first, 0, running_squares) + balanced(operator.add, squares)),
                running_count.eq(Mux(tag.first, 0, running_count) + tag.count),
                row_reference.eq(reference_s),
            ]
        row_done = stage(m, always, "row_done", tag.valid & tag.last)
        row_bank = stage(m, always, "row_bank", tag.bank)

        # 1/n (the running registers hold the row's totals in the cycle after its last beat).
        m.submodules.inv_n = inv_n = Reciprocal(spec.reciprocal)
        m.d.comb += [inv_n.x.eq(running_count), inv_n.en.eq(1)]
        r1 = spec.reciprocal.latency
        totals = Signal(data.StructLayout({"done": 1, "bank": row_bank.shape(), "reference": spec.input.shape(),
                                           "sum": sum_shape, "squares": square_shape}))
        m.d.comb += [totals.done.eq(row_done), totals.bank.eq(row_bank), totals.reference.eq(row_reference),
                     totals.sum.eq(running_sum), totals.squares.eq(running_squares)]
        waited = delayed(m, always, totals, r1, "totals")

        # E[d] and E[d^2]: the exact products, then their requantisations.
        x_frac, inv_frac = spec.input.frac, spec.inv_n_format.frac
        sat = Overflow.SATURATE
        # Each product as two registered halves (split on 1/n): half the multiplier depth per stage, the
        # same latency (the halves are summed inside the requantisation's stage).
        sum_product = split_product(m, always, "sum_product", waited.sum, inv_n.y)
        square_product = split_product(m, always, "square_product", waited.squares, inv_n.y)
        offset = stage(m, always, "offset", requantize_hw(sum_product, x_frac + inv_frac, spec.offset_format,
                                                          spec.rounding, sat), spec.offset_format.shape())
        ex2 = stage(m, always, "mean_square", requantize_hw(square_product, 2 * x_frac + inv_frac,
                                                            spec.var_format, spec.rounding, sat),
                    spec.var_format.shape())
        tag_now = Signal(data.StructLayout({"done": 1, "bank": row_bank.shape(), "reference": spec.input.shape()}))
        m.d.comb += [tag_now.done.eq(waited.done), tag_now.bank.eq(waited.bank),
                     tag_now.reference.eq(waited.reference)]
        tag_p = delayed(m, always, tag_now, 2, "mean_tag")

        # The mean; the exact E[d]^2, then its requantisation; then var + eps.
        mean = stage(m, always, "mean", fit_hw((tag_p.reference << (spec.stat_frac - x_frac)) + offset,
                                               spec.mean_format, sat), spec.mean_format.shape())
        offset_square = split_product(m, always, "offset_square", offset, offset)
        ex2_a = stage(m, always, "mean_square_a", ex2)
        squared_mean = stage(m, always, "squared_mean", requantize_hw(offset_square, 2 * spec.stat_frac,
                                                                      spec.var_format, spec.rounding, sat),
                             spec.var_format.shape())
        ex2_b = stage(m, always, "mean_square_b", ex2_a)
        difference = Signal(signed(spec.var_format.width + 1))
        m.d.comb += difference.eq(ex2_b - squared_mean)
        var_eps = stage(m, always, "var_eps", Mux(difference[-1], 0, difference) + spec.eps,
                        spec.var_eps_format.shape())
        mean_v = delayed(m, always, mean, 2, "mean_v")
        tag_v = delayed(m, always, tag_p, 3, "var_tag")

        # rstd, then store the row's statistics.
        m.submodules.rsqrt = rsqrt = Rsqrt(spec.rsqrt)
        m.d.comb += [rsqrt.x.eq(var_eps), rsqrt.en.eq(1)]
        r2 = spec.rsqrt.latency
        mean_r = delayed(m, always, mean_v, r2, "mean_r")
        tag_r = delayed(m, always, tag_v, r2, "rstd_tag")
        with m.If(tag_r.done):
            for b in range(spec.banks):
                with m.If(equals(tag_r.bank, b)):
                    m.d.sync += [row_mean[b].eq(mean_r), row_rstd[b].eq(rsqrt.y)]
        # The row becomes readable at the same edge as its statistics are stored.
        m.d.comb += [store.stats_done.eq(tag_r.done), store.stats_bank.eq(tag_r.bank)]

    # ------------------------------------------------------------------ output
    def _output_pass(self, m, store, stats):
        spec = self.spec
        lanes = spec.lanes
        out = getattr(self, OUTPUT_STREAM)
        params = getattr(self, PARAMS_STREAM)

        # Parameter memory: written by the params stream, read alongside the row buffer.
        words = store.words
        word = data.StructLayout({"gamma": data.ArrayLayout(spec.gamma.shape(), lanes),
                                  "beta": data.ArrayLayout(spec.beta.shape(), lanes)})
        if words > 1:
            m.submodules.parameters = memory = Memory(shape=word, depth=words, init=[])
            load = memory.write_port()
            fetch = memory.read_port()
        else:  # rows of at most ``lanes`` elements: one word, no address
            load, fetch = one_word_memory(m, "parameters", word)
        load_index = Signal(address_shape(words), name="load_index")
        m.d.comb += [
            params.ready.eq(1),
            load.addr.eq(load_index),
            load.data.gamma.eq(params.payload.gamma),
            load.data.beta.eq(params.payload.beta),
            load.en.eq(params.valid),
        ]
        with m.If(params.valid):
            with m.If(params.payload.last | equals(load_index, words - 1)):
                m.d.sync += load_index.eq(0)
            with m.Else():
                m.d.sync += load_index.eq(load_index + 1)

        output = OutputRegister(m, out, store, spec.output, lanes)
        en = output.en
        m.d.comb += [fetch.addr.eq(store.read_index), fetch.en.eq(en)]
        read = store.read
        mean = pick(m, read.bank, stats["mean"], "read_mean", spec.mean_format.shape())
        rstd = pick(m, read.bank, stats["rstd"], "read_rstd", spec.rsqrt.output.shape())

        # Normalise: y = (x - mean) * rstd: the centred value, the exact product, its requantisation.
        shift = spec.stat_frac - spec.input.frac
        tag_now = read_tag(m, read, lanes)
        tag = delayed(m, en, tag_now, 4, "norm_tag")
        rstd_c = stage(m, en, "rstd_c", rstd)
        normalised, gammas, betas = [], [], []
        for l in range(lanes):
            centered = stage(m, en, f"centered_{l}", (read.beat.data[l] << shift) - mean,
                             signed(spec.centered_width))
            product = split_product(m, en, f"norm_product_{l}", centered, rstd_c)
            y = requantize_hw(product, spec.stat_frac + spec.rsqrt.output.frac, spec.norm, spec.rounding,
                              Overflow.SATURATE)
            normalised.append(stage(m, en, f"norm_{l}", y, spec.norm.shape()))
            gammas.append(delayed(m, en, fetch.data.gamma[l], 3, f"gamma_{l}"))
            betas.append(delayed(m, en, fetch.data.beta[l], 3, f"beta_{l}"))

        # Scale and shift (the exact y * gamma + beta), then requantise into the output register.
        product_shift = spec.scaled_frac - spec.norm.frac - spec.gamma.frac
        beta_shift = spec.scaled_frac - spec.beta.frac
        scaled = [stage(m, en, f"scaled_{l}", ((normalised[l] * gammas[l]) << product_shift)
                        + (betas[l] << beta_shift)) for l in range(lanes)]
        output.load(tag, [requantize_hw(scaled[l], spec.scaled_frac, spec.output, spec.rounding, spec.overflow)
                          for l in range(lanes)])
