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

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..arith.fixed import FixedFormat, Overflow, Rounding, requantize_hw, shift_round_hw
from .exp import Exp, ExpSpec
from .interface import INPUT_STREAM, OUTPUT_STREAM, element_layout
from .pipeline import stage
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


def delayed(m: Module, en, value, stages: int, name: str):
    """``value`` after ``stages`` registers ``<name>_<k>`` loading while ``en`` is high."""
    shape = value.shape()  # keeps a view's layout
    for k in range(stages):
        value = stage(m, en, f"{name}_{k}", value, shape)
    return value


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

        Exp of the beat (E), update the sum (1), reciprocal (R) and store ``1/s``
        (1), read the row buffer (1), exp (E), multiply and requantise into the
        output register (1).
        """
        return 4 + 2 * self.exp_latency + self.reciprocal_latency

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

        running_max = Signal(spec.input.shape(), name="running_max")
        beat_max = Signal(spec.input.shape())
        gap = Signal(diff)  # m - b
        new_max = Signal()
        max_now = Signal(spec.input.shape())
        m.d.comb += [
            beat_max.eq(lane_max([beat.data[l] for l in range(lanes)], valid)),
            gap.eq(running_max - beat_max),
            new_max.eq(store.first | gap[-1]),
            max_now.eq(Mux(new_max, beat_max, running_max)),
        ]
        with m.If(accept):
            m.d.sync += running_max.eq(max_now)
            with m.If(beat.last):
                for b in range(banks):
                    with m.If(equals(store.write_bank, b)):
                        m.d.sync += row_max[b].eq(max_now)

        # The exps start on the accepted beat (their first stage registers it); the tags wait for them.
        always = Const(1, 1)
        tag_fields = {"valid": 1, "first": 1, "new_max": 1, "last": 1, "bank": store.write_bank.shape(),
                      "merge_zero": 1}
        if spec.lane_exps:
            tag_fields.update(lanes=lanes, zero=lanes)
        tag_now = Signal(data.StructLayout(tag_fields))
        m.d.comb += [
            tag_now.valid.eq(accept), tag_now.first.eq(store.first), tag_now.new_max.eq(new_max),
            tag_now.last.eq(beat.last), tag_now.bank.eq(store.write_bank),
            tag_now.merge_zero.eq(~gap.any()),
        ]
        if spec.lane_exps:
            m.d.comb += [tag_now.lanes.eq(valid),
                         tag_now.zero.eq(Cat(*[beat.data[l] == beat_max for l in range(lanes)]))]
        m.submodules.merge_exp = merge_exp = Exp(spec.exp)
        m.d.comb += [merge_exp.x.eq(Mux(gap[-1], gap, -gap)[:diff.width]), merge_exp.en.eq(1)]
        lane_exps = []
        for l in range(spec.lane_exps):
            m.submodules[f"stats_exp_{l}"] = unit = Exp(spec.exp)
            m.d.comb += [unit.x.eq((beat.data[l] - beat_max)[:diff.width]), unit.en.eq(1)]
            lane_exps.append(unit.y)

        # E cycles later: merge the beat into the running sum.
        tag_c = delayed(m, always, tag_now, self.exp_latency, "stats_tag")
        one = Const(spec.one, spec.exp_format.shape())
        if spec.lane_exps:
            terms = [Mux(tag_c.lanes[l], Mux(tag_c.zero[l], one, lane_exps[l]), 0) for l in range(lanes)]
            beat_sum = sum(terms[1:], terms[0])
        else:
            beat_sum = one
        sum_shape = spec.sum_format.shape()
        running_sum = Signal(sum_shape, name="running_sum")
        scale = Signal(spec.exp_format.shape())
        kept = Signal(sum_shape)
        scaled = Signal(sum_shape)  # the side that moves to the new max
        fixed = Signal(sum_shape)
        m.d.comb += [
            scale.eq(Mux(tag_c.merge_zero, one, merge_exp.y)),
            kept.eq(Mux(tag_c.first, 0, running_sum)),
            scaled.eq(Mux(tag_c.new_max, kept, beat_sum)),
            fixed.eq(Mux(tag_c.new_max, beat_sum, kept)),
        ]
        product = shift_round_hw(scaled * scale, spec.exp_format.frac, spec.rounding)
        with m.If(tag_c.valid):
            m.d.sync += running_sum.eq((fixed + product)[:sum_shape.width])

        # The row's final sum goes to the reciprocal; 1/s is stored per bank.
        done = stage(m, always, "sum_done", tag_c.valid & tag_c.last)
        done_bank = stage(m, always, "sum_bank", tag_c.bank)
        m.submodules.reciprocal = reciprocal = Reciprocal(spec.reciprocal)
        m.d.comb += [reciprocal.x.eq(running_sum), reciprocal.en.eq(1)]
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
        read = store.read
        maximum = pick(m, read.bank, stats["max"], "read_max", spec.input.shape())
        tag_now = read_tag(m, read, lanes, zero=(lanes, Cat(*[read.beat.data[l] == maximum for l in range(lanes)])))
        exps = []
        for l in range(lanes):
            m.submodules[f"out_exp_{l}"] = unit = Exp(spec.exp)
            m.d.comb += [unit.x.eq((read.beat.data[l] - maximum)[:diff.width]), unit.en.eq(output.en)]
            exps.append(unit.y)
        tag = delayed(m, output.en, tag_now, self.exp_latency, "out_tag")
        inv = pick(m, tag.bank, stats["inv"], "out_inv", spec.reciprocal.output.shape())
        one = Const(spec.one, spec.exp_format.shape())
        output.load(tag, [requantize_hw(Mux(tag.zero[l], one, exps[l]) * inv,
                                        spec.exp_format.frac + spec.reciprocal.output.frac,
                                        spec.output, spec.rounding, spec.overflow) for l in range(lanes)])
