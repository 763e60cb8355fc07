"""Single-pass (online) softmax over rows of a run-time length, ``lanes`` elements per cycle.

Per row ``x[0..n-1]`` (signed codes of ``spec.input``), in the order the golden
model ``sim/golden/softmax.py`` repeats exactly:

**Statistics pass**, one beat of up to ``lanes`` elements per cycle. With
``E(a) = 1`` (the code ``2**F`` of :attr:`SoftmaxSpec.exp_format`, exact) for
``a = 0`` and the exp block's output for ``a < 0``:

* beat max ``b = max`` of the beat's elements; beat sum ``t = sum E(x_l - b)``
  (exact integer sum; for ``lanes = 1`` the single element is the max, so
  ``t = 1`` and no exp unit is needed);
* merge into the row's running max ``m`` and sum ``s`` (``F`` fraction bits,
  never overflowing: ``s <= n``). First beat: ``m = b, s = t``. Otherwise
  ``d = m - b``; if ``d < 0`` (new max) ``s = round(s * E(d)) + t, m = b``,
  else ``s = s + round(t * E(-d))``. Every exp argument is ``<= 0``; the
  products drop ``F`` fraction bits with ``spec.rounding``. With ``lanes = 1``
  this is Edge-MoE's recurrence, one exp per element.
* after the row's last beat: ``inv = 1/s`` from the reciprocal block (once per row).

**Output pass** over the row buffered in a :class:`~.rowstore.RowStore`:
``p = requantize(E(x - m) * inv)`` into ``spec.output`` with ``spec.rounding``
and ``spec.overflow``; the output beats mirror the input beats.
"""

import operator
from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..arith.fixed import FixedFormat, Overflow, Rounding, requantize_hw, shift_round_hw
from ..arith.tree import balanced
from .exp import Exp, ExpSpec
from .interface import INPUT_STREAM, OUTPUT_STREAM, element_layout
from .pipeline import delayed, stage
from .reciprocal import Reciprocal, ReciprocalSpec
from .rowstore import OutputRegister, RowUnit, check_row_spec, equals, pick, read_tag


def difference_format(fmt: FixedFormat) -> FixedFormat:
    """Exact differences ``x - y`` of two codes of the signed ``fmt``: one more bit."""
    return FixedFormat(fmt.width + 1, fmt.frac, True)


def sum_format(n_max: int, frac: int) -> FixedFormat:
    """A running sum of at most ``n_max`` values in ``[0, 1]`` with ``frac`` fraction bits, exactly."""
    return FixedFormat(bits_for(n_max << frac), frac, False)


@dataclass(frozen=True)
class SoftmaxSpec:
    """Formats, sizes and blocks of a :class:`Softmax` unit.

    ``exp``: its input must be :func:`difference_format` of ``input``, its
    output unsigned with 1.0 representable (``F`` = its fraction bits).
    ``reciprocal``: its input must be :attr:`sum_format`; its output unsigned
    (``1/s`` is in ``(0, 1]`` because ``s >= 1``). ``banks``: rows buffered
    (2: the next row's statistics pass overlaps this row's output pass).
    """

    input: FixedFormat
    output: FixedFormat
    lanes: int
    n_max: int
    exp: ExpSpec
    reciprocal: ReciprocalSpec
    rounding: Rounding = Rounding.HALF_EVEN
    overflow: Overflow = Overflow.SATURATE
    banks: int = 2

    def __post_init__(self):
        check_row_spec(self)
        if not self.input.signed:
            raise ValueError("softmax logits must be a signed format")
        if self.exp.input != difference_format(self.input):
            raise ValueError(f"the exp block's input must be {difference_format(self.input)}, not {self.exp.input}")
        out = self.exp.output
        if out.signed or out.max_code < (1 << out.frac) or out.frac < 0:
            raise ValueError(f"the exp block's output must be unsigned and hold 1.0, not {out}")
        if self.reciprocal.input != self.sum_format:
            raise ValueError(f"the reciprocal's input must be {self.sum_format}, not {self.reciprocal.input}")
        if self.reciprocal.output.signed:
            raise ValueError("the reciprocal's output must be unsigned")

    @property
    def exp_format(self) -> FixedFormat:
        return self.exp.output

    @property
    def one(self) -> int:
        """The code of exp(0) = 1 in :attr:`exp_format`."""
        return 1 << self.exp.output.frac

    @property
    def sum_format(self) -> FixedFormat:
        return sum_format(self.n_max, self.exp.output.frac)

    @property
    def lane_exps(self) -> int:
        """Exp units of the statistics pass for the elements (none for one lane: the element is the max)."""
        return self.lanes if self.lanes > 1 else 0


