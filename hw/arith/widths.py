"""Exact width rules for integer multiply-accumulate datapaths.

The rules are derived from value ranges, not from rules of thumb such as
``2*W + log2(K)``: the range of a sum of ``k`` products is ``k`` times the range of
one product, and the width is the smallest two's-complement (or unsigned) width
that holds both ends. This matters at the edges: for signed operands the only
product that needs ``2*W`` bits is ``(-2**(W-1))**2``.
"""


def operand_range(width: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest value of a ``width``-bit operand."""
    if width < 1:
        raise ValueError(f"operand width must be >= 1, not {width}")
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def product_range(width: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest product of two ``width``-bit operands of the same signedness."""
    lo, hi = operand_range(width, signed)
    corners = (lo * lo, lo * hi, hi * hi)
    return min(corners), max(corners)


def signed_width_for(lo: int, hi: int) -> int:
    """Smallest two's-complement width that holds every integer in ``[lo, hi]``."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def accumulator_width(width: int, signed: bool, k_max: int) -> int:
    """Smallest accumulator width such that no sum of ``k <= k_max`` products overflows.

    Signed operands give a signed accumulator, unsigned operands an unsigned one.
    """
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, not {k_max}")
    lo, hi = product_range(width, signed)
    if signed:
        return signed_width_for(k_max * lo, k_max * hi)
    return max(1, (k_max * hi).bit_length())
