"""Golden model of ``kind: softmax`` (``hw/nonlinear/softmax.py``) and its top-k gate (``hw/nonlinear/gate.py``).

:func:`softmax` repeats the hardware's order of operations exactly (beat by
beat: beat max, beat sum, merge into the running max and sum; then one
reciprocal; then ``E(x - m) * (1/s)`` per element), using the exp and
reciprocal goldens and the rules of :mod:`hw.arith.fixed`. It works on whole
arrays of rows at once (the last axis is the row; a 1-D array is one row):
the merge runs beat by beat for all rows together, so a MoE-ViT's thousands of
attention rows cost one pass over the beats. :func:`gate` adds the top-k
selection. :func:`softmax_float` is the exact softmax of the input values. The
hooks of the generic testbench (``sim/tb/nonlinear.py``) and of ``npuforge
characterize`` are at the end.
"""

import numpy as np

from hw.arith.fixed import requantize, shift_round
from hw.nonlinear.softmax import SoftmaxSpec

from .exp import exp
from .intmath import multiply
from .reciprocal import reciprocal
from .rows import by_length


def _exp0(spec: SoftmaxSpec, args: np.ndarray) -> np.ndarray:
    """``E(a)``: exactly 1.0 for ``a = 0`` (the hardware's constant), the exp block otherwise."""
    args = np.asarray(args, dtype=np.int64)
    return np.where(args == 0, np.int64(spec.one), exp(spec.exp, args))


def _rows(spec: SoftmaxSpec, x) -> np.ndarray:
    """``x`` as int64 rows of a valid length (the last axis)."""
    x = np.asarray(x, dtype=np.int64)
    length = x.shape[-1] if x.ndim else 0
    if not 1 <= length <= spec.n_max:
        raise ValueError(f"a row has 1..{spec.n_max} elements, not {length}")
    return x


