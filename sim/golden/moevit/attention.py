"""Attention matmuls (``Q K^T`` and ``A V``) of one head, scheduled directly and in Edge-MoE's reordered order.

Both schedules compute every product with the same arithmetic as :mod:`.fixed` (products
requantised to the accumulator, exact sums, then the accumulator's overflow and the output's
rounding), so they give bit-identical results; what differs is the order of the steps and so
the memory traffic, which each schedule counts as it runs (rows of ``hd`` features loaded):

* **direct**: one query row at a time, kept on chip; each step loads ``p`` key (value) rows
  and computes ``p`` products of rows. Loads ``N**2 + N`` rows in ``N * ceil(N / p)`` steps:
  ``p`` rows per step.
* **reordered** (Edge-MoE): ``p`` query rows on chip (a block); each step loads ONE key row and
  multiplies it with every cached query. Query ``base + i`` is loaded at the step whose key index
  is ``i``, so it sees keys ``i .. N-1`` during its own block and ``0 .. i-1`` during the next
  block, while the slot's next query is loaded: at most one query row and exactly one key row per
  step. For ``N`` a multiple of ``p`` it loads ``N**2 / p + N + p - 1`` rows in ``N**2 / p + p - 1``
  steps (the table in docs/moevit.md). ``A V`` uses the same skew with value rows.

The softmax between them runs on each completed row of scores in key order (the softmax unit of
the config), so the reorder changes no result. (Edge-MoE also folds the softmax statistics into
the reordered ``Q K^T`` loop, where a row's keys arrive rotated, ``i .. N-1, 0 .. i-1``; with the
project's softmax unit that would change the rounding order of the running sum, so it is not done.)
"""

from dataclasses import dataclass

import numpy as np

from hw.arith.fixed import fit, requantize

from .fixed import MatmulSpec, product_sum


@dataclass
class Schedule:
    """What a schedule did: the result's accumulator codes and its traffic."""

    acc: np.ndarray  # (N, M) accumulator codes, fitted to the accumulator
    steps: int  # cycles at one step per cycle
    rows_loaded: int  # query plus key (or probability plus value) rows loaded
    query_rows_loaded: int
    key_rows_loaded: int
    max_rows_per_step: int  # peak rows loaded in one step
    on_chip_rows: int  # rows held at once


def _dot(spec: MatmulSpec, a_row: np.ndarray, b_row: np.ndarray) -> int:
    """One output element: ``sum_k round(a_k * b_k)`` (before the accumulator's overflow)."""
    return int(product_sum(a_row[None, :], b_row[:, None], spec.product_shift, spec.rounding)[0, 0])


def _finish(spec: MatmulSpec, acc: np.ndarray) -> np.ndarray:
    return np.asarray(fit(acc.astype(object) if acc.dtype == object else acc, spec.acc, spec.overflow),
                      dtype=np.int64)


def output(spec: MatmulSpec, acc: np.ndarray) -> np.ndarray:
    """The output codes of finished accumulator codes."""
    return np.asarray(requantize(acc, spec.acc.frac, spec.out, spec.rounding, spec.overflow), dtype=np.int64)


def _direct_steps(n_rows: int, n_keys: int, p: int):
    """The direct schedule: per step ``(row, keys, query_loaded)``: one query row on chip, ``p`` keys a step."""
    for row in range(n_rows):
        for start in range(0, n_keys, p):
            yield row, range(start, min(n_keys, start + p)), start == 0


def _reordered_steps(n_rows: int, n_keys: int, p: int):
    """Edge-MoE's skewed schedule: per step ``(key, [(slot, row)...], query_loaded)``.

    Block ``b`` (base ``b * p``) streams keys ``0 .. n_keys-1``; slot ``i`` holds query ``base + i``
    from key ``i`` on (loaded at that step), and until key ``i - 1`` it still holds query
    ``base - p + i`` of the previous block, which needs keys ``0 .. i-1``. A block streams a key
    only while some slot needs it.
    """
    blocks = (n_rows + p - 1) // p + 1
    for block in range(blocks):
        base = block * p
        for key in range(n_keys):
            live = []
            loaded = None
            for slot in range(p):
                if key >= slot and base + slot < n_rows:
                    live.append((slot, base + slot))
                    if key == slot:
                        loaded = base + slot
                elif key < slot and block > 0 and base - p + slot < n_rows:
                    live.append((slot, base - p + slot))
            if live:
                yield key, live, loaded


