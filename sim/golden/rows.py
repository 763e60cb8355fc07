"""What the golden models of row kinds (softmax, LayerNorm) share: rows of mixed lengths through a golden
vectorised over rows of one length."""

import numpy as np


def by_length(rows, golden) -> list[np.ndarray]:
    """``golden(batch)`` on the rows of each length at once, the results in the order of ``rows``.

    ``batch`` is an int64 array ``(rows of that length, length)``; ``golden`` returns one result
    per batch row along its first axis. The testbench and ``npuforge characterize`` hooks take
    rows of any lengths (a list); the goldens work on whole arrays of rows.
    """
    rows = [np.asarray(row, dtype=np.int64).reshape(-1) for row in rows]
    by_size: dict[int, list[int]] = {}
    for index, row in enumerate(rows):
        by_size.setdefault(row.size, []).append(index)
    results = [None] * len(rows)
    for size in sorted(by_size):
        chosen = by_size[size]
        for index, result in zip(chosen, golden(np.stack([rows[index] for index in chosen]))):
            results[index] = result
    return results
