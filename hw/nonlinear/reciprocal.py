"""``1 / x`` for unsigned ``x > 0``: normalise, table seed, Newton steps, denormalise.

In integers (the golden model ``sim/golden/reciprocal.py`` repeats exactly these steps):

1. ``lz`` = leading zeros of the ``W``-bit input; ``m = x << lz`` has its top bit
   set and stands for a mantissa in ``[1, 2)`` (``W - 1`` fraction bits), so
   ``x = m * 2**(W - 1 - lz - frac)``.
2. Seed ``s`` of ``1 / m`` with ``frac_bits`` fraction bits from a table indexed by
   the ``table_bits`` bits below ``m``'s top bit: over each interval ``[a, b)``
   the entry is ``2 / (a + b)``, which balances the relative error at both ends.
3. ``newton_steps`` times ``s <- s * (2 - m * s)`` (each product rounded
   half-even to ``frac_bits``); each step squares the relative error.
4. ``1 / x = s * 2**(lz - (W - 1 - frac))``: ``s << lz`` is exact with
   ``frac_bits + W - 1 - frac`` fraction bits and is requantised to the output
   format with the spec's rounding and overflow.

``x = 0`` gives the output format's largest code (whatever the overflow rule).
Every quantisation uses :mod:`hw.arith.fixed`.
"""

from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from amaranth.hdl import Const, Module, Mux, unsigned

from ..arith.fixed import MAX_INTERMEDIATE_BITS, FixedFormat, Overflow, Rounding, requantize_hw, shift_round_hw
from .pipeline import ElementBlock, delayed, leading_zeros, rom, stage

#: Quantisation of every internal rounding step (seed table, Newton products).
INTERNAL_ROUNDING = Rounding.HALF_EVEN


def mantissa_shift(spec) -> int:
    """Fraction bits dropped from the normalised ``W``-bit input to get ``frac_bits`` (negative: a left shift)."""
    return spec.input.width - 1 - spec.frac_bits


@dataclass(frozen=True)
class NewtonSpec:
    """Formats and accuracy knobs of the normalise / table seed / Newton step blocks.

    ``input``: an unsigned format. ``output``: any format. ``table_bits``:
    mantissa bits indexing the seed table (1..12). ``newton_steps``: 0..3.
    ``frac_bits``: fraction bits of the mantissa, the seed and every Newton
    product (default ``output.width + 2``, at least ``table_bits + 2``; at most 28).
    """

    input: FixedFormat
    output: FixedFormat
    table_bits: int = 6
    newton_steps: int = 1
    frac_bits: int | None = None
    rounding: Rounding = Rounding.HALF_EVEN
    overflow: Overflow = Overflow.SATURATE

    #: The function's name, for error messages.
    NAME: ClassVar[str] = ""

    def __post_init__(self):
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))
        if self.input.signed:
            raise ValueError(f"{self.NAME} takes x > 0: the input format must be unsigned")
        if not 1 <= self.table_bits <= 12:
            raise ValueError(f"table_bits must be 1..12, not {self.table_bits}")
        if not 0 <= self.newton_steps <= 3:
            raise ValueError(f"newton_steps must be 0..3, not {self.newton_steps}")
        if self.frac_bits is None:
            object.__setattr__(self, "frac_bits", min(28, max(self.table_bits + 2, self.output.width + 2)))
        if not self.table_bits <= self.frac_bits <= 28:
            raise ValueError(f"frac_bits must be from table_bits ({self.table_bits}) to 28, not {self.frac_bits}")
        widest = self.frac_bits + 3 + self.denormalise_shift
        if widest > MAX_INTERMEDIATE_BITS:
            raise ValueError(f"intermediate values would need {widest} bits (at most {MAX_INTERMEDIATE_BITS})")

    @property
    def seed_format(self) -> FixedFormat:
        return FixedFormat(self.frac_bits + 2, self.frac_bits, False)

    @property
    def denormalise_shift(self) -> int:
        """Bound on the left shift that denormalises the seed (the reciprocal's ``lz``: below the input's
        width), which sets the widest intermediate, ``frac_bits + 3`` more bits."""
        return self.input.width


