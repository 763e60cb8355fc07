"""``exp(x)`` for ``x <= 0``: base-2 range reduction, a small table of ``2**-f``, a right shift.

With ``t = -x * log2(e) = q + f`` (``q`` an integer, ``0 <= f < 1``),
``exp(x) = 2**-t = 2**-f * 2**-q``. The pipeline computes, in integers (the
golden model ``sim/golden/exp.py`` repeats exactly these steps):

1. ``u = -x`` (0 for ``x >= 0``: positive inputs are outside the contract and
   give ``exp(0) = 1``); ``t = u * L`` rounded half-even to ``frac_bits``
   fraction bits, where ``L`` is ``log2(e)`` in :attr:`ExpSpec.log2e_frac` bits.
2. ``q`` = integer part of ``t``, clamped to :attr:`ExpSpec.q_max` (beyond it
   every output rounds to 0); ``f`` its ``frac_bits`` fraction bits.
3. ``r = 2**-f`` with :attr:`ExpSpec.entry_frac` fraction bits from a table of
   ``2**table_bits + 1`` entries ``2**-(k / 2**table_bits)``: with
   ``interpolate`` the entry below ``f`` and the straight line to the next one
   (rounded half-even), otherwise the entry nearest to ``f``.
4. ``y = r * 2**-q``, made exact by shifting ``r << q_max`` right by ``q``, then
   requantised to the output format with the spec's rounding and overflow.

Every quantisation uses :mod:`hw.arith.fixed`.
"""

import math
from dataclasses import dataclass
from functools import cache

from amaranth.hdl import Const, Module, Mux, signed, unsigned
from amaranth.utils import bits_for

from ..arith.fixed import (MAX_INTERMEDIATE_BITS, FixedFormat, Overflow, Rounding, requantize_hw,
                           shift_round_hw)
from .pipeline import ElementBlock, rom, stage

#: Quantisation of every internal rounding step (table entries, t, interpolation).
INTERNAL_ROUNDING = Rounding.HALF_EVEN


@dataclass(frozen=True)
class ExpSpec:
    """Formats and accuracy knobs of an :class:`Exp` block.

    ``input``: a signed format (``x <= 0``). ``output``: any format; ``exp(x)``
    is in ``(0, 1]`` (1 saturates to the largest code if the format cannot hold
    it, under ``overflow: saturate``). ``table_bits``: the table has
    ``2**table_bits + 1`` entries. ``interpolate``: linear interpolation between
    entries. ``frac_bits``: fraction bits of ``t`` (default ``output.frac + 2``,
    at least ``table_bits``, plus 2 with ``interpolate``; with ``interpolate`` it
    must exceed ``table_bits``). ``entry_frac``: fraction bits of the table entries
    and of ``2**-f`` (default ``output.frac + 2``).
    """

    input: FixedFormat
    output: FixedFormat
    table_bits: int = 6
    interpolate: bool = True
    frac_bits: int | None = None
    entry_frac: int | None = None
    rounding: Rounding = Rounding.HALF_EVEN
    overflow: Overflow = Overflow.SATURATE

    def __post_init__(self):
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))
        if not self.input.signed:
            raise ValueError("exp takes x <= 0: the input format must be signed")
        if not 1 <= self.table_bits <= 12:
            raise ValueError(f"table_bits must be 1..12, not {self.table_bits}")
        if self.frac_bits is None:
            minimum = self.table_bits + (2 if self.interpolate else 0)
            object.__setattr__(self, "frac_bits", max(minimum, self.output.frac + 2))
        if self.entry_frac is None:
            object.__setattr__(self, "entry_frac", max(1, self.output.frac + 2))
        if self.frac_bits < self.table_bits + self.interpolate:
            relation = "above" if self.interpolate else "at least"
            raise ValueError(f"frac_bits ({self.frac_bits}) must be {relation} table_bits ({self.table_bits})")
        if not 1 <= self.entry_frac <= 40:
            raise ValueError(f"entry_frac must be 1..40, not {self.entry_frac}")
        widest = max(self.input.width + self.log2e_width, self.t_width + 1,
                     self.entry_frac + 2 + self.frac_bits - self.table_bits + 1,
                     self.entry_frac + 1 + self.q_max + 1)
        if widest > MAX_INTERMEDIATE_BITS:
            raise ValueError(f"intermediate values would need {widest} bits (at most {MAX_INTERMEDIATE_BITS}): "
                             "use fewer input, fraction or table bits")

    # derived constants (shared by the generator and the golden model)
    @property
    def q_max(self) -> int:
        """Largest shift ``q`` kept: ``r * 2**-q_max <= 2**-(output.frac + 2)`` rounds to 0 in every mode."""
        return max(0, self.output.frac + 2)

    @property
    def log2e_frac(self) -> int:
        """Fraction bits of the constant ``log2(e)``: enough that ``t`` is exact to its last bit up to ``q_max``."""
        return self.frac_bits + bits_for(self.q_max + 1) + 2

    @property
    def log2e_code(self) -> int:
        return int(FixedFormat(self.log2e_frac + 2, self.log2e_frac, False).from_float(math.log2(math.e)))

    @property
    def log2e_width(self) -> int:
        return self.log2e_frac + 1

    @property
    def t_shift(self) -> int:
        """Fraction bits dropped from ``u * L`` to get ``t`` (negative: a left shift)."""
        return self.input.frac + self.log2e_frac - self.frac_bits

    @property
    def t_width(self) -> int:
        """Bits of ``t`` (unsigned): ``u < 2**(W-1)`` times ``L < 2**(log2e_frac+1)``, shifted."""
        return max(1, self.input.width + self.log2e_width - self.t_shift)

    @property
    def entry_format(self) -> FixedFormat:
        return FixedFormat(self.entry_frac + 1, self.entry_frac, False)

    @cache  # once per spec (specs are frozen, hashable): goldens call it for every row
    def table(self) -> tuple[int, ...]:
        """``2**-(k / 2**table_bits)`` for ``k = 0 .. 2**table_bits``, codes of :attr:`entry_format`."""
        steps = 1 << self.table_bits
        return tuple(int(self.entry_format.from_float(2.0 ** (-k / steps))) for k in range(steps + 1))

    @property
    def latency(self) -> int:
        return 6 if self.interpolate else 4


