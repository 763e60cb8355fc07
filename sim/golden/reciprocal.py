"""Golden model of the reciprocal block (``hw/nonlinear/reciprocal.py``) and of ``kind: reciprocal``.

:func:`reciprocal` repeats the generator's integer steps with the rules of
:mod:`hw.arith.fixed` (bit-exact); :func:`reciprocal_float` is ``1 / x`` of the
input values (for error tables).
"""

import numpy as np

from hw.arith.fixed import Rounding, requantize, shift_round
from hw.nonlinear.reciprocal import INTERNAL_ROUNDING, ReciprocalSpec, mantissa_shift

from .elementwise import elementwise_hooks, input_codes


def leading_zeros(x: np.ndarray, width: int) -> np.ndarray:
    """Leading zero bits of each ``width``-bit unsigned code (``width`` for 0)."""
    length = np.zeros_like(x)
    for bit in range(width):
        length = np.where((x >> bit) != 0, bit + 1, length)
    return width - length


def normalise(spec, x: np.ndarray):
    """``(lz, normal, index, mantissa)``: the leading zeros, ``x << lz``, the table index, the mantissa."""
    width = spec.input.width
    lz = leading_zeros(x, width)
    normal = (x << lz) & ((np.int64(1) << width) - 1)
    index = shift_round(normal, width - 1 - spec.table_bits, Rounding.TRUNCATE) & ((1 << spec.table_bits) - 1)
    mantissa = shift_round(normal, mantissa_shift(spec), INTERNAL_ROUNDING)
    return lz, normal, index, mantissa


def reciprocal(spec: ReciprocalSpec, codes) -> np.ndarray:
    """Output codes of the reciprocal block for input ``codes`` (int64 arrays, bit-exact)."""
    x = input_codes(spec.input, codes)
    frac = spec.frac_bits
    lz, _, index, mantissa = normalise(spec, x)
    seed = np.array(spec.table(), dtype=np.int64)[index]
    for _ in range(spec.newton_steps):
        correction = (np.int64(2) << frac) - shift_round(mantissa * seed, frac, INTERNAL_ROUNDING)
        seed = shift_round(seed * correction, frac, INTERNAL_ROUNDING)
    result = requantize(seed << lz, spec.out_frac, spec.output, spec.rounding, spec.overflow)
    return np.where(x == 0, spec.output.max_code, result).astype(np.int64)


def reciprocal_float(spec: ReciprocalSpec, codes) -> np.ndarray:
    """``1 / x`` of the input values (``inf`` for 0)."""
    x = spec.input.to_float(input_codes(spec.input, codes))
    with np.errstate(divide="ignore"):
        return 1.0 / x


# ----------------------------------------------------------------- kind: reciprocal hooks

def spec_for(cfg) -> ReciprocalSpec:
    from gen.kinds.reciprocal import spec

    return spec(cfg)


golden_rows, float_rows = elementwise_hooks(spec_for, reciprocal, reciprocal_float)
