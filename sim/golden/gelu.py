"""Golden model of the GELU block (``hw/nonlinear/gelu.py``) and of ``kind: gelu``.

:func:`gelu` repeats each method's integer steps with the rules of
:mod:`hw.arith.fixed` (bit-exact with the hardware; the constants -- ROM
entries, coefficients, breakpoints -- come from the :class:`GeluSpec`);
:func:`gelu_float` is the exact function ``x * Phi(x)`` of the input values,
with scipy's ``erfc``.

Hooks of ``kind: gelu`` (see ``sim/tb/nonlinear.py`` and ``sim/characterize.py``):
:func:`golden_rows`, :func:`float_rows`.
"""

import numpy as np
from scipy.special import erfc

from hw.arith.fixed import FixedFormat, Overflow, requantize
from hw.nonlinear.gelu import INTERNAL, GeluSpec

from .elementwise import elementwise_hooks, input_codes


def _magnitude(x: np.ndarray, fmt: FixedFormat) -> tuple[np.ndarray, np.ndarray]:
    return (np.abs(x), x < 0) if fmt.signed else (x, np.zeros(x.shape, dtype=bool))


def _table(spec: GeluSpec, x: np.ndarray) -> np.ndarray:
    shift, fmt = spec.table_shift, spec.input
    entries = np.array(spec.table_entries, dtype=np.int64)
    magnitude, negative = _magnitude(x, fmt)
    index = magnitude >> shift
    inside = index < spec.table_segments
    address = np.where(inside, index, 0)
    weight = magnitude & ((np.int64(1) << shift) - 1)
    correction = (entries[address] << shift) + (entries[address + 1] - entries[address]) * weight
    correction = np.where(inside, correction, 0)
    correction_frac = spec.entry_frac + shift
    frac = max(fmt.frac, correction_frac)
    relu = np.where(negative, 0, magnitude)
    value = (relu << (frac - fmt.frac)) - (correction << (frac - correction_frac))
    return requantize(value, frac, spec.output, spec.rounding, spec.overflow)


def _poly(spec: GeluSpec, x: np.ndarray) -> np.ndarray:
    fmt, erf_frac, coeff_frac = spec.input, spec.erf_frac, spec.coeff_frac
    magnitude, negative = _magnitude(x, fmt)
    distance = spec.poly_b - np.minimum(magnitude, spec.poly_b)
    square = requantize(distance * distance, 2 * fmt.frac, FixedFormat(erf_frac + 3, erf_frac, False),
                        INTERNAL, Overflow.WRAP)
    erf = requantize((np.int64(1) << (erf_frac + coeff_frac)) - spec.poly_a * square, erf_frac + coeff_frac,
                     FixedFormat(erf_frac + 1, erf_frac, False), INTERNAL, Overflow.WRAP)
    one = np.int64(1) << erf_frac
    twice_h = np.where(negative, one - erf, one + erf)
    return requantize(x * twice_h, fmt.frac + erf_frac + 1, spec.output, spec.rounding, spec.overflow)


def _pwl(spec: GeluSpec, x: np.ndarray) -> np.ndarray:
    fmt = spec.input
    ends = spec.breakpoints
    slopes, intercepts = (np.array(c, dtype=np.int64) for c in zip(*spec.pwl_coefficients))
    segment = np.searchsorted(np.array(ends[1:-1], dtype=np.int64), x, side="right")  # inner ends <= x (ascending)
    line = slopes[segment] * x + (intercepts[segment] << fmt.frac)
    value = np.where(x < ends[0], 0, np.where(x >= ends[-1], x << spec.coeff_frac, line))
    return requantize(value, fmt.frac + spec.coeff_frac, spec.output, spec.rounding, spec.overflow)


_METHODS = {"table": _table, "poly": _poly, "pwl": _pwl}


def gelu(spec: GeluSpec, codes) -> np.ndarray:
    """Output codes of the GELU block for input ``codes`` (int64 arrays, bit-exact with the hardware)."""
    x = input_codes(spec.input, codes)
    return np.asarray(_METHODS[spec.method](spec, x), dtype=np.int64)


def gelu_float(spec: GeluSpec, codes) -> np.ndarray:
    """``GELU(x) = x * Phi(x) = x * erfc(-x / sqrt(2)) / 2`` of the input values (float64)."""
    x = spec.input.to_float(input_codes(spec.input, codes))
    return x * 0.5 * erfc(-x / np.sqrt(2.0))


# ----------------------------------------------------------------- kind: gelu hooks

def spec_for(cfg) -> GeluSpec:
    from gen.kinds.gelu import spec

    return spec(cfg)


#: Bit-exact outputs and float references of each row (``kind: gelu`` is element-wise).
golden_rows, float_rows = elementwise_hooks(spec_for, gelu, gelu_float)
