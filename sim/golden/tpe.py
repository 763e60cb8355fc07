"""Golden model of ``kind: tpe`` engines: ``C = A @ B`` with the engine's accumulator."""

import numpy as np

from .intmath import operand_range, wrap


def check_operands(a: np.ndarray, b: np.ndarray, width: int, signed: bool) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` are conformable matrices of in-range operands."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"need A (rows x K) and B (K x cols), got shapes {a.shape} and {b.shape}")
    lo, hi = operand_range(width, signed)
    for name, m in (("A", a), ("B", b)):
        if m.size and (m.min() < lo or m.max() > hi):
            raise ValueError(f"{name} has values outside the {width}-bit "
                             f"{'signed' if signed else 'unsigned'} range [{lo}, {hi}]")


def matmul(a, b, *, width: int, signed: bool, acc_width: int) -> np.ndarray:
    """``A @ B`` accumulated in ``acc_width`` bits, exactly as every TPE architecture computes it.

    The sum is exact (operands of at most 16 bits and K <= 65536 stay below 2**48)
    and then wrapped to ``acc_width`` bits, which is what the hardware's
    accumulator does when K exceeds the ``k_max`` it was sized for.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    check_operands(a, b, width, signed)
    return wrap(a @ b, acc_width, signed)


def for_config(cfg):
    """``matmul`` bound to a validated ``TpeConfig``."""
    def golden(a, b):
        return matmul(a, b, width=cfg.operand.width, signed=cfg.operand.signed, acc_width=cfg.acc_width)
    return golden
