"""Exact width rules for integer multiply-accumulate datapaths.

The rules are derived from value ranges, not from rules of thumb such as
``2*W + log2(K)``: the range of a sum of ``k`` products is ``k`` times the range of
one product, and the width is the smallest two's-complement (or unsigned) width
that holds both ends. This matters at the edges: for signed operands the only
product that needs ``2*W`` bits is ``(-2**(W-1))**2``.

The two factors may have different formats (``A`` of ``width`` bits, ``B`` of
``b_width`` bits, each signed or unsigned; ``B`` defaults to ``A``'s format). A
product, and so an accumulator, is signed when either factor is
(:func:`accumulator_signed`): an unsigned times a signed operand can be negative.
"""


def operand_range(width: int, signed: bool) -> tuple[int, int]:
    """Smallest and largest value of a ``width``-bit operand."""
    if width < 1:
        raise ValueError(f"operand width must be >= 1, not {width}")
    if signed:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def accumulator_signed(signed: bool, b_signed: bool | None = None) -> bool:
    """Whether products of an ``A`` and a ``B`` operand (``b_signed`` defaults to ``signed``) are signed."""
    return bool(signed or (signed if b_signed is None else b_signed))


def product_range(width: int, signed: bool, *, b_width: int | None = None,
                  b_signed: bool | None = None) -> tuple[int, int]:
    """Smallest and largest product of a ``width``-bit operand and a ``b_width``-bit one.

    ``b_width`` and ``b_signed`` default to ``width`` and ``signed`` (both operands of one format).
    """
    a_lo, a_hi = operand_range(width, signed)
    b_lo, b_hi = operand_range(width if b_width is None else b_width, signed if b_signed is None else b_signed)
    corners = (a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi)
    return min(corners), max(corners)


def signed_width_for(lo: int, hi: int) -> int:
    """Smallest two's-complement width that holds every integer in ``[lo, hi]``."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def accumulator_width(width: int, signed: bool, k_max: int, *, b_width: int | None = None,
                      b_signed: bool | None = None) -> int:
    """Smallest accumulator width such that no sum of ``k <= k_max`` products overflows.

    The products are of a ``width``-bit ``A`` operand and a ``b_width``-bit ``B``
    operand (default: ``A``'s format). The accumulator is signed when either
    operand is (:func:`accumulator_signed`), unsigned otherwise.
    """
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, not {k_max}")
    lo, hi = product_range(width, signed, b_width=b_width, b_signed=b_signed)
    if accumulator_signed(signed, b_signed):
        return signed_width_for(k_max * lo, k_max * hi)
    return max(1, (k_max * hi).bit_length())
