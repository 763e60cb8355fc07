"""``1 / sqrt(x)`` for unsigned ``x > 0``: normalise, table seed, Newton steps, denormalise.

In integers (the golden model ``sim/golden/rsqrt.py`` repeats exactly these steps):

1. ``lz`` = leading zeros of the ``W``-bit input; ``x << lz`` stands for a
   mantissa ``m`` in ``[1, 2)``, ``x = m * 2**e`` with ``e = W - 1 - frac - lz``.
   The square root needs an even exponent: with ``h = floor(e / 2)``,
   ``x = M * 2**(2h)`` where ``M = m`` (``e`` even) or ``2m`` (``e`` odd), in ``[1, 4)``.
2. Seed ``s`` of ``1 / sqrt(M)`` with ``frac_bits`` fraction bits from a table
   indexed by the parity of ``e`` and the ``table_bits`` bits below ``m``'s top
   bit: over each interval ``[a, b)`` of ``M`` the entry is
   ``2 / (sqrt(a) + sqrt(b))``, which balances the relative error at both ends.
3. ``newton_steps`` times ``s <- s * (3 - M * s**2) / 2`` (each product rounded
   half-even to ``frac_bits``).
4. ``1 / sqrt(x) = s * 2**-h``: ``s << (h_max - h)`` (``h_max = floor((W - 1 -
   frac) / 2)``) is exact with ``frac_bits + h_max`` fraction bits and is
   requantised to the output format with the spec's rounding and overflow.

``x = 0`` gives the output format's largest code (whatever the overflow rule).
Every quantisation uses :mod:`hw.arith.fixed`.
"""

from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from amaranth.hdl import Cat, Const, Module, Mux, signed, unsigned
from amaranth.utils import bits_for

from ..arith.fixed import shift_round_hw
from .pipeline import delayed, rom, split_product, stage
from .reciprocal import INTERNAL_ROUNDING, NewtonSpec, NormalisingBlock


@dataclass(frozen=True)
class RsqrtSpec(NewtonSpec):
    """Spec of an :class:`Rsqrt` block (fields: :class:`hw.nonlinear.reciprocal.NewtonSpec`); the seed
    table has ``2 * 2**table_bits`` entries (both exponent parities)."""

    NAME: ClassVar[str] = "rsqrt"

    @cache  # once per spec (specs are frozen, hashable): goldens call it for every row
    def table(self) -> tuple[int, ...]:
        """Seeds ``2 / (sqrt(a) + sqrt(b))``: entry ``parity * 2**T + i`` covers ``M`` in
        ``[a, b) = (1 + parity) * [1 + i / 2**T, 1 + (i + 1) / 2**T)``."""
        steps = 1 << self.table_bits
        entries = []
        for parity in (0, 1):
            for i in range(steps):
                a, b = (1 + parity) * (1 + i / steps), (1 + parity) * (1 + (i + 1) / steps)
                entries.append(int(self.seed_format.from_float(2.0 / (a ** 0.5 + b ** 0.5))))
        return tuple(entries)

    @property
    def exponent_top(self) -> int:
        """``W - 1 - frac``: the exponent of the input's top bit."""
        return self.input.width - 1 - self.input.frac

    @property
    def h_max(self) -> int:
        return self.exponent_top // 2

    @property
    def denormalise_shift(self) -> int:
        """``h_max - floor(e / 2)`` at the smallest exponent ``e = -input.frac`` (``x = 1``): about half the
        reciprocal's shift, so a wide input (LayerNorm's variance) leaves the Newton steps more fraction bits."""
        return self.h_max + (self.input.frac + 1) // 2

    @property
    def out_frac(self) -> int:
        """Fraction bits of ``s << (h_max - h)`` before the output requantisation."""
        return self.frac_bits + self.h_max

    @property
    def latency(self) -> int:
        return 4 + 6 * self.newton_steps


class Rsqrt(NormalisingBlock):
    """``y = 1 / sqrt(x)``, a pipeline of :attr:`latency` stages (see the module docstring).

    Ports: ``x`` (``spec.input``), ``y`` (``spec.output``), ``en``. Every
    register loads on a rising edge where ``en`` is high and holds otherwise, so
    ``y`` shows ``1 / sqrt(x)`` of the ``x`` present ``latency`` enabled edges
    earlier. ``x = 0`` gives the largest output code.
    """

    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        en = self.en
        width, frac = spec.input.width, spec.frac_bits
        value = unsigned(frac + 3)  # M below 4, seeds and products below 4

        # Stages 1-2: normalise; exponent e = exponent_top - lz, its parity and floor(e / 2).
        count, zero, normal = self.normalise(m)
        exponent_bits = bits_for(max(abs(spec.exponent_top), abs(spec.exponent_top - width)), True) + 1
        exponent = Const(spec.exponent_top, signed(exponent_bits)) - count
        odd = exponent[0]
        shift = (Const(spec.h_max, signed(exponent_bits)) - (exponent >> 1))[:bits_for(width)]

        # Stage 3: seed from the parity and the bits below the top bit; M to frac_bits.
        seed = stage(m, en, "seed_0", rom(m, Cat(self.seed_index(normal), odd), spec.table(), "seed_entry", value))
        mantissa = self.mantissa(normal)
        big = stage(m, en, "big_m_0", Mux(odd, mantissa << 1, mantissa), value)
        shift, zero = stage(m, en, "shift_0", shift, unsigned(bits_for(width))), stage(m, en, "zero_0", zero)

        # Newton steps, six stages each: the exact s**2, rounded; the exact M * s**2, c = 3 - its rounding;
        # the exact s * c, rounded and halved. Each product is two registered halves (split_product), summed in
        # the rounding's stage: with 28 fraction bits (LayerNorm's rstd) a whole product is deeper than a TPE.
        for n in range(spec.newton_steps):
            square = split_product(m, en, f"square_product_{n}", seed, seed)
            square = stage(m, en, f"square_{n}", shift_round_hw(square, frac, INTERNAL_ROUNDING)[:frac + 3], value)
            seed_a = delayed(m, en, seed, 2, f"seed_{n}a")
            big_a = delayed(m, en, big, 2, f"big_m_{n}a")
            scaled = split_product(m, en, f"scaled_{n}", big_a, square)
            seed_b = stage(m, en, f"seed_{n}b", seed_a)
            correction = stage(m, en, f"correction_{n}", (Const(3 << frac, frac + 4) - shift_round_hw(
                scaled, frac, INTERNAL_ROUNDING))[:frac + 3], value)
            seed_c = stage(m, en, f"seed_{n}c", seed_b)
            product = split_product(m, en, f"product_{n}", seed_c, correction)
            seed = stage(m, en, f"seed_{n + 1}", shift_round_hw(product, frac + 1, INTERNAL_ROUNDING)[:frac + 3],
                         value)
            if n < spec.newton_steps - 1:
                big = delayed(m, en, big_a, 4, f"big_m_{n + 1}")
            shift, zero = delayed(m, en, shift, 6, f"shift_{n + 1}"), delayed(m, en, zero, 6, f"zero_{n + 1}")

        # Last stage: denormalise exactly, requantise; zero saturates.
        self.output(m, seed << shift, zero)
        return m