def _run(order: str, n_rows: int, n_keys: int, p: int, acc: np.ndarray, spec: MatmulSpec, contribute) -> Schedule:
    """Run ``order``'s steps, calling ``contribute(row, key)`` for every (query, key) pair it meets, and count
    the traffic. Checks that every pair is met exactly once."""
    seen = np.zeros((n_rows, n_keys), dtype=bool)
    steps = queries = keys_loaded = peak = 0

    def meet(row, key):
        if seen[row, key]:
            raise AssertionError(f"row {row} met key {key} twice")
        seen[row, key] = True
        contribute(row, key)

    if order == "direct":
        for row, keys, loaded in _direct_steps(n_rows, n_keys, p):
            steps, queries, keys_loaded = steps + 1, queries + loaded, keys_loaded + len(keys)
            peak = max(peak, len(keys) + loaded)
            for key in keys:
                meet(row, key)
    elif order == "reordered":
        for key, live, loaded in _reordered_steps(n_rows, n_keys, p):
            steps, queries, keys_loaded = steps + 1, queries + (loaded is not None), keys_loaded + 1
            peak = max(peak, 1 + (loaded is not None))
            for _slot, row in live:
                meet(row, key)
    else:
        raise ValueError(f"order: {order!r}; allowed: {', '.join(ORDERS)}")
    if not seen.all():
        raise AssertionError(f"{int((~seen).sum())} (row, key) pairs never met")
    return Schedule(_finish(spec, acc), steps, queries + keys_loaded, queries, keys_loaded, peak, p + 1)


def _row_product(spec: MatmulSpec, weight: int, row: np.ndarray) -> np.ndarray:
    """``round(weight * row_k)`` per feature, as the accumulator adds it."""
    return product_sum(np.array([[weight]], dtype=np.int64), row[None, :], spec.product_shift,
                       spec.rounding)[0].astype(object)


ORDERS = ("direct", "reordered")


def qk(spec: MatmulSpec, q: np.ndarray, k: np.ndarray, p: int, order: str) -> Schedule:
    """Raw scores ``q k^T`` (accumulator codes) of one head in ``order``; ``q``, ``k``: (N, hd) codes."""
    q, k = np.asarray(q, dtype=np.int64), np.asarray(k, dtype=np.int64)
    acc = np.zeros((q.shape[0], k.shape[0]), dtype=object)

    def contribute(row, key):
        acc[row, key] = _dot(spec, q[row], k[key])

    return _run(order, q.shape[0], k.shape[0], p, acc, spec, contribute)


def av(spec: MatmulSpec, probabilities: np.ndarray, v: np.ndarray, p: int, order: str) -> Schedule:
    """``A V`` (accumulator codes) of one head in ``order``: probabilities (N, N) codes, ``v`` (N, hd) codes;
    the "keys" are value rows."""
    probabilities, v = np.asarray(probabilities, dtype=np.int64), np.asarray(v, dtype=np.int64)
    acc = np.zeros((probabilities.shape[0], v.shape[1]), dtype=object)

    def contribute(row, key):
        acc[row] += _row_product(spec, probabilities[row, key], v[key])

    return _run(order, probabilities.shape[0], v.shape[0], p, acc, spec, contribute)


def table(n: int, p: int) -> dict[str, dict[str, int]]:
    """Loads, steps and peak rows loaded per step of both orders for ``N = n`` rows, counted by running
    the schedules' step generators (the table of docs/moevit.md)."""
    direct_steps = list(_direct_steps(n, n, p))
    reordered_steps = list(_reordered_steps(n, n, p))
    return {
        "direct": {"rows_loaded": sum(len(keys) + loaded for _r, keys, loaded in direct_steps),
                   "steps": len(direct_steps),
                   "peak_rows_per_step": max(len(keys) + loaded for _r, keys, loaded in direct_steps),
                   "on_chip_rows": p + 1},
        "reordered": {"rows_loaded": len(reordered_steps) + sum(q is not None for _k, _l, q in reordered_steps),
                      "steps": len(reordered_steps),
                      "peak_rows_per_step": max(1 + (q is not None) for _k, _l, q in reordered_steps),
                      "on_chip_rows": p + 1},
    }
