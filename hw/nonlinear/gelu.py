"""GELU element block: ``GELU(x) = x * Phi(x)`` by a table, a polynomial or piecewise-linear segments.

Three methods, one interface (:class:`Gelu`, configured by :class:`GeluSpec`):

* ``table`` -- ``GELU(x) = ReLU(x) - delta(|x|)`` with ``delta(t) = t - GELU(t) =
  t * Phi(-t)`` (even in ``x``, at most 0.17, below ``1e-7`` beyond 5.5). ``delta`` is
  sampled every ``2**-step_bits`` over ``[0, range]`` into a ROM of unsigned entries
  with ``entry_frac`` fraction bits, interpolated linearly between samples, and taken
  as 0 from ``range`` on. Each ROM word holds a sample and the difference to the next
  one, so one read serves one interpolation.
* ``poly`` -- I-BERT's second-order polynomial for the erf term:
  ``erf(u) ~ sign(u) * (a * (min(|u|, -b) + b)**2 + 1)`` with ``a = -0.2888``,
  ``b = -1.769``. With ``u = x / sqrt(2)`` folded into the constants,
  ``GELU(x) = x * (1 + sign(x) * e(|x|)) / 2`` with
  ``e(t) = 1 - A * (B - min(t, B))**2``, ``A = -a / 2`` (``coeff_frac`` fraction bits)
  and ``B = -b * sqrt(2)`` (on the input grid). ``e`` is held with ``erf_frac``
  fraction bits.
* ``pwl`` -- ``segments`` equal segments over ``[-range, range)`` (``[0, range)`` for
  an unsigned input), each ``y = m * x + c`` with ``m`` and ``c`` quantised to
  ``coeff_frac`` fraction bits (per segment the chord, moved by half its largest
  deviation so that the error swings evenly); ``0`` below the range, ``x`` from its
  top on. Breakpoints are input codes; the segment is found by comparing ``x``
  with every inner breakpoint.

Every rounding goes through :mod:`hw.arith.fixed`. Intermediate roundings are
``round_half_even``; the output is rounded by ``spec.rounding`` and fitted by
``spec.overflow``, once. The constants (ROM contents, coefficients) are
computed here from Python's ``math.erfc``, so the golden model
(``sim/golden/gelu.py``) reads the same ones.
"""

import math
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction

from amaranth.hdl import Const, Module, Mux, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ..arith import compare
from ..arith.fixed import MAX_INTERMEDIATE_BITS, FixedFormat, Overflow, Rounding, requantize_hw
from ..arith.widths import signed_width_for
from .pipeline import stage

METHODS = ("table", "poly", "pwl")

#: I-BERT's erf polynomial (Kim et al., 2021): erf(u) ~ sign(u) * (A_IBERT * (min(|u|, -B_IBERT) + B_IBERT)**2 + 1).
A_IBERT = -0.2888
B_IBERT = -1.769

#: Rounding of every intermediate requantisation (the output uses ``spec.rounding``).
INTERNAL = Rounding.HALF_EVEN

#: Knob defaults. table: Edge-MoE's step 1/32 and range 5.5; poly and pwl: see below.
DEFAULT_STEP_BITS = 5
DEFAULT_TABLE_RANGE = 5.5
DEFAULT_PWL_RANGE = 4.0
DEFAULT_SEGMENTS = 16
DEFAULT_COEFF_FRAC = 16
#: Fraction bits of the table entries, and of the poly erf term, beyond the output's. The table's
#: entries feed an interpolation whose error should stay well below an output step; the poly's
#: erf term carries the polynomial's own error of about 0.02, so two more bits are plenty.
ENTRY_EXTRA_FRAC = 4
ERF_EXTRA_FRAC = 2

MAX_TABLE_SEGMENTS = 1 << 14
MAX_PWL_SEGMENTS = 256

#: The knobs each method takes (``GeluSpec`` fields and config keys).
METHOD_KNOBS = {
    "table": ("range", "step_bits", "entry_frac"),
    "poly": ("coeff_frac", "erf_frac"),
    "pwl": ("segments", "range", "coeff_frac"),
}
ALL_KNOBS = ("range", "step_bits", "entry_frac", "coeff_frac", "erf_frac", "segments")


