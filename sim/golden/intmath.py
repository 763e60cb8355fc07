"""Two's-complement helpers shared by the integer golden models."""

import numpy as np

from hw.arith import operand_range  # the one definition of an operand's range

__all__ = ["operand_range", "wrap"]


def wrap(values, width: int, signed: bool) -> np.ndarray:
    """Reduce integers to ``width`` bits the way a hardware register does.

    Unsigned: modulo ``2**width``. Signed: two's complement, so the result lies in
    ``[-2**(width-1), 2**(width-1))``. Inputs must fit in int64.
    """
    values = np.asarray(values, dtype=np.int64)
    if width >= 64:
        return values
    low_bits = values & np.int64((1 << width) - 1)
    if signed:
        half = np.int64(1 << (width - 1))
        return np.where(low_bits >= half, low_bits - np.int64(1 << width), low_bits)
    return low_bits
