"""Golden model of ``kind: layernorm`` (``hw/nonlinear/layernorm.py``).

:func:`layernorm` repeats the hardware's steps exactly (exact sums of the
differences to the row's first element, 1/n by the reciprocal golden, mean and
E[d^2], variance + eps, rstd by the rsqrt golden, then per element ``(x - mean) * rstd`` and ``* gamma + beta``), every
quantisation through :mod:`hw.arith.fixed`, on whole arrays of rows at once
(the last axis is the row; a 1-D array is one row). :func:`layernorm_float` is
the exact LayerNorm of the input values with the configured ``eps``. The hooks of
the generic testbench (``sim/tb/nonlinear.py``) and of ``npuforge
characterize`` are at the end: ``gamma`` and ``beta`` travel as the run's
``context`` and are loaded through the ``params`` stream before the rows.

Integer widths: :class:`~hw.nonlinear.layernorm.LayerNormSpec` keeps every
per-element intermediate within 62 bits, so the output pass is exact in int64.
The per-row statistics may be wider (24- and 32-bit inputs over hundreds of
channels): they are computed in Python integers (object arrays) whenever the
spec says they could exceed 62 bits.
"""

import numpy as np

from hw.arith.fixed import MAX_INTERMEDIATE_BITS, Overflow, fit, requantize
from hw.nonlinear.layernorm import PARAMS_STREAM, LayerNormSpec

from .reciprocal import reciprocal
from .rows import by_length
from .rsqrt import rsqrt


