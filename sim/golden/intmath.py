"""Two's-complement helpers shared by the integer golden models."""

import numpy as np

from hw.arith import operand_range  # the one definition of an operand's range
from hw.arith.fixed import MAX_INTERMEDIATE_BITS

__all__ = ["magnitude", "multiply", "operand_range", "wrap"]


def wrap(values, width: int, signed: bool) -> np.ndarray:
    """Reduce integers to ``width`` bits the way a hardware register does.

    Unsigned: modulo ``2**width``. Signed: two's complement, so the result lies in
    ``[-2**(width-1), 2**(width-1))``. Inputs must fit in int64, or be an object
    array of Python integers of any size (exact sums too wide for int64); the result
    of an object array is int64 when every value fits, else an object array.
    """
    if isinstance(values, np.ndarray) and values.dtype == object:
        return _wrap_exact(values, width, signed)
    values = np.asarray(values, dtype=np.int64)
    if width >= 64:
        return values
    low_bits = values & np.int64((1 << width) - 1)
    if signed:
        half = np.int64(1 << (width - 1))
        return np.where(low_bits >= half, low_bits - np.int64(1 << width), low_bits)
    return low_bits


def magnitude(values) -> int:
    """Largest ``|v|`` of an integer array (int64 or Python ints), as a Python int; 0 when empty."""
    values = np.asarray(values)
    if not values.size:
        return 0
    return max(abs(int(values.min())), abs(int(values.max())))


def multiply(a, b) -> np.ndarray:
    """``a * b`` of integer arrays (broadcast), exactly at any width.

    int64 when every product is provably below ``2**MAX_INTERMEDIATE_BITS`` (from the operands'
    largest magnitudes), otherwise an object array of Python integers -- where a row-by-row model
    would have multiplied Python ints. :func:`hw.arith.fixed.shift_round` and ``requantize`` take
    either and return int64 when the result fits.
    """
    a, b = np.asarray(a), np.asarray(b)
    if magnitude(a) * magnitude(b) < (1 << MAX_INTERMEDIATE_BITS):
        return a.astype(np.int64, copy=False) * b.astype(np.int64, copy=False)
    return a.astype(object) * b.astype(object)


def _wrap_exact(values: np.ndarray, width: int, signed: bool) -> np.ndarray:
    """:func:`wrap` on Python integers (no bit limit)."""
    low_bits = values & ((1 << width) - 1)
    if signed:
        half = 1 << (width - 1)
        low_bits = np.where(low_bits >= half, low_bits - (1 << width), low_bits).astype(object)
    fits = width < 64 or (signed and width == 64)
    return low_bits.astype(np.int64) if fits else low_bits