class Exp(ElementBlock):
    """``y = exp(x)`` for ``x <= 0``, a pipeline of :attr:`latency` stages (see the module docstring).

    Ports: ``x`` (``spec.input``), ``y`` (``spec.output``), ``en``. Every
    register loads on a rising edge where ``en`` is high and holds otherwise, so
    ``y`` shows ``exp`` of the ``x`` that was present ``latency`` enabled edges
    earlier. Inputs ``x > 0`` give ``exp(0) = 1``; inputs so negative that the
    result is below half an output step give 0.
    """

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        en = self.en
        dropped = spec.frac_bits - spec.table_bits  # fraction bits of t below the table index

        # Stages 1-2: the exact product -x * log2(e), then t, rounded to frac_bits fraction bits.
        # (-x) * L written x * (-L): the negation folds into the multiplier's sum of partial products.
        width = spec.input.width + spec.log2e_width
        negated = (self.x * Const(-spec.log2e_code, signed(spec.log2e_width + 1))).as_unsigned()[:width]
        product = stage(m, en, "product", Mux(self.x[-1], negated, 0), unsigned(width))
        t = stage(m, en, "t", shift_round_hw(product, spec.t_shift, INTERNAL_ROUNDING)[:spec.t_width],
                  unsigned(spec.t_width))

        # Stage 3: split t into the clamped shift q and the fraction f; read the table.
        integer = t >> spec.frac_bits
        q_now = Mux(integer > spec.q_max, spec.q_max, integer)[:bits_for(spec.q_max)]
        q = stage(m, en, "q", q_now, unsigned(bits_for(spec.q_max)))
        fraction = t[:spec.frac_bits]
        entries = spec.table()
        entry_shape = unsigned(spec.entry_format.width)
        if spec.interpolate:
            index = fraction[dropped:]
            below = rom(m, index, entries, "entry_below", entry_shape)
            above = rom(m, index + 1, entries, "entry_above", entry_shape)
            base = stage(m, en, "base", below)
            drop_shape = unsigned(bits_for(max(a - b for a, b in zip(entries, entries[1:]))))
            drop = stage(m, en, "drop", (below - above)[:drop_shape.width], drop_shape)
            offset = stage(m, en, "offset", fraction[:dropped])
            # Stages 4-5: the exact slope drop * offset, then r = base - slope / 2**dropped, rounded half-even.
            slope = stage(m, en, "slope", drop * offset)
            base_s, q_s = stage(m, en, "base_s", base), stage(m, en, "q_s", q)
            line = (base_s << dropped) - slope
            r = stage(m, en, "r", shift_round_hw(line, dropped, INTERNAL_ROUNDING)[:spec.entry_format.width],
                      entry_shape)
            q_out = stage(m, en, "q_r", q_s)
        else:
            nearest = shift_round_hw(fraction, dropped, INTERNAL_ROUNDING)
            r = stage(m, en, "r", rom(m, nearest, entries, "entry", entry_shape))
            q_out = q

        # Last stage: exact shift of r by q, then the output's rounding and overflow.
        scaled = (r << spec.q_max) >> q_out
        y = stage(m, en, "y", requantize_hw(scaled, spec.entry_frac + spec.q_max, spec.output,
                                             spec.rounding, spec.overflow), spec.output.shape())
        m.d.comb += self.y.eq(y)
        return m
