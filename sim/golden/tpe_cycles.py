"""Cycle model of the TPE engines whose timing follows the data (``mac: opt3``, ``opt4c``, ``laconic``).

The engines are ``matrix2d`` grids of digit-serial PEs (``hw/tpe/digit_serial.py``)
that run in lockstep: beat ``k`` (``A[:, k]`` and ``B[k, :]``) takes

* ``opt3``, ``opt4c``: ``max(1, max_i d(A[i, k]))`` cycles, ``d`` the number of
  nonzero EN-T radix-4 digits of an operand (:func:`hw.arith.digits.ent_digits`);
* ``laconic``: ``max(1, max_i t(A[i, k]) * max_j t(B[k, j]))``, ``t`` the number of
  effectual terms (NAF, :func:`hw.arith.digits.effectual_terms`).

A job's *busy* cycles are the sum over its beats: the cycles from the transfer of
its first beat to the edge that captures its results, when nothing precedes it.
Back to back at full rate a job's last beat also waits until the previous job's
``rows`` result beats can leave: the job takes ``max(busy, rows - 1 + c_last)``
cycles from one capture to the next (``c_last`` its last beat's cycles). Its first
result beat is valid ``2 + (c_last - 1)`` cycles after its last beat moved.

The digit and term counts come from the Python references in ``hw/arith/digits.py``
(tabulated once per operand format), so the model and the hardware share one
definition of each encoding.
"""

from functools import lru_cache

import numpy as np

from hw.arith import operand_range

#: The ``mac`` options whose cycles depend on the operands.
DATA_DEPENDENT = ("opt3", "opt4c", "laconic")
#: Latency of these engines, counted from the cycle after the last beat's digits begin (see module doc).
LATENCY = 2


@lru_cache(maxsize=None)
def _counts(encoding: str, width: int, signed: bool) -> np.ndarray:
    """Nonzero digits (``"ent"``) or effectual terms (``"terms"``) of every operand value, from the lowest."""
    # Imported here: hw.arith.digits also holds the Amaranth encoders, and every cocotb testbench of a TPE
    # imports this module (Amaranth's import is 0.7 s of a small simulation's start-up).
    from hw.arith.digits import effectual_terms, ent_digits

    encode = ent_digits if encoding == "ent" else effectual_terms
    lo, hi = operand_range(width, signed)
    counts = [sum(1 for digit in encode(value, width, signed) if digit) for value in range(lo, hi + 1)]
    table = np.array(counts, dtype=np.int64)
    table.flags.writeable = False
    return table


def _lookup(encoding: str, values, width: int, signed: bool) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    lo, hi = operand_range(width, signed)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(f"operands outside the {width}-bit {'signed' if signed else 'unsigned'} range [{lo}, {hi}]")
    return _counts(encoding, width, signed)[values - lo]


def nonzero_digits(values, *, operand_width: int, signed: bool) -> np.ndarray:
    """Per element, the nonzero EN-T radix-4 digits (the cycles an ``opt3`` PE spends on it)."""
    return _lookup("ent", values, operand_width, signed)


def effectual_term_count(values, *, operand_width: int, signed: bool) -> np.ndarray:
    """Per element, the effectual terms (nonzero NAF digits) that ``laconic`` issues for it."""
    return _lookup("terms", values, operand_width, signed)


def _check(arch: str, mac: str) -> None:
    if mac not in DATA_DEPENDENT:
        raise ValueError(f"mac {mac!r} has fixed timing (max(beats, parameters.job_interval) per job); "
                         f"this model covers {', '.join(DATA_DEPENDENT)}")
    if arch != "matrix2d":
        raise ValueError(f"mac {mac!r} is implemented for arch 'matrix2d' only, not {arch!r}")


def beat_cycles(a, b, *, mac: str, operand_width: int, signed: bool) -> np.ndarray:
    """Cycles of each beat (reduction step ``k``) of the job ``A @ B``: shape ``(K,)``."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or a.shape[1] < 1:
        raise ValueError(f"need A (rows x K) and B (K x cols) with K >= 1, got shapes {a.shape} and {b.shape}")
    if mac == "laconic":
        a_terms = effectual_term_count(a, operand_width=operand_width, signed=signed).max(axis=0)
        b_terms = effectual_term_count(b, operand_width=operand_width, signed=signed).max(axis=1)
        return np.maximum(1, a_terms * b_terms)
    return np.maximum(1, nonzero_digits(a, operand_width=operand_width, signed=signed).max(axis=0))


def job_cycles(a, b, *, arch: str, mac: str, operand_width: int, signed: bool,
               back_to_back: bool = True, **geometry) -> int:
    """Cycles one job ``A @ B`` occupies the engine.

    ``back_to_back`` (default): following another job at full rate, from the
    previous job's capture to this one's, ``max(busy, rows - 1 + c_last)``;
    summed over a stream of jobs this is the stream's length (see
    :func:`stream_cycles`). Otherwise the busy cycles alone (the first job after
    reset or idle). ``geometry`` takes the config's keys (``rows``, ``cols``,
    ``k_max``, ...); only ``rows`` matters, and defaults to the rows of ``A``.
    """
    _check(arch, mac)
    beats = beat_cycles(a, b, mac=mac, operand_width=operand_width, signed=signed)
    busy = int(beats.sum())
    if not back_to_back:
        return busy
    rows = geometry.get("rows") or np.asarray(a).shape[0]
    return max(busy, rows - 1 + int(beats[-1]))


def stream_cycles(jobs, *, arch: str, mac: str, operand_width: int, signed: bool, **geometry) -> int:
    """Cycles to run ``jobs`` (pairs ``(A, B)``) back to back at full rate, sink always ready.

    From the cycle the first operand beat moves (cycle 0) through the cycle the
    last result beat moves: the first job's busy cycles, every later job's
    :func:`job_cycles`, then the last job's ``rows`` result beats.
    """
    jobs = list(jobs)
    if not jobs:
        return 0
    common = {"arch": arch, "mac": mac, "operand_width": operand_width, "signed": signed, **geometry}
    first, *rest = jobs
    capture = job_cycles(*first, back_to_back=False, **common)
    capture += sum(job_cycles(a, b, **common) for a, b in rest)
    rows = geometry.get("rows") or np.asarray(first[0]).shape[0]
    return capture + rows + 1


def for_config(cfg):
    """``job_cycles`` bound to a validated ``TpeConfig`` (``back_to_back`` still a keyword)."""
    def cycles(a, b, *, back_to_back: bool = True):
        # The data-dependent options take one format for A and B (the config refuses two).
        return job_cycles(a, b, arch=cfg.arch, mac=cfg.mac, operand_width=cfg.a_format.width,
                          signed=cfg.a_format.signed, back_to_back=back_to_back, rows=cfg.rows)
    return cycles
