"""Golden model of the rsqrt block (``hw/nonlinear/rsqrt.py``) and of ``kind: rsqrt``.

:func:`rsqrt` repeats the generator's integer steps with the rules of
:mod:`hw.arith.fixed` (bit-exact); :func:`rsqrt_float` is ``1 / sqrt(x)`` of the
input values (for error tables).
"""

import numpy as np

from hw.arith.fixed import requantize, shift_round
from hw.nonlinear.reciprocal import INTERNAL_ROUNDING
from hw.nonlinear.rsqrt import RsqrtSpec

from .elementwise import elementwise_hooks, input_codes
from .reciprocal import normalise


def rsqrt(spec: RsqrtSpec, codes) -> np.ndarray:
    """Output codes of the rsqrt block for input ``codes`` (int64 arrays, bit-exact)."""
    x = input_codes(spec.input, codes)
    frac = spec.frac_bits
    lz, _, index, mantissa = normalise(spec, x)
    exponent = spec.exponent_top - lz
    odd = exponent & 1
    shift = spec.h_max - (exponent >> 1)
    seed = np.array(spec.table(), dtype=np.int64)[(odd << spec.table_bits) | index]
    big = mantissa << odd
    for _ in range(spec.newton_steps):
        square = shift_round(seed * seed, frac, INTERNAL_ROUNDING)
        correction = (np.int64(3) << frac) - shift_round(big * square, frac, INTERNAL_ROUNDING)
        seed = shift_round(seed * correction, frac + 1, INTERNAL_ROUNDING)
    result = requantize(seed << np.where(x == 0, 0, shift), spec.out_frac, spec.output, spec.rounding,
                        spec.overflow)
    return np.where(x == 0, spec.output.max_code, result).astype(np.int64)


def rsqrt_float(spec: RsqrtSpec, codes) -> np.ndarray:
    """``1 / sqrt(x)`` of the input values (``inf`` for 0)."""
    x = spec.input.to_float(input_codes(spec.input, codes))
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(x)


# ----------------------------------------------------------------- kind: rsqrt hooks

def spec_for(cfg) -> RsqrtSpec:
    from gen.kinds.rsqrt import spec

    return spec(cfg)


golden_rows, float_rows = elementwise_hooks(spec_for, rsqrt, rsqrt_float)
