"""Golden model of ``kind: tpe`` engines: ``C = A @ B`` with the engine's accumulator."""

import numpy as np

from hw.arith import accumulator_signed, product_range

from .intmath import operand_range, wrap

#: Largest magnitude the int64 path handles; a wider exact sum is computed on Python integers.
_INT64_SAFE = 1 << 62


def check_operands(a: np.ndarray, b: np.ndarray, width: int, signed: bool, *,
                   b_width: int | None = None, b_signed: bool | None = None) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` are conformable matrices of in-range operands.

    ``A`` has ``width``-bit elements, ``B`` ``b_width``-bit ones (default: ``A``'s format).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"need A (rows x K) and B (K x cols), got shapes {a.shape} and {b.shape}")
    formats = {"A": (width, signed),
               "B": (width if b_width is None else b_width, signed if b_signed is None else b_signed)}
    for name, m in (("A", a), ("B", b)):
        w, s = formats[name]
        lo, hi = operand_range(w, s)
        if m.size and (m.min() < lo or m.max() > hi):
            raise ValueError(f"{name} has values outside the {w}-bit "
                             f"{'signed' if s else 'unsigned'} range [{lo}, {hi}]")


def matmul(a, b, *, width: int, signed: bool, acc_width: int, b_width: int | None = None,
           b_signed: bool | None = None) -> np.ndarray:
    """``A @ B`` accumulated in ``acc_width`` bits, exactly as every TPE architecture computes it.

    ``A`` has ``width``-bit elements (``signed`` or not), ``B`` ``b_width``-bit ones
    (``b_signed``; both default to ``A``'s format); the accumulator is signed when
    either operand is. The sum is exact (on int64, or on Python integers when it
    could reach ``2**62``: operands of up to 32 bits) and then wrapped to
    ``acc_width`` bits, which is what the hardware's accumulator does when K
    exceeds the ``k_max`` it was sized for.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    check_operands(a, b, width, signed, b_width=b_width, b_signed=b_signed)
    lo, hi = product_range(width, signed, b_width=b_width, b_signed=b_signed)
    if a.shape[1] * max(-lo, hi) >= _INT64_SAFE:
        product = a.astype(object) @ b.astype(object)
    else:
        product = a @ b
    return wrap(product, acc_width, accumulator_signed(signed, b_signed))


def for_config(cfg):
    """``matmul`` bound to a validated ``TpeConfig``."""
    a_format, b_format = cfg.a_format, cfg.b_format

    def golden(a, b):
        return matmul(a, b, width=a_format.width, signed=a_format.signed, acc_width=cfg.acc_width,
                      b_width=b_format.width, b_signed=b_format.signed)
    return golden