@dataclass(frozen=True)
class ReciprocalSpec(NewtonSpec):
    """Spec of a :class:`Reciprocal` block (fields: :class:`NewtonSpec`); the seed table has
    ``2**table_bits`` entries."""

    NAME: ClassVar[str] = "reciprocal"

    @cache  # once per spec (specs are frozen, hashable): goldens call it for every row
    def table(self) -> tuple[int, ...]:
        """Seeds ``2 / (a + b)`` over ``[a, b) = [1 + i / 2**T, 1 + (i + 1) / 2**T)``."""
        steps = 1 << self.table_bits
        return tuple(int(self.seed_format.from_float(2.0 / (2.0 + (2 * i + 1) / steps))) for i in range(steps))

    @property
    def out_frac(self) -> int:
        """Fraction bits of ``s << lz`` before the output requantisation."""
        return self.frac_bits + self.input.width - 1 - self.input.frac

    @property
    def latency(self) -> int:
        return 4 + 4 * self.newton_steps


class NormalisingBlock(ElementBlock):
    """What the reciprocal and rsqrt pipelines share: normalisation, seed index, mantissa, output stage."""

    def normalise(self, m: Module):
        """Stages 1-2: ``(lz, zero, normal)``, registered: the leading-zero count of ``x`` (``lz``, with ``x``
        held in ``held`` and whether it is 0 in ``zero``), then ``x << lz`` (``normal``, ``lz_n``, ``zero_n``)."""
        width = self.spec.input.width
        count = stage(m, self.en, "lz", leading_zeros(m, self.x, "lz_now"))
        held = stage(m, self.en, "held", self.x)
        zero = stage(m, self.en, "zero", ~self.x.any())
        normal = stage(m, self.en, "normal", (held << count)[:width], unsigned(width))
        return stage(m, self.en, "lz_n", count), stage(m, self.en, "zero_n", zero), normal

    def seed_index(self, normal):
        """The ``table_bits`` bits below the top bit of the normalised input."""
        spec = self.spec
        return shift_round_hw(normal, spec.input.width - 1 - spec.table_bits, Rounding.TRUNCATE)[:spec.table_bits]

    def mantissa(self, normal):
        """The normalised input (a value in ``[1, 2]`` after rounding) with ``frac_bits`` fraction bits."""
        return shift_round_hw(normal, mantissa_shift(self.spec), INTERNAL_ROUNDING)[:self.spec.frac_bits + 2]

    def output(self, m: Module, shifted, zero) -> None:
        """Last stage: requantise the exactly denormalised result; ``x = 0`` gives the largest code."""
        spec = self.spec
        result = requantize_hw(shifted, spec.out_frac, spec.output, spec.rounding, spec.overflow)
        y = stage(m, self.en, "y", Mux(zero, spec.output.max_code, result), spec.output.shape())
        m.d.comb += self.y.eq(y)


class Reciprocal(NormalisingBlock):
    """``y = 1 / x``, a pipeline of :attr:`latency` stages (see the module docstring).

    Ports: ``x`` (``spec.input``), ``y`` (``spec.output``), ``en``. Every
    register loads on a rising edge where ``en`` is high and holds otherwise, so
    ``y`` shows ``1 / x`` of the ``x`` present ``latency`` enabled edges earlier.
    ``x = 0`` gives the largest output code.
    """

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        en = self.en
        frac = spec.frac_bits
        value = unsigned(frac + 2)  # mantissas, seeds and products: values below 4

        # Stages 1-2: normalise.
        lz, zero, normal = self.normalise(m)

        # Stage 3: seed from the bits below the top bit; the mantissa to frac_bits.
        seed = stage(m, en, "seed_0", rom(m, self.seed_index(normal), spec.table(), "seed_entry", value))
        mantissa = stage(m, en, "mantissa_0", self.mantissa(normal), value)
        lz, zero = stage(m, en, "lz_0", lz), stage(m, en, "zero_0", zero)

        # Newton steps, four stages each: the exact m * s; c = 2 - round(m * s); the exact s * c; round(s * c).
        for n in range(spec.newton_steps):
            product = stage(m, en, f"product_{n}", mantissa * seed)
            seed_a = stage(m, en, f"seed_{n}a", seed)
            correction = stage(m, en, f"correction_{n}", (Const(2 << frac, frac + 3) - shift_round_hw(
                product, frac, INTERNAL_ROUNDING))[:frac + 2], value)
            seed_held = stage(m, en, f"seed_held_{n}", seed_a)
            scaled = stage(m, en, f"scaled_{n}", seed_held * correction)
            seed = stage(m, en, f"seed_{n + 1}", shift_round_hw(scaled, frac, INTERNAL_ROUNDING)[:frac + 2], value)
            if n < spec.newton_steps - 1:
                mantissa = delayed(m, en, mantissa, 4, f"mantissa_{n + 1}")
            lz, zero = delayed(m, en, lz, 4, f"lz_{n + 1}"), delayed(m, en, zero, 4, f"zero_{n + 1}")

        self.output(m, seed << lz, zero)
        return m