def gelu_exact(x: float) -> float:
    """``x * Phi(x)`` in double precision (``erfc`` keeps the negative tail accurate)."""
    return x * 0.5 * math.erfc(-x / math.sqrt(2.0))


def delta_exact(t: float) -> float:
    """``t - GELU(t) = t * Phi(-t)``, the table method's correction for ``t >= 0``."""
    return t * 0.5 * math.erfc(t / math.sqrt(2.0))


def signed_bits(lo: int, hi: int) -> int:
    """Bits of a two's complement field holding every integer of ``[lo, hi]`` (at least 2, a sign and a bit)."""
    return max(2, signed_width_for(lo, hi))


class SpecError(ValueError):
    """A :class:`GeluSpec` knob has a value the method cannot take; ``knob`` names it."""

    def __init__(self, knob: str, allowed: str):
        super().__init__(f"{knob}: {allowed}")
        self.knob, self.allowed = knob, allowed


@dataclass(frozen=True)
class GeluSpec:
    """What a :class:`Gelu` block computes: formats, method, its knobs, output rounding and overflow.

    Knobs left ``None`` get their defaults (``spec.range`` etc. are always set after
    construction for the knobs the method takes, and ``None`` for the others):

    * table: ``range`` 5.5 (or the largest multiple of the step within the input's
      range), ``step_bits`` ``min(5, input.frac)``, ``entry_frac`` ``output.frac + 4``;
    * poly: ``coeff_frac`` 16, ``erf_frac`` ``output.frac + 2``;
    * pwl: ``segments`` 16, ``range`` ``min(4, input maximum)``, ``coeff_frac`` 16.

    Raises :class:`SpecError` for a knob the method does not take or a value it cannot use.
    """

    input: FixedFormat
    output: FixedFormat
    method: str = "table"
    rounding: Rounding = Rounding.HALF_EVEN
    overflow: Overflow = Overflow.SATURATE
    range: float | None = None
    step_bits: int | None = None
    entry_frac: int | None = None
    coeff_frac: int | None = None
    erf_frac: int | None = None
    segments: int | None = None

    def __post_init__(self):
        if self.method not in METHODS:
            raise SpecError("method", f"one of {', '.join(METHODS)}")
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))
        takes = METHOD_KNOBS[self.method]
        for knob in ALL_KNOBS:
            if knob not in takes and getattr(self, knob) is not None:
                raise SpecError(knob, f"not a knob of method {self.method}, which takes {', '.join(takes)}")
        for knob, value in self.defaults().items():
            if getattr(self, knob) is None:
                object.__setattr__(self, knob, value)
        if self.input.frac < 0:
            raise SpecError("input", "a format with frac >= 0 (GELU needs its values around 0 to 5)")
        {"table": self._check_table, "poly": self._check_poly, "pwl": self._check_pwl}[self.method]()

    # ----------------------------------------------------------------- defaults and checks

    def defaults(self) -> dict:
        """The default of every knob the method takes (derived from the formats)."""
        if self.method == "table":
            step_bits = self.step_bits if self.step_bits is not None else min(DEFAULT_STEP_BITS, self.input.frac)
            grid = Fraction(1, 2 ** max(step_bits, 0))
            top = min(Fraction(DEFAULT_TABLE_RANGE), self._input_max())
            return {"range": float((top // grid) * grid), "step_bits": step_bits,
                    "entry_frac": min(40, max(2, self.output.frac + ENTRY_EXTRA_FRAC))}
        if self.method == "poly":
            return {"coeff_frac": DEFAULT_COEFF_FRAC, "erf_frac": min(40, max(1, self.output.frac + ERF_EXTRA_FRAC))}
        return {"segments": DEFAULT_SEGMENTS, "range": float(min(Fraction(DEFAULT_PWL_RANGE), self._input_max())),
                "coeff_frac": DEFAULT_COEFF_FRAC}

    def _input_max(self) -> Fraction:
        """Largest input magnitude the knobs may span: the format's largest value."""
        return self.input.max_value

    def _check_width(self, what: str, bits: int) -> None:
        if bits > MAX_INTERMEDIATE_BITS:
            raise SpecError("input", f"a narrower format or fewer fraction bits: {what} would need {bits} bits "
                                     f"(at most {MAX_INTERMEDIATE_BITS})")

    def _check_range(self) -> Fraction:
        value = self.range
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise SpecError("range", "a number > 0")
        exact = Fraction(value)
        if exact > self._input_max():
            raise SpecError("range", f"a number > 0 and at most the input's largest value, "
                                     f"{float(self._input_max())}")
        return exact

    def _check_table(self) -> None:
        if not 0 <= self.step_bits <= self.input.frac:
            raise SpecError("step_bits", f"an integer from 0 to input.frac = {self.input.frac} "
                                         f"(a step of at least one input code)")
        steps = self._check_range() * 2 ** self.step_bits
        if steps.denominator != 1 or steps < 2:
            raise SpecError("range", f"a multiple of the step 2**-{self.step_bits}, at least two steps")
        if steps > MAX_TABLE_SEGMENTS:
            raise SpecError("range", f"at most {MAX_TABLE_SEGMENTS / 2 ** self.step_bits} with step_bits = "
                                     f"{self.step_bits} (at most {MAX_TABLE_SEGMENTS} table segments)")
        if not 2 <= self.entry_frac <= 40:
            raise SpecError("entry_frac", "an integer from 2 to 40")
        frac = max(self.input.frac, self.entry_frac + self.table_shift)
        self._check_width("the result before rounding", self.input.width + frac - self.input.frac + 2)

    def _check_poly(self) -> None:
        if not 2 <= self.coeff_frac <= 32:
            raise SpecError("coeff_frac", "an integer from 2 to 32")
        if not 1 <= self.erf_frac <= 40:
            raise SpecError("erf_frac", "an integer from 1 to 40")
        self._check_width("the square of the erf argument", 2 * (self.input.frac + 2))
        self._check_width("the erf polynomial", self.erf_frac + 3 + self.coeff_frac)
        self._check_width("the input times the erf term", self.input.width + self.erf_frac + 3)

    def _check_pwl(self) -> None:
        if not 1 <= self.segments <= MAX_PWL_SEGMENTS:
            raise SpecError("segments", f"an integer from 1 to {MAX_PWL_SEGMENTS}")
        if not 2 <= self.coeff_frac <= 32:
            raise SpecError("coeff_frac", "an integer from 2 to 32")
        self._check_range()
        codes = self.breakpoints
        if len(set(codes)) != len(codes):
            raise SpecError("segments", f"fewer segments or a wider range: with range {self.range} and "
                                        f"{self.input.frac} input fraction bits some segments hold no input code")
        slopes, intercepts = zip(*self.pwl_coefficients)
        product = signed_bits(min(slopes), max(slopes)) + self.input.width
        offset = signed_bits(min(intercepts), max(intercepts)) + self.input.frac
        self._check_width("the segment's line", max(product, offset, self.input.width + self.coeff_frac) + 1)

    # ---------------------------------------------------------------------- table method

    @property
    def table_shift(self) -> int:
        """Input fraction bits below the table step (the interpolation weight's width)."""
        return self.input.frac - self.step_bits

    @cached_property
    def table_entries(self) -> tuple[int, ...]:
        """``delta(j * 2**-step_bits)`` for ``j = 0 .. range * 2**step_bits``, as codes with ``entry_frac`` bits."""
        count = int(Fraction(self.range) * 2 ** self.step_bits) + 1
        fmt = FixedFormat(max(2, self.entry_frac), self.entry_frac, False)  # delta < 1/4: never saturates
        return tuple(int(fmt.from_float(delta_exact(j / 2 ** self.step_bits), INTERNAL)) for j in range(count))

    @cached_property
    def table_segments(self) -> int:
        """Interpolation segments the ROM holds (one word each): trailing segments whose two
        entries are both 0 are left out, since beyond the stored ones the correction is 0 anyway."""
        entries = self.table_entries
        stored = len(entries) - 1
        while stored > 1 and entries[stored - 1] == 0 and entries[stored] == 0:
            stored -= 1
        return stored

    # ----------------------------------------------------------------------- poly method

    @property
    def poly_a(self) -> int:
        """``-A_IBERT / 2`` (the ``1/sqrt(2)**2`` of the argument folded in), ``coeff_frac`` fraction bits."""
        fmt = FixedFormat(self.coeff_frac + 1, self.coeff_frac, False)
        return int(fmt.from_float(-A_IBERT / 2, INTERNAL))

    @property
    def poly_b(self) -> int:
        """``-B_IBERT * sqrt(2)``, where the polynomial reaches 1, on the input grid."""
        fmt = FixedFormat(max(self.input.frac, 0) + 3, max(self.input.frac, 0), False)
        return int(fmt.from_float(-B_IBERT * math.sqrt(2.0), INTERNAL))

    # ------------------------------------------------------------------------ pwl method

    @property
    def pwl_low(self) -> Fraction:
        """Left end of the segmented range: ``-range``, or 0 for an unsigned input."""
        return -Fraction(self.range) if self.input.signed else Fraction(0)

    @cached_property
    def breakpoints(self) -> tuple[int, ...]:
        """The ``segments + 1`` segment ends as input codes (rounded to the nearest code)."""
        low, high = self.pwl_low, Fraction(self.range)
        return tuple(int(self.input.from_float(float(low + (high - low) * i / self.segments), INTERNAL))
                     for i in range(self.segments + 1))

    @cached_property
    def pwl_coefficients(self) -> tuple[tuple[int, int], ...]:
        """Per segment ``(m, c)`` codes with ``coeff_frac`` fraction bits: ``y = m * x + c``."""
        coeff = FixedFormat(MAX_INTERMEDIATE_BITS // 2, self.coeff_frac, True)
        step = 2.0 ** -self.input.frac
        ends = self.breakpoints
        result = []
        for start, stop in zip(ends, ends[1:]):
            x0, x1 = start * step, stop * step
            slope = (gelu_exact(x1) - gelu_exact(x0)) / (x1 - x0)
            # Deviation of GELU from the chord over the segment's codes: centre the error.
            samples = [x0 + (x1 - x0) * k / 64 for k in range(65)]
            deviation = [gelu_exact(x) - (gelu_exact(x0) + slope * (x - x0)) for x in samples]
            intercept = gelu_exact(x0) - slope * x0 + (max(deviation) + min(deviation)) / 2
            result.append((int(coeff.from_float(slope, INTERNAL)), int(coeff.from_float(intercept, INTERNAL))))
        return tuple(result)

    def describe(self) -> str:
        knobs = ", ".join(f"{k}={getattr(self, k)}" for k in METHOD_KNOBS[self.method])
        return (f"gelu {self.method} ({knobs}), {self.input.describe()} -> {self.output.describe()}, "
                f"{self.rounding.value}, {self.overflow.value}")


# --------------------------------------------------------------------------- hardware

def _magnitude(x, fmt: FixedFormat):
    """``(|x|, x < 0)``: ``|x|`` unsigned of the input width (the most negative code fits too)."""
    if fmt.signed:
        return abs(x), x < 0
    return x, Const(0, 1)


def _rom_word(m: Module, en, layout: data.StructLayout, words: list[dict], address) -> data.View:
    """The register ``word``: ROM ``rom`` (``words`` of ``layout``) read at ``address``, loaded while ``en``.

    The ROM is read combinationally so that the register is a named one of this
    module (FPGA tools fold it into a block RAM's output register).
    """
    # A one-word ROM would need a zero-width address: pad it.
    init = words + [{name: 0 for name in layout.members}] * (len(words) == 1)
    m.submodules.rom = rom = memory.Memory(shape=layout, depth=len(init), init=init)
    read = rom.read_port(domain="comb")
    m.d.comb += read.addr.eq(address)
    return stage(m, en, "word", read.data, layout)


class Gelu(wiring.Component):
    """One GELU element per cycle, pipelined, by ``spec.method`` (see the module docstring).

    Ports:

    * ``x``: ``In(spec.input.shape())``, the input code;
    * ``en``: ``In(1)``; the pipeline advances on a rising edge while ``en`` is high and
      holds every stage otherwise;
    * ``y``: ``Out(spec.output.shape())``, ``GELU(x)`` in the output format.

    Timing: the ``x`` present at a rising edge with ``en`` high is on ``y`` after
    :attr:`latency` such edges (2 for ``table`` and ``pwl``, 3 for ``poly``); ``y``
    depends on registers only. After reset ``y`` is 0 until the first element arrives.
    """

    def __init__(self, spec: GeluSpec):
        self.spec = spec
        super().__init__({"x": In(spec.input.shape()), "en": In(1), "y": Out(spec.output.shape())})

    @property
    def latency(self) -> int:
        return _CORES[self.spec.method].LATENCY

    def elaborate(self, platform):
        m = Module()
        m.submodules[self.spec.method] = core = _CORES[self.spec.method](self.spec)
        m.d.comb += [core.x.eq(self.x), core.en.eq(self.en), self.y.eq(core.y)]
        return m


class _Core(wiring.Component):
    """The ports of :class:`Gelu`; subclasses build one method's pipeline."""

    LATENCY = 0

    def __init__(self, spec: GeluSpec):
        self.spec = spec
        super().__init__({"x": In(spec.input.shape()), "en": In(1), "y": Out(spec.output.shape())})

    def _output(self, m: Module, value, frac: int) -> None:
        """Round ``value`` (``frac`` fraction bits) into the output register, which drives ``y``."""
        spec = self.spec
        result = stage(m, self.en, "result", requantize_hw(value, frac, spec.output, spec.rounding, spec.overflow),
                       spec.output.shape())
        m.d.comb += self.y.eq(result)


class GeluTable(_Core):
    """``ReLU(x) - delta(|x|)`` with ``delta`` from a ROM, interpolated; 3 cycles.

    Cycle 1: ``|x|`` splits into the ROM address (its bits above the table step)
    and the interpolation weight (the bits below); the ROM word (sample and
    difference to the next sample) goes into the register ``word``, the weight and
    ``ReLU(x)`` into stage registers. Cycle 2: the correction ``sample * 2**s +
    difference * weight`` (exact) into ``correction``. Cycle 3: subtracted from
    ``ReLU(x)``, rounded once into the output register. Beyond the stored segments (:attr:`GeluSpec.table_segments`) the
    correction is 0. The ROM is read combinationally into a register, which FPGA
    tools can fold into a block RAM's output register.
    """

    LATENCY = 3

    def elaborate(self, platform):
        m = Module()
        spec, fmt = self.spec, self.spec.input
        shift = spec.table_shift
        segments = spec.table_segments
        entries = list(spec.table_entries[:segments + 1])
        samples = entries[:-1]
        differences = [b - a for a, b in zip(entries, entries[1:])]
        fields = {"sample": unsigned(bits_for(max(samples)))}
        if shift:
            fields["difference"] = signed(signed_bits(min(differences), max(differences)))
        words = [{"sample": a, "difference": d} if shift else {"sample": a} for a, d in zip(samples, differences)]

        magnitude, negative = _magnitude(self.x, fmt)
        index = magnitude >> shift
        inside = index < segments
        word = _rom_word(m, self.en, data.StructLayout(fields), words, Mux(inside, index, 0))
        # ReLU(x) kept signed so that ReLU(x) - correction may go below 0.
        relu = stage(m, self.en, "relu", Mux(negative, 0, magnitude), signed(fmt.width + 1))
        in_table = stage(m, self.en, "in_table", inside)
        correction = word.sample << shift
        if shift:
            weight = stage(m, self.en, "weight", magnitude[:shift])
            correction = correction + word.difference * weight

        # The interpolated correction is registered before the subtraction and the rounding: the three carry
        # chains in one cycle were the accelerator's deepest path (60 cells against its TPE's 42).
        correction = stage(m, self.en, "correction", Mux(in_table, correction, 0))
        relu = stage(m, self.en, "relu_c", relu)

        correction_frac = spec.entry_frac + shift
        frac = max(fmt.frac, correction_frac)
        value = (relu << (frac - fmt.frac)) - (correction << (frac - correction_frac))
        self._output(m, value, frac)
        return m


class GeluPoly(_Core):
    """I-BERT's erf polynomial, ``x * (1 + sign(x) * e(|x|)) / 2``; 3 cycles.

    Cycle 1: ``d = B - min(|x|, B)`` and ``d**2``, rounded to ``erf_frac`` bits.
    Cycle 2: ``e = 1 - A * d**2`` rounded to ``erf_frac`` bits, then
    ``2h = 1 + e`` (or ``1 - e`` for a negative input). Cycle 3: ``x * 2h / 2``,
    rounded once into the output register.
    """

    LATENCY = 3

    def elaborate(self, platform):
        m = Module()
        spec, fmt = self.spec, self.spec.input
        erf_frac, coeff_frac = spec.erf_frac, spec.coeff_frac
        clip = Const(spec.poly_b)

        magnitude, negative = _magnitude(self.x, fmt)
        distance = clip - Mux(magnitude < clip, magnitude, clip)  # >= 0
        # d**2 <= 6.3 < 8: three integer bits hold it, so wrapping never cuts.
        square_fmt = FixedFormat(erf_frac + 3, erf_frac, False)
        square = stage(m, self.en, "square",
                       requantize_hw(distance * distance, 2 * fmt.frac, square_fmt, INTERNAL, Overflow.WRAP))
        x1 = stage(m, self.en, "x1", self.x)
        negative1 = stage(m, self.en, "negative1", negative)

        # e = 1 - A * d**2 is in [0.09, 1]: erf_frac + 1 bits.
        erf_fmt = FixedFormat(erf_frac + 1, erf_frac, False)
        one = 1 << (erf_frac + coeff_frac)
        erf = requantize_hw(Const(one) - Const(spec.poly_a) * square, erf_frac + coeff_frac, erf_fmt,
                            INTERNAL, Overflow.WRAP)
        # 2h = 1 +- e, in [0, 2].
        twice_h = stage(m, self.en, "twice_h", Mux(negative1, Const(1 << erf_frac) - erf, Const(1 << erf_frac) + erf),
                        unsigned(erf_frac + 2))
        x2 = stage(m, self.en, "x2", x1)

        self._output(m, x2 * twice_h, fmt.frac + erf_frac + 1)
        return m


class GeluPwl(_Core):
    """Piecewise-linear GELU over ``segments`` equal segments; 2 cycles.

    Cycle 1: ``x`` is compared with every inner breakpoint; the count of those it
    reaches addresses the coefficient ROM, whose ``(m, c)`` word goes into the
    register ``word``; ``x`` and whether it lies below or above the range go into
    stage registers. Cycle 2: ``m * x + c`` (exact; ``0`` below the range,
    ``x`` above it), rounded once into the output register.
    """

    LATENCY = 2

    def elaborate(self, platform):
        m = Module()
        spec, fmt = self.spec, self.spec.input
        ends = spec.breakpoints
        coefficients = spec.pwl_coefficients
        slopes, intercepts = zip(*coefficients)
        layout = data.StructLayout({"slope": signed(signed_bits(min(slopes), max(slopes))),
                                  "intercept": signed(signed_bits(min(intercepts), max(intercepts)))})
        segment = sum(compare.at_least(self.x, Const(code, fmt.shape())).as_unsigned() for code in ends[1:-1]) \
            if len(ends) > 2 else Const(0, 1)
        word = _rom_word(m, self.en, layout, [{"slope": a, "intercept": c} for a, c in coefficients], segment)
        x1 = stage(m, self.en, "x1", self.x)
        below = stage(m, self.en, "below", compare.below(self.x, Const(ends[0], fmt.shape())))
        above = stage(m, self.en, "above", compare.at_least(self.x, Const(ends[-1], fmt.shape())))

        line = word.slope * x1 + (word.intercept << fmt.frac)
        value = Mux(below, 0, Mux(above, x1 << spec.coeff_frac, line))
        self._output(m, value, fmt.frac + spec.coeff_frac)
        return m


_CORES = {"table": GeluTable, "poly": GeluPoly, "pwl": GeluPwl}
