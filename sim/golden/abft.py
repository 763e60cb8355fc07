"""Golden model of ABFT for a GEMM tile (the numpy twin of ``hw/protect/abft.py``).

``A`` (M x K) gets a checksum row, ``B`` (K x N) a checksum column; their product is
the full checksum matrix ``Cf`` ((M+1) x (N+1)). :func:`check` finds the rows and
columns whose sums fail modulo ``2**width``, locates a single wrong element and
gives its corrected value, exactly as :class:`hw.protect.abft.AbftChecker` does.
"""

from dataclasses import dataclass

import numpy as np

from .intmath import wrap


def checksum_operands(a, b) -> tuple[np.ndarray, np.ndarray]:
    """``(A with its checksum row appended, B with its checksum column appended)``, exact integers."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"need A (M x K) and B (K x N), got shapes {a.shape} and {b.shape}")
    return (np.vstack([a, a.sum(axis=0, keepdims=True)]),
            np.hstack([b, b.sum(axis=1, keepdims=True)]))


def full_checksum_product(a, b, width: int, signed: bool = True) -> np.ndarray:
    """The full checksum matrix of ``A @ B`` as an array wrapping at ``width`` bits computes it."""
    a_ext, b_ext = checksum_operands(a, b)
    return wrap(a_ext @ b_ext, width, signed)


@dataclass(frozen=True)
class AbftCheck:
    """Outcome of checking a full checksum matrix (same meaning as the checker's ports)."""

    row_error: tuple[bool, ...]
    col_error: tuple[bool, ...]
    error: bool
    located: bool
    row: int | None  # the wrong element, when located
    col: int | None
    value: int | None  # its corrected value (unsigned, modulo 2**width), when located

    @property
    def uncorrectable(self) -> bool:
        return self.error and not self.located


def check(c_full, width: int) -> AbftCheck:
    """Check a full checksum matrix modulo ``2**width``; locate and correct one wrong element."""
    c = wrap(np.asarray(c_full, dtype=np.int64), width, signed=False)
    if c.ndim != 2 or min(c.shape) < 2:
        raise ValueError(f"need a full checksum matrix of at least 2 x 2, got shape {c.shape}")
    row_residual = c[:, :-1].sum(axis=1) - c[:, -1]
    col_residual = c[:-1, :].sum(axis=0) - c[-1, :]
    row_residual, col_residual = (wrap(r, width, signed=False) for r in (row_residual, col_residual))
    row_error = tuple(bool(r) for r in row_residual)
    col_error = tuple(bool(r) for r in col_residual)
    error = any(row_error) or any(col_error)
    located = sum(row_error) == 1 and sum(col_error) == 1
    row = col = value = None
    if located:
        row, col = row_error.index(True), col_error.index(True)
        # An element of the checksum column enters its row's residual negated.
        sign = 1 if col == c.shape[1] - 1 else -1
        value = (int(c[row, col]) + sign * int(row_residual[row])) % (1 << width)
    return AbftCheck(row_error, col_error, error, located, row, col, value)


def correct(c_full, width: int, signed: bool = True) -> np.ndarray:
    """The tile ``C`` (M x N) with a single located error replaced by its correction."""
    c = np.array(c_full, dtype=np.int64)
    outcome = check(c, width)
    if outcome.located:
        c[outcome.row, outcome.col] = outcome.value
    return wrap(c[:-1, :-1], width, signed)