def statistics(spec: SoftmaxSpec, x) -> tuple[np.ndarray, np.ndarray]:
    """Each row's max ``m`` and sum ``s`` (codes, shape ``x.shape[:-1]``) after the statistics pass,
    beat by beat as the hardware."""
    x = _rows(spec, x)
    n, lanes = x.shape[-1], spec.lanes
    rows = x.reshape(-1, n)
    beats = -(-n // lanes)
    # A short last beat is padded with copies of the row's last element (they change no max) and
    # masked out of the sums.
    padded = np.concatenate([rows, np.repeat(rows[:, -1:], beats * lanes - n, axis=1)], axis=1)
    padded = padded.reshape(len(rows), beats, lanes)
    in_row = (np.arange(beats * lanes) < n).reshape(beats, lanes)
    beat_max = padded.max(axis=2)
    running = np.maximum.accumulate(beat_max, axis=1)
    # Lane exps relative to each beat's max (exactly 1 for the max itself), summed exactly.
    beat_sum = np.where(in_row, _exp0(spec, padded - beat_max[..., None]), 0).sum(axis=2)
    # Merge exps: argument -|m_before - b| (<= 0) for every beat after the first.
    gap = running[:, :-1] - beat_max[:, 1:]
    scale = _exp0(spec, -np.abs(gap))
    frac = spec.exp_format.frac
    s = beat_sum[:, 0]
    for k in range(1, beats):  # sequential in the beats, vectorised over the rows
        t, r = beat_sum[:, k], scale[:, k - 1]
        moved = shift_round(multiply(s, r), frac, spec.rounding) + t  # a new max: the running sum moves
        kept = s + shift_round(multiply(t, r), frac, spec.rounding)
        s = np.where(gap[:, k - 1] < 0, moved, kept).astype(np.int64)
    return running[:, -1].reshape(x.shape[:-1]), s.reshape(x.shape[:-1])


def softmax(spec: SoftmaxSpec, x) -> np.ndarray:
    """Output codes of every row (the last axis of ``x``), bit-exact with :class:`hw.nonlinear.softmax.Softmax`."""
    x = _rows(spec, x)
    maximum, total = statistics(spec, x)
    inv = reciprocal(spec.reciprocal, total)
    product = multiply(_exp0(spec, x - maximum[..., None]), inv[..., None])
    return np.asarray(requantize(product, spec.exp_format.frac + spec.reciprocal.output.frac, spec.output,
                                 spec.rounding, spec.overflow), dtype=np.int64)


def top_k_pairs(scores, k: int) -> np.ndarray:
    """Per row (the last axis of ``scores``) ``min(k, n)`` pairs ``[index, score]``: largest score first,
    ties to the lower index; shape ``scores.shape[:-1] + (min(k, n), 2)``."""
    scores = np.asarray(scores, dtype=np.int64)
    order = np.argsort(-scores, axis=-1, kind="stable")[..., :k]
    return np.stack([order, np.take_along_axis(scores, order, axis=-1)], axis=-1).astype(np.int64)


def gate(spec: SoftmaxSpec, top_k: int, x) -> np.ndarray:
    """(expert index, score) pairs of every gate row (the last axis of ``x``), bit-exact with
    :class:`hw.nonlinear.gate.SoftmaxGate`; shape as :func:`top_k_pairs`."""
    return top_k_pairs(softmax(spec, x), top_k)


def softmax_float(spec: SoftmaxSpec, x) -> np.ndarray:
    """The exact softmax of the row's input values (float64)."""
    values = spec.input.to_float(np.asarray(x, dtype=np.int64))
    e = np.exp(values - values.max())
    return e / e.sum()


# ------------------------------------------------- hooks (testbench, characterize)

def spec_for(cfg) -> SoftmaxSpec:
    from gen.kinds.softmax import spec

    return spec(cfg)


def golden_rows(cfg, rows) -> list[np.ndarray]:
    """Per row: the output codes, or for a gate (``top_k`` set) the ``[index, score]`` pairs."""
    spec = spec_for(cfg)
    if cfg.top_k is not None:
        return by_length(rows, lambda batch: gate(spec, cfg.top_k, batch))
    return by_length(rows, lambda batch: softmax(spec, batch))


def float_rows(cfg, rows) -> list[np.ndarray]:
    """Per row the exact probabilities; for a gate the exact scores of the experts the hardware chose.

    The gate's float reference keeps the hardware's indices so that an error
    table measures the scores; whether the chosen experts are the true top-k
    is a separate question (:func:`selection_agreement`).
    """
    spec = spec_for(cfg)
    if cfg.top_k is None:
        return [softmax_float(spec, row) for row in rows]
    return [softmax_float(spec, row)[pairs[:, 0]] for row, pairs in zip(rows, golden_rows(cfg, rows))]


def selection_agreement(cfg, rows) -> float:
    """Fraction of gate rows whose chosen experts are a true top-k of the exact softmax (ties allowed)."""
    spec = spec_for(cfg)
    agree = 0
    for row, pairs in zip(rows, golden_rows(cfg, rows)):
        chosen = pairs[:, 0]
        exact = softmax_float(spec, row)
        threshold = np.sort(exact)[::-1][len(chosen) - 1]
        agree += bool(np.all(exact[chosen] >= threshold - 1e-12))
    return agree / max(1, len(rows))


def edge_rows(cfg) -> list[tuple[str, np.ndarray]]:
    """Softmax edge cases: all equal, one dominant value, all very negative, ties for the gate."""
    fmt = cfg.input.format
    n = cfg.n_max
    lo, hi = fmt.min_code, fmt.max_code
    one = 1 << max(0, fmt.frac)
    rows = [
        (f"all equal (1.0), length {n}", np.full(n, min(one, hi), dtype=np.int64)),
        (f"one dominant at the end, length {n}", np.r_[np.full(n - 1, lo), hi].astype(np.int64)),
        (f"one dominant first, length {n}", np.r_[hi, np.full(n - 1, lo)].astype(np.int64)),
        (f"all very negative, length {n}", np.linspace(lo, lo + max(1, n // 2), n).astype(np.int64)),
        (f"ascending ramp (a new max every element), length {n}",
         np.linspace(lo // 2, hi // 2, n).astype(np.int64)),
        (f"descending ramp, length {n}", np.linspace(hi // 2, lo // 2, n).astype(np.int64)),
        ("length 1, the largest code", np.array([hi], dtype=np.int64)),
        ("length 1, the smallest code", np.array([lo], dtype=np.int64)),
    ]
    if n >= 3:
        # Ties: equal maxima far apart, then pairs of equal values below them.
        tied = np.full(n, lo // 4, dtype=np.int64)
        tied[[1, n - 1]] = hi // 3
        tied[0] = tied[n // 2] = hi // 5
        rows.append((f"ties of the max and of the second value, length {n}", tied))
        rows.append((f"all equal except one smaller, length {n}",
                     np.r_[np.full(n - 1, 3), 2].astype(np.int64)))
    return rows


def row_from_beats(cfg, beats: list[dict]) -> list | None:
    """A gate's output row: ``[index, score]`` per beat; ``None`` for a plain softmax (the
    testbench's default: ``data[:count]`` per beat, with the beat framing checked)."""
    if cfg.top_k is not None:
        return [[beat["index"], beat["score"]] for beat in beats]
    return None
