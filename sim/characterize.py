"""Error of a nonlinear unit against the exact real function, measured through its golden model.

:func:`characterize` works on every nonlinear kind through the hooks of the
kind's golden module, which the caller passes (``npuforge.registry.golden_for``;
``sim`` does not know which kinds exist). The hooks are those ``sim/tb/nonlinear.py``
uses:

* ``golden_rows(cfg, rows, **context)``: the bit-exact output codes of each row;
* ``float_rows(cfg, rows, **context)``: the exact real output of each row;
* optional ``context(cfg, rng)``: extra inputs (LayerNorm ``gamma``/``beta``);
* optional ``random_row(cfg, rng, length)``: the kind's own random rows (row kinds).

Inputs:

* element-wise kinds (no ``n_max``): every input code when the input has at most
  :data:`EXHAUSTIVE_MAX_BITS` bits (``exhaustive``); otherwise :data:`SAMPLES`
  evenly spaced codes from the smallest to the largest, every power of two and
  its neighbours, and :data:`SAMPLES` / 4 uniformly random codes;
* row kinds (``n_max``: softmax, the gate, LayerNorm): rows of the lengths 1, 2,
  ``n_max / 2`` and ``n_max`` (and as many of random lengths) in each of the
  :data:`DISTRIBUTIONS` (plus the kind's ``random_row``), about
  :data:`ROW_ELEMENTS` elements in at most :data:`MAX_ROWS` rows; never exhaustive.

Errors are ``|output value - exact value|`` per output element, where the
output value is the code times the output LSB. Outputs whose exact value is not
finite (``1/0``: outside the unit's contract) are left out and counted in
``excluded``. ``saturated`` counts outputs whose exact value lies outside the
output format's range (the error there is the format's, not the method's);
``clamped`` holds the errors against the exact value clamped to that range (the
convention of the error tables in ``docs/nonlinear.md``). A gate's output is
``[index, score]`` pairs; its error is that of the scores (its float reference
is the exact score of each chosen expert).

The report's top level (JSON-able): ``kind``, ``name``, ``method`` (``null`` for
kinds without one), ``config_hash``, ``input`` and ``output`` (``s3.12`` style),
``inputs_tested`` (input elements), ``rows_tested``, ``exhaustive``,
``max_abs_error``, ``mean_abs_error``, ``max_error_lsb`` (in output LSBs),
``mean_error_lsb``, ``worst`` (where the largest error occurred), ``excluded``,
``saturated``, ``clamped`` (``max_abs_error``, ``mean_abs_error``,
``max_error_lsb``), ``by_distribution`` (row kinds: the same three per
distribution) and ``cost`` (what the caller passes: the CLI passes Yosys
``generic`` ``transistors``, ``cells``, ``ff``, ``logic_depth``; ``null`` without).
"""

from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

#: Element-wise inputs of at most this many bits are swept over every code.
EXHAUSTIVE_MAX_BITS = 16
#: Evenly spaced codes for wider inputs (plus a quarter as many random ones).
SAMPLES = 1 << 16
#: About this many elements in the rows of a row kind, in at most MAX_ROWS rows (row goldens work row by row).
ROW_ELEMENTS = 1 << 15
MAX_ROWS = 1000
#: Row distributions for row kinds (see :func:`row_inputs`).
DISTRIBUTIONS = ("uniform", "normal", "narrow", "constant", "one_dominant", "very_negative")


def supports(cfg, golden: ModuleType) -> bool:
    """Whether ``cfg``'s kind (golden module ``golden``) has what characterisation needs."""
    return all(callable(getattr(golden, hook, None)) for hook in ("golden_rows", "float_rows")) and \
        hasattr(cfg, "input") and hasattr(cfg, "output")


def is_row_kind(cfg) -> bool:
    return getattr(cfg, "n_max", None) is not None


# ----------------------------------------------------------------------------- inputs