def lane_max(values, valid) -> "Value":
    """Largest of ``values`` over the lanes whose ``valid`` bit is set (lane 0 always counts)."""
    masked = [values[0]] + [Mux(valid[l], values[l], values[0]) for l in range(1, len(values))]
    while len(masked) > 1:
        pairs = [Mux(a > b, a, b) for a, b in zip(masked[0::2], masked[1::2])]
        masked = pairs + ([masked[-1]] if len(masked) % 2 else [])
    return masked[0]


def lane_mask(m: Module, beat, lanes: int, name: str) -> Signal:
    """Bit ``l`` set when lane ``l`` of ``beat`` holds an element (``l < count``)."""
    mask = Signal(lanes, name=name)
    if lanes == 1:
        m.d.comb += mask.eq(1)
    else:
        m.d.comb += mask.eq(Cat(*[beat.count > l for l in range(lanes)]))
    return mask


class Softmax(RowUnit):
    """Softmax of each row on ``inp`` to ``out`` (see the module docstring for the arithmetic).

    Ports: ``inp`` and ``out``, element streams (:mod:`hw.nonlinear.interface`)
    of ``spec.input`` and ``spec.output``; an output row has the beats
    (``count``, ``last``) of its input row.

    Timing: ``inp.ready`` is high while a row buffer is free; a row of ``n``
    elements is taken in ``ceil(n / lanes)`` consecutive cycles when offered so.
    Its first output beat is valid :attr:`latency` cycles after its last input
    beat moved (when the output pass is idle); output beats follow one per
    cycle while ``out.ready`` is high. With 2 banks the next row's statistics
    pass overlaps this row's output pass; a bank is free again once its row's
    final output beat has left the output register's input.
    """

    def __init__(self, spec: SoftmaxSpec):
        self.spec = spec
        super().__init__({
            INPUT_STREAM: In(stream.Signature(element_layout(spec.input, spec.lanes))),
            OUTPUT_STREAM: Out(stream.Signature(element_layout(spec.output, spec.lanes))),
        })

    @property
    def exp_latency(self) -> int:
        return self.spec.exp.latency

    @property
    def reciprocal_latency(self) -> int:
        return self.spec.reciprocal.latency

    @property
    def latency(self) -> int:
        """Cycles from a row's last input beat moving to its first output beat being valid (idle output pass).

        Beat max (1), exp arguments (1), exp of the beat (E), beat sum and merge scale (1), the beat side's
        product (1) and its rounding (1), update the sum (1), add its pending rounding (1), reciprocal (R),
        store ``1/s`` (1), read the row buffer (1), exp argument (1), exp (E), product (1), requantise into
        the output register (1).
        """
        return 12 + 2 * self.exp_latency + self.reciprocal_latency

    @property
    def exp_units(self) -> int:
        """Exp blocks instantiated: statistics pass (lane exps and the merge exp), output pass."""
        return self.spec.lane_exps + 1 + self.spec.lanes

    def statistics(self) -> dict:
        """Per row: the max ``m`` and ``1/s``."""
        return {"max": self.spec.input.shape(), "inv": self.spec.reciprocal.output.shape()}

    # ------------------------------------------------------------------ statistics
    def _statistics_pass(self, m, store, stats):
        spec = self.spec
        row_max, row_inv = stats["max"], stats["inv"]
        lanes, banks = spec.lanes, spec.banks
        diff = difference_format(spec.input).shape()
        beat = store.inp.payload
        accept = Signal()
        m.d.comb += accept.eq(store.inp.valid & store.inp.ready)
        valid = lane_mask(m, beat, lanes, "in_lanes")
        always = Const(1, 1)

        # Cycle of the accepted beat: its max b (over the valid lanes), registered with the beat.
        beat_fields = {"valid": 1, "first": 1, "last": 1, "bank": store.write_bank.shape(),
                       "data": data.ArrayLayout(spec.input.shape(), lanes), "max": spec.input.shape(), "lanes": lanes}
        beat_now = Signal(data.StructLayout(beat_fields))
        m.d.comb += [beat_now.valid.eq(accept), beat_now.first.eq(store.first), beat_now.last.eq(beat.last),
                     beat_now.bank.eq(store.write_bank), beat_now.data.eq(beat.data), beat_now.lanes.eq(valid),
                     beat_now.max.eq(lane_max([beat.data[l] for l in range(lanes)], valid))]
        held = delayed(m, always, beat_now, 1, "stats_beat")

        # Next cycle: merge b into the running max m (a subtraction and a multiplexer close this loop); the exp
        # arguments m - b (or b - m) and x - b, registered.
        running_max = Signal(spec.input.shape(), name="running_max")
        gap = Signal(diff)  # m - b
        new_max = Signal()
        max_now = Signal(spec.input.shape())
        m.d.comb += [
            gap.eq(running_max - held.max),
            new_max.eq(held.first | gap[-1]),
            max_now.eq(Mux(new_max, held.max, running_max)),
        ]
        with m.If(held.valid):
            m.d.sync += running_max.eq(max_now)
            with m.If(held.last):
                for b in range(banks):
                    with m.If(equals(held.bank, b)):
                        m.d.sync += row_max[b].eq(max_now)
        tag_fields = {"valid": 1, "first": 1, "new_max": 1, "last": 1, "bank": store.write_bank.shape(),
                      "merge_zero": 1}
        if spec.lane_exps:
            tag_fields.update(lanes=lanes, zero=lanes)
        tag_now = Signal(data.StructLayout(tag_fields))
        m.d.comb += [
            tag_now.valid.eq(held.valid), tag_now.first.eq(held.first), tag_now.new_max.eq(new_max),
            tag_now.last.eq(held.last), tag_now.bank.eq(held.bank), tag_now.merge_zero.eq(~gap.any()),
        ]
        if spec.lane_exps:
            m.d.comb += [tag_now.lanes.eq(held.lanes),
                         tag_now.zero.eq(Cat(*[held.data[l] == held.max for l in range(lanes)]))]
        merge_arg = stage(m, always, "merge_arg", Mux(gap[-1], gap, -gap)[:diff.width], diff)
        lane_args = [stage(m, always, f"lane_arg_{l}", (held.data[l] - held.max)[:diff.width], diff)
                     for l in range(spec.lane_exps)]
        tag_a = delayed(m, always, tag_now, 1, "stats_arg_tag")

        # The exps (E cycles); then the beat sum t and the merge scale E(+-d), registered.
        m.submodules.merge_exp = merge_exp = Exp(spec.exp)
        m.d.comb += [merge_exp.x.eq(merge_arg), merge_exp.en.eq(1)]
        lane_exps = []
        for l in range(spec.lane_exps):
            m.submodules[f"stats_exp_{l}"] = unit = Exp(spec.exp)
            m.d.comb += [unit.x.eq(lane_args[l]), unit.en.eq(1)]
            lane_exps.append(unit.y)
        tag_e = delayed(m, always, tag_a, self.exp_latency, "stats_tag")
        one = Const(spec.one, spec.exp_format.shape())
        sum_shape = spec.sum_format.shape()
        if spec.lane_exps:
            terms = [Mux(tag_e.lanes[l], Mux(tag_e.zero[l], one, lane_exps[l]), 0) for l in range(lanes)]
            beat_sum_now = balanced(operator.add, terms)
        else:
            beat_sum_now = one
        beat_sum = stage(m, always, "beat_sum", beat_sum_now, sum_shape)
        scale = stage(m, always, "merge_scale", Mux(tag_e.merge_zero, one, merge_exp.y), spec.exp_format.shape())
        tag_s = delayed(m, always, tag_e, 1, "merge_tag")

        # Without a new max the beat's side moves: round(t * E(-d)), the exact product, then its rounding.
        frac = spec.exp_format.frac
        beat_product = stage(m, always, "beat_product", beat_sum * scale)
        scale_p, beat_sum_p = stage(m, always, "merge_scale_p", scale), stage(m, always, "beat_sum_p", beat_sum)
        tag_p = delayed(m, always, tag_s, 1, "merge_tag_p")
        moved = stage(m, always, "beat_moved", shift_round_hw(beat_product, frac, spec.rounding)[:sum_shape.width],
                      sum_shape)
        # (the first beat's scale is 0: s = round(0 * E) + t = t).
        scale_m = stage(m, always, "merge_scale_m", Mux(tag_p.first, 0, scale_p))
        beat_sum_m = stage(m, always, "beat_sum_m", beat_sum_p)
        tag_c = delayed(m, always, tag_p, 1, "merge_tag_m")

        # The merge, the loop of the running sum, kept as s = running_sum + running_up (a pending rounding
        # increment, so that no incrementer closes the loop): a new max (or the first beat) s = round(s * E(d)) + t
        # as one multiply-add Q = running_sum * E(d) + running_up * E(d) + t * 2**F, its floor floor(Q / 2**F)
        # and the rounding's increment from Q's low bits (those of s * E(d); its bit F is Q's xor t's lowest);
        # otherwise s = s + round(t * E(-d)), one adder.
        running_sum = Signal(sum_shape, name="running_sum")
        running_up = Signal(name="running_up")
        total = running_sum * scale_m + Mux(running_up, scale_m, 0) + (beat_sum_m << frac)
        if spec.rounding is Rounding.TRUNCATE:
            up = Const(0, 1)
        else:
            up = total[frac - 1]  # frac >= 1; every value is positive (half away: a half rounds up)
            if spec.rounding is Rounding.HALF_EVEN:
                below = total[:frac - 1].any() if frac > 1 else Const(0, 1)
                up = up & (below | (total[frac] ^ beat_sum_m[0]))
        with m.If(tag_c.valid):
            with m.If(tag_c.new_max):
                m.d.sync += [running_sum.eq((total >> frac)[:sum_shape.width]), running_up.eq(up)]
            with m.Else():
                m.d.sync += [running_sum.eq((running_sum + moved + running_up)[:sum_shape.width]), running_up.eq(0)]

        # The row's final sum s (the pending increment added) goes to the reciprocal; 1/s is stored per bank.
        row_sum = stage(m, always, "row_sum", (running_sum + running_up)[:sum_shape.width], sum_shape)
        done = delayed(m, always, tag_c.valid & tag_c.last, 2, "sum_done")
        done_bank = delayed(m, always, tag_c.bank, 2, "sum_bank")
        m.submodules.reciprocal = reciprocal = Reciprocal(spec.reciprocal)
        m.d.comb += [reciprocal.x.eq(row_sum), reciprocal.en.eq(1)]
        inv_done = delayed(m, always, done, self.reciprocal_latency, "inv_done")
        inv_bank = delayed(m, always, done_bank, self.reciprocal_latency, "inv_bank")
        with m.If(inv_done):
            for b in range(banks):
                with m.If(equals(inv_bank, b)):
                    m.d.sync += row_inv[b].eq(reciprocal.y)
        m.d.comb += [store.stats_done.eq(inv_done), store.stats_bank.eq(inv_bank)]

    # ------------------------------------------------------------------ output
    def _output_pass(self, m, store, stats):
        spec = self.spec
        lanes = spec.lanes
        diff = difference_format(spec.input).shape()
        output = OutputRegister(m, getattr(self, OUTPUT_STREAM), store, spec.output, lanes)
        en = output.en
        read = store.read
        maximum = pick(m, read.bank, stats["max"], "read_max", spec.input.shape())
        tag_now = read_tag(m, read, lanes, zero=(lanes, Cat(*[read.beat.data[l] == maximum for l in range(lanes)])))
        # x - m, registered; the exps; the exact products E(x - m) * (1/s); their requantisation.
        exps = []
        for l in range(lanes):
            m.submodules[f"out_exp_{l}"] = unit = Exp(spec.exp)
            argument = stage(m, en, f"out_arg_{l}", (read.beat.data[l] - maximum)[:diff.width], diff)
            m.d.comb += [unit.x.eq(argument), unit.en.eq(en)]
            exps.append(unit.y)
        tag = delayed(m, en, tag_now, 1 + self.exp_latency, "out_tag")
        inv = pick(m, tag.bank, stats["inv"], "out_inv", spec.reciprocal.output.shape())
        one = Const(spec.one, spec.exp_format.shape())
        products = [stage(m, en, f"out_product_{l}", Mux(tag.zero[l], one, exps[l]) * inv) for l in range(lanes)]
        tag_p = delayed(m, en, tag, 1, "out_tag_p")
        output.load(tag_p, [requantize_hw(products[l], spec.exp_format.frac + spec.reciprocal.output.frac,
                                          spec.output, spec.rounding, spec.overflow) for l in range(lanes)])
