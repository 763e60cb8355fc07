"""What the golden models of element-wise kinds share: input checks and the row hooks of ``sim/tb/nonlinear.py``."""

import numpy as np


def input_codes(fmt, codes) -> np.ndarray:
    """``codes`` as int64, checked against ``fmt``'s range (``ValueError`` outside it)."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and (codes.min() < fmt.min_code or codes.max() > fmt.max_code):
        raise ValueError(f"codes outside the input format {fmt.describe()} [{fmt.min_code}, {fmt.max_code}]")
    return codes


def elementwise_hooks(spec_of, golden, reference):
    """``(golden_rows, float_rows)`` of an element-wise kind, applying ``golden(spec, codes)`` and
    ``reference(spec, codes)`` to every row with ``spec = spec_of(cfg)``."""

    def golden_rows(cfg, rows) -> list[np.ndarray]:
        """Bit-exact output codes of each row (the kind is element-wise)."""
        spec = spec_of(cfg)
        return [golden(spec, row) for row in rows]

    def float_rows(cfg, rows) -> list[np.ndarray]:
        """The exact real outputs of each row."""
        spec = spec_of(cfg)
        return [reference(spec, row) for row in rows]

    return golden_rows, float_rows