def element_inputs(fmt, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """``(codes, exhaustive)`` for an element-wise unit with input format ``fmt``."""
    if fmt.width <= EXHAUSTIVE_MAX_BITS:
        return fmt.codes(), True
    spaced = np.linspace(fmt.min_code, fmt.max_code, SAMPLES).round().astype(np.int64)
    powers = []
    for k in range(fmt.width):
        for sign in ((1, -1) if fmt.signed else (1,)):
            powers += [sign * ((1 << k) - 1), sign * (1 << k), sign * ((1 << k) + 1)]
    powers = np.array([p for p in powers if fmt.min_code <= p <= fmt.max_code], dtype=np.int64)
    random = rng.integers(fmt.min_code, fmt.max_code, size=SAMPLES // 4, endpoint=True, dtype=np.int64)
    return np.unique(np.concatenate([spaced, powers, random, [fmt.min_code, 0, fmt.max_code]])), False


def _row(distribution: str, fmt, length: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = fmt.min_code, fmt.max_code
    span = hi - lo
    if distribution == "uniform":
        row = rng.integers(lo, hi, size=length, endpoint=True)
    elif distribution == "normal":  # centred in the range, a sixth of it per sigma
        row = np.rint(rng.normal((lo + hi) / 2, span / 6, size=length))
    elif distribution == "narrow":  # a few codes around a random centre (small differences, small variance)
        centre = rng.integers(lo, hi, endpoint=True)
        row = centre + rng.integers(-8, 9, size=length)
    elif distribution == "constant":
        row = np.full(length, rng.integers(lo, hi, endpoint=True))
    elif distribution == "one_dominant":
        row = rng.integers(lo, lo + span // 4, size=length, endpoint=True)
        row[rng.integers(length)] = hi
    elif distribution == "very_negative":  # the bottom sixteenth of the range
        row = rng.integers(lo, lo + max(1, span // 16), size=length, endpoint=True)
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    return np.clip(row, lo, hi).astype(np.int64)


def row_inputs(cfg, golden, rng: np.random.Generator, elements: int = ROW_ELEMENTS,
               max_rows: int = MAX_ROWS) -> list[tuple[str, np.ndarray]]:
    """Labelled rows for a row kind: every distribution at lengths 1, 2, n_max/2, n_max and random.

    About ``elements`` elements in at most ``max_rows`` rows (at least one row per
    distribution and length).
    """
    fmt, n_max = cfg.input.format, cfg.n_max
    distributions = list(DISTRIBUTIONS) + (["kind_random"] if hasattr(golden, "random_row") else [])
    lengths = sorted({1, min(2, n_max), max(1, n_max // 2), n_max})
    slots = len(distributions) * 2 * len(lengths)
    per_pair = max(1, min(elements // (len(distributions) * (sum(lengths) + n_max)), max_rows // slots))
    rows = []
    for distribution in distributions:
        for length in lengths + [None] * len(lengths):
            for _ in range(per_pair):
                n = int(rng.integers(1, n_max, endpoint=True)) if length is None else length
                row = (golden.random_row(cfg, rng, n) if distribution == "kind_random"
                       else _row(distribution, fmt, n, rng))
                rows.append((distribution, np.asarray(row, dtype=np.int64)))
    return rows


# ------------------------------------------------------------------------------ errors

@dataclass
class _Errors:
    """Per-output-element errors of one run, with where each came from."""

    values: list = field(default_factory=list)     # arrays of |error|
    finite: list = field(default_factory=list)     # arrays: the exact value is finite
    in_range: list = field(default_factory=list)   # arrays: the exact value fits the output format
    clamped: list = field(default_factory=list)    # arrays of |error| against the clamped exact value

    def add(self, error, finite, in_range, clamped):
        self.values.append(error)
        self.finite.append(finite)
        self.in_range.append(in_range)
        self.clamped.append(clamped)

    def arrays(self):
        cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype=dtype))
        return (cat(self.values, float), cat(self.finite, bool), cat(self.in_range, bool),
                cat(self.clamped, float))


def _scores(codes: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """The output codes to compare with ``exact``: a gate's ``[index, score]`` pairs give their scores."""
    if codes.ndim == 2 and exact.ndim == 1 and codes.shape == (exact.shape[0], 2):
        return codes[:, 1]
    return codes


def _stats(error: np.ndarray, lsb: float) -> dict:
    if error.size == 0:
        return {"max_abs_error": None, "mean_abs_error": None, "max_error_lsb": None}
    worst = float(error.max())
    return {"max_abs_error": worst, "mean_abs_error": float(error.mean()), "max_error_lsb": worst / lsb}


def characterize(cfg, golden: ModuleType, *, seed: int = 1, cost: dict | None = None,
                 keep_samples: bool = False, row_elements: int = ROW_ELEMENTS, max_rows: int = MAX_ROWS) -> dict:
    """Sweep ``cfg``'s unit through its golden module ``golden`` and measure the error against float.

    See the module docstring for the inputs and the report.
    ``row_elements``, ``max_rows``: the size of a row kind's sweep (:func:`row_inputs`).
    ``keep_samples``: also return, under ``samples``, the element-wise inputs
    (``input_values``) and signed errors (``errors``) as float arrays (for plots;
    not JSON-able).
    """
    rng = np.random.default_rng(seed)
    out_fmt = cfg.output.format
    lsb = float(out_fmt.lsb)
    lo, hi = float(out_fmt.min_value), float(out_fmt.max_value)
    context = golden.context(cfg, rng) if hasattr(golden, "context") else {}

    if is_row_kind(cfg):
        labelled = row_inputs(cfg, golden, rng, row_elements, max_rows)
        exhaustive = False
    else:
        codes, exhaustive = element_inputs(cfg.input.format, rng)
        labelled = [("all", codes)]
    rows = [row for _, row in labelled]
    outputs = golden.golden_rows(cfg, rows, **context)
    exact_rows = golden.float_rows(cfg, rows, **context)

    errors, by_label, signed_parts = _Errors(), {}, []
    worst = (-1.0, None)
    for index, ((label, row), codes, exact) in enumerate(zip(labelled, outputs, exact_rows, strict=True)):
        exact = np.asarray(exact, dtype=np.float64)
        got = out_fmt.to_float(_scores(np.asarray(codes, dtype=np.int64), exact))
        finite = np.isfinite(exact)
        signed_error = np.where(finite, got - np.where(finite, exact, 0.0), 0.0)
        error = np.abs(signed_error)
        in_range = finite & (exact >= lo - lsb / 2) & (exact <= hi + lsb / 2)
        clamped = np.where(finite, np.abs(got - np.clip(np.where(finite, exact, 0.0), lo, hi)), 0.0)
        errors.add(error, finite, in_range, clamped)
        by_label.setdefault(label, _Errors()).add(error, finite, in_range, clamped)
        if keep_samples:
            signed_parts.append(signed_error)
        if finite.any():
            position = int(np.argmax(np.where(finite, error, -1.0)))
            if error[position] > worst[0]:
                worst = (float(error[position]), _where(cfg, index, label, row, position, got, exact))

    error, finite, in_range, clamped = errors.arrays()
    report = {
        "kind": cfg.kind,
        "name": cfg.name,
        "method": getattr(cfg, "method", None),
        "config_hash": cfg.config_hash(),
        "input": cfg.input.format.describe(),
        "output": out_fmt.describe(),
        "inputs_tested": int(sum(len(row) for row in rows)),
        "rows_tested": len(rows),
        "exhaustive": bool(exhaustive),
        **_stats(error[finite], lsb),
        "mean_error_lsb": float(error[finite].mean()) / lsb if finite.any() else None,
        "worst": worst[1],
        "excluded": int((~finite).sum()),
        "saturated": int((finite & ~in_range).sum()),
        "clamped": _stats(clamped[finite], lsb),
        "cost": cost,
    }
    if is_row_kind(cfg):
        report["by_distribution"] = {}
        for label, part in by_label.items():
            e, f, _, _ = part.arrays()
            report["by_distribution"][label] = {"rows": sum(1 for name, _ in labelled if name == label),
                                                **_stats(e[f], lsb)}
    if keep_samples and not is_row_kind(cfg):
        report["samples"] = {"input_values": cfg.input.format.to_float(rows[0]),
                             "errors": signed_parts[0]}
    return report


def _where(cfg, index, label, row, position, got, exact) -> dict:
    """Where the worst error occurred: the input code (element kinds) or the row and element (row kinds)."""
    place = {"output": float(got[position]), "exact": float(exact[position])}
    if is_row_kind(cfg):
        return {"row": index, "distribution": label, "length": int(len(row)), "element": position, **place}
    return {"input_code": int(row[position]), "input": float(cfg.input.format.to_float(row[position])), **place}
