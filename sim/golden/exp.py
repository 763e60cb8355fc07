"""Golden model of the exp block (``hw/nonlinear/exp.py``) and of ``kind: exp``.

:func:`exp` repeats the generator's integer steps with the rules of
:mod:`hw.arith.fixed`, so it is bit-exact with the hardware; :func:`exp_float`
is the real function ``exp(x)`` of the input values (for error tables).
"""

import numpy as np

from hw.arith.fixed import requantize, shift_round
from hw.nonlinear.exp import INTERNAL_ROUNDING, ExpSpec

from .elementwise import elementwise_hooks, input_codes


def exp(spec: ExpSpec, codes) -> np.ndarray:
    """Output codes of the exp block for input ``codes`` (int64 arrays, bit-exact)."""
    x = input_codes(spec.input, codes)
    dropped = spec.frac_bits - spec.table_bits
    u = np.where(x < 0, -x, 0)
    t = shift_round(u * np.int64(spec.log2e_code), spec.t_shift, INTERNAL_ROUNDING)
    q = np.minimum(t >> spec.frac_bits, spec.q_max)
    fraction = t & ((np.int64(1) << spec.frac_bits) - 1)
    table = np.array(spec.table(), dtype=np.int64)
    if spec.interpolate:
        index = fraction >> dropped
        below, above = table[index], table[index + 1]
        offset = fraction & ((np.int64(1) << dropped) - 1)
        r = shift_round((below << dropped) - (below - above) * offset, dropped, INTERNAL_ROUNDING)
    else:
        r = table[shift_round(fraction, dropped, INTERNAL_ROUNDING)]
    scaled = (r << spec.q_max) >> q
    return np.asarray(requantize(scaled, spec.entry_frac + spec.q_max, spec.output, spec.rounding,
                                 spec.overflow), dtype=np.int64)


def exp_float(spec: ExpSpec, codes) -> np.ndarray:
    """``exp(x)`` of the input values, ``x > 0`` taken as 0 as the hardware does (float64)."""
    x = spec.input.to_float(input_codes(spec.input, codes))
    return np.exp(np.minimum(x, 0.0))


# ----------------------------------------------------------------- kind: exp hooks

def spec_for(cfg) -> ExpSpec:
    from gen.kinds.exp import spec

    return spec(cfg)


golden_rows, float_rows = elementwise_hooks(spec_for, exp, exp_float)