def statistics(spec: LayerNormSpec, x) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``mean`` (code of ``spec.mean_format``) and ``rstd`` (code of the rsqrt output),
    shape ``x.shape[:-1]``."""
    x = np.asarray(x, dtype=np.int64)
    n = x.shape[-1] if x.ndim else 0
    if not 1 <= n <= spec.n_max:
        raise ValueError(f"a row has 1..{spec.n_max} elements, not {n}")
    reference = x[..., 0]
    d = x - reference[..., None]
    wide = spec.statistics_width > MAX_INTERMEDIATE_BITS

    def exact(values):  # Python integers where int64 could overflow: exact at any width, slower
        return np.asarray(values).astype(object) if wide else values

    d = exact(d)
    total, squares = d.sum(axis=-1), (d * d).sum(axis=-1)
    inv_n = int(reciprocal(spec.reciprocal, np.array([n], dtype=np.int64))[0])  # the same n for every row
    f, fi, fm = spec.input.frac, spec.inv_n_format.frac, spec.stat_frac
    sat = Overflow.SATURATE
    offset = requantize(total * inv_n, f + fi, spec.offset_format, spec.rounding, sat)
    mean = fit((reference << (fm - f)) + offset, spec.mean_format, sat)
    ex2 = requantize(squares * inv_n, 2 * f + fi, spec.var_format, spec.rounding, sat)
    squared_mean = requantize(exact(offset) * exact(offset), 2 * fm, spec.var_format, spec.rounding, sat)
    var_eps = np.maximum(0, ex2 - squared_mean) + spec.eps
    return mean, np.asarray(rsqrt(spec.rsqrt, var_eps), dtype=np.int64)


def layernorm(spec: LayerNormSpec, x, gamma, beta) -> np.ndarray:
    """Output codes of every row (the last axis of ``x``; ``gamma``, ``beta``: codes per channel, at least
    the row length)."""
    x = np.asarray(x, dtype=np.int64)
    mean, rstd = statistics(spec, x)
    n = x.shape[-1]
    centered = (x << (spec.stat_frac - spec.input.frac)) - mean[..., None]
    y = requantize(centered * rstd[..., None], spec.stat_frac + spec.rsqrt.output.frac, spec.norm, spec.rounding,
                   Overflow.SATURATE)
    g = np.asarray(gamma, dtype=np.int64)[:n]
    b = np.asarray(beta, dtype=np.int64)[:n]
    product_shift = spec.scaled_frac - spec.norm.frac - spec.gamma.frac
    beta_shift = spec.scaled_frac - spec.beta.frac
    scaled = ((y * g) << product_shift) + (b << beta_shift)
    return np.asarray(requantize(scaled, spec.scaled_frac, spec.output, spec.rounding, spec.overflow), dtype=np.int64)


def layernorm_float(spec: LayerNormSpec, eps: float, x, gamma, beta) -> np.ndarray:
    """Exact LayerNorm of the row's input values with ``eps`` and the parameters' values (float64)."""
    values = spec.input.to_float(np.asarray(x, dtype=np.int64))
    n = values.size
    g = spec.gamma.to_float(np.asarray(gamma, dtype=np.int64)[:n])
    b = spec.beta.to_float(np.asarray(beta, dtype=np.int64)[:n])
    return (values - values.mean()) / np.sqrt(values.var() + eps) * g + b


# ------------------------------------------------- hooks (testbench, characterize)

def spec_for(cfg) -> LayerNormSpec:
    from gen.kinds.layernorm import spec

    return spec(cfg)


def default_parameters(cfg) -> tuple[list[int], list[int]]:
    """gamma = 1, beta = 0 for every channel (1.0 saturated if the format cannot hold it)."""
    gamma = cfg.gamma.format.from_float(np.ones(cfg.n_max))
    return [int(g) for g in gamma], [0] * cfg.n_max


def golden_rows(cfg, rows, gamma=None, beta=None) -> list[np.ndarray]:
    spec = spec_for(cfg)
    if gamma is None or beta is None:
        gamma, beta = default_parameters(cfg)
    return by_length(rows, lambda batch: layernorm(spec, batch, gamma, beta))


def float_rows(cfg, rows, gamma=None, beta=None) -> list[np.ndarray]:
    spec = spec_for(cfg)
    if gamma is None or beta is None:
        gamma, beta = default_parameters(cfg)
    return [layernorm_float(spec, cfg.eps, row, gamma, beta) for row in rows]


def context(cfg, rng: np.random.Generator) -> dict:
    """Random per-channel parameters: gamma around 1, beta around 0 (codes)."""
    gamma = cfg.gamma.format.from_float(rng.normal(1.0, 0.5, size=cfg.n_max))
    beta = cfg.beta.format.from_float(rng.normal(0.0, 0.5, size=cfg.n_max))
    return {"gamma": [int(g) for g in gamma], "beta": [int(b) for b in beta]}


def preload_beats(cfg, context: dict) -> dict:
    """The ``params`` stream beats that load ``gamma`` and ``beta`` (lanes channels per beat)."""
    lanes, n = cfg.lanes, cfg.n_max
    beats = []
    for start in range(0, n, lanes):
        pad = [0] * max(0, start + lanes - n)
        beats.append({"gamma": context["gamma"][start:start + lanes] + pad,
                      "beta": context["beta"][start:start + lanes] + pad,
                      "last": int(start + lanes >= n)})
    return {PARAMS_STREAM: beats}


def random_row(cfg, rng: np.random.Generator, length: int) -> np.ndarray:
    """A row of normally distributed values with a random offset and spread, within the input range."""
    fmt = cfg.input.format
    span = float(fmt.max_value - fmt.min_value)
    centre = float(fmt.min_value) + span * rng.uniform(0.25, 0.75)
    spread = span * 10 ** rng.uniform(-4, -0.7)
    return fmt.from_float(rng.normal(centre, spread, size=length))


def edge_rows(cfg) -> list[tuple[str, np.ndarray]]:
    """Constant rows (zero variance), a lone outlier, a variance of one LSB, the extremes."""
    fmt, n = cfg.input.format, cfg.n_max
    lo, hi = fmt.min_code, fmt.max_code
    one = min(hi, 1 << max(0, fmt.frac))
    rows = []
    for value, name in ((0, "zero"), (one, "1.0"), (hi, "largest"), (lo, "smallest")):
        rows.append((f"constant {name} (zero variance), length {n}", np.full(n, value, dtype=np.int64)))
    rows.append(("constant 1.0, length 2", np.full(min(2, n), one, dtype=np.int64)))
    if n >= 2:
        outlier = np.zeros(n, dtype=np.int64)
        outlier[n // 2] = hi
        rows.append((f"one outlier at the largest code, length {n}", outlier))
        rows.append((f"variance of one code step, length {n}", (np.arange(n) % 2).astype(np.int64) + one - 1))
        rows.append((f"halves at the extremes, length {n}", np.where(np.arange(n) < n // 2, lo, hi).astype(np.int64)))
    return rows
