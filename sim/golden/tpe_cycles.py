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

With decoupled rows (``row_queue: n``, ``opt3`` and ``opt4c``) the rows do not
wait for each other: beats enter a shared queue of ``n`` slots, and each row
loads its next beat from it when its own digits are done, so a row's beat costs
``max(1, d(A[i, k]))``; a row captures its results when it ends a job's last
beat, and waits there only while the result bank still holds the previous job.
:func:`capture_cycles` follows that timing beat by beat (see there); the queue
bounds how far rows run apart.

The digit and term counts come from the Python references in ``hw/arith/digits.py``
(tabulated once per operand format), so the model and the hardware share one
definition of each encoding.
"""

from dataclasses import dataclass
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
    last result beat moves: the last job's capture (:func:`capture_cycles`),
    then its ``rows`` result beats.
    """
    jobs = list(jobs)
    if not jobs:
        return 0
    timings = capture_cycles(jobs, arch=arch, mac=mac, operand_width=operand_width, signed=signed, **geometry)
    rows = geometry.get("rows") or np.asarray(jobs[0][0]).shape[0]
    return timings[-1].capture + rows + 1


@dataclass(frozen=True)
class JobTiming:
    """One job of a stream at full rate (source always valid from cycle 0, sink always ready).

    ``capture``: the cycle whose edge captures the job's results (its first
    result beat is valid in the next cycle); ``last_accept``: the cycle its last
    operand beat moves; ``busy``: the fewest cycles the job can take from the
    previous job's capture (or, for the first job, from its first operand
    beat) under any flow -- lockstep: the sum of its beats' cycles; decoupled:
    see :func:`capture_cycles`; ``last_beat``: the most cycles any row spends on
    the job's last beat.
    """

    capture: int
    last_accept: int
    busy: int
    last_beat: int


def row_beat_cycles(a, b, *, mac: str, operand_width: int, signed: bool) -> np.ndarray:
    """Cycles each row spends on each beat when rows are decoupled: ``max(1, d(A[i, k]))``, shape ``(rows, K)``."""
    a = np.asarray(a, dtype=np.int64)
    beat_cycles(a, b, mac=mac, operand_width=operand_width, signed=signed)  # the shape checks
    return np.maximum(1, nonzero_digits(a, operand_width=operand_width, signed=signed))


def capture_cycles(jobs, *, arch: str, mac: str, operand_width: int, signed: bool, row_queue: int = 0,
                   **geometry) -> list[JobTiming]:
    """The :class:`JobTiming` of every job of ``jobs`` (pairs ``(A, B)``) streamed back to back at full rate.

    ``row_queue`` 0 (lockstep): job ``n``'s capture is the previous one's plus
    :func:`job_cycles` (the first job: its busy cycles). ``row_queue`` ``q >= 1``
    (decoupled rows; cycle 0 is the first beat's transfer), beat by beat over
    the whole stream:

    * beat ``k`` moves in cycle ``t_k = max(t_{k-1} + 1, max_i load_{i, k-q})``
      (``t_0 = 0``): a queue slot is free once every row has loaded the beat
      that held it, and ``ready`` comes from registered counts, so the slot of
      a beat loaded at the end of cycle ``x - 1`` takes a new beat in cycle ``x``;
    * row ``i`` starts beat ``k`` (issues its first digit) in cycle
      ``start_{i, k} = max(t_k + 2, end_{i, k-1} + 1)``: the slot written at
      the end of ``t_k`` is loaded at the end of the next cycle at the earliest,
      and a row loads when it ends its previous beat; ``load_{i, k} = start_{i, k}``
      (the end of the cycle before);
    * a beat that is not a job's last ends at ``start + c_{i, k} - 1``,
      ``c_{i, k} = max(1, d(A[i, k]))``;
    * row ``i`` ends a job's last beat ``L`` by capturing its results into its own
      result registers, in ``end_{i, L} = max(start_{i, L} + c_{i, L} - 1, T_prev + rows + 1)``:
      once it has issued its last digit and the previous job's ``rows`` result
      beats have left the bank (the last one in ``T_prev + rows``);
    * the job's capture cycle ``T = max_i end_{i, L}``: its first result beat is
      valid in ``T + 1``.

    ``busy`` (the fewest cycles a job can take under any flow): for the first
    job ``1 +`` its busiest row's cycles; for the others ``rows + 1`` (the bank)
    or, if more, the busiest row's cycles on all but the job's first ``q``
    beats (a row can have done no more than those before the previous capture).
    """
    _check(arch, mac)
    jobs = [(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)) for a, b in jobs]
    if not jobs:
        return []
    rows = geometry.get("rows") or jobs[0][0].shape[0]
    common = {"mac": mac, "operand_width": operand_width, "signed": signed}
    if not row_queue:
        timings, capture = [], None
        for a, b in jobs:
            beats = beat_cycles(a, b, **common)
            busy = int(beats.sum())
            if capture is None:
                capture = busy
            else:
                capture += max(busy, rows - 1 + int(beats[-1]))
            # The last beat moves when the beats before it are done: its cycles end the job.
            timings.append(JobTiming(capture, capture - int(beats[-1]), busy, int(beats[-1])))
        return timings
    if mac == "laconic":
        raise ValueError("row_queue: laconic has no decoupled rows (its B terms are walked once for all rows)")
    per_row = [row_beat_cycles(a, b, **common) for a, b in jobs]
    loads = np.zeros((rows, sum(c.shape[1] for c in per_row)), dtype=np.int64)
    end = np.full(rows, -1, dtype=np.int64)  # per row, the cycle its previous beat ended
    accept, capture, k, timings = -1, None, 0, []
    for cycles in per_row:
        for step in range(cycles.shape[1]):
            accept = accept + 1 if k < row_queue else max(accept + 1, int(loads[:, k - row_queue].max()))
            start = np.maximum(accept + 2, end + 1)
            loads[:, k] = start
            end = start + cycles[:, step] - 1
            k += 1
        if capture is not None:  # a row captures once the previous job's rows left the bank
            end = np.maximum(end, capture + rows + 1)
        previous, capture = capture, int(end.max())
        tail = int(cycles[:, row_queue:].sum(axis=1).max()) if cycles.shape[1] > row_queue else 0
        busy = 1 + int(cycles.sum(axis=1).max()) if previous is None else max(rows + 1, tail)
        timings.append(JobTiming(capture, accept, busy, int(cycles[:, -1].max())))
    return timings


def for_config(cfg):
    """``job_cycles`` bound to a validated lockstep ``TpeConfig`` (``back_to_back`` still a keyword).

    A job of decoupled rows (``row_queue``) has no cycles of its own (they depend on the jobs around
    it): such a config is refused; use :func:`capture_cycles` on the stream.
    """
    if getattr(cfg, "row_queue", 0):
        raise ValueError(f"{cfg.name} has decoupled rows (row_queue: {cfg.row_queue}): a job's cycles depend on "
                         "the stream; use capture_cycles")

    def cycles(a, b, *, back_to_back: bool = True):
        # The data-dependent options take one format for A and B (the config refuses two).
        return job_cycles(a, b, arch=cfg.arch, mac=cfg.mac, operand_width=cfg.a_format.width,
                          signed=cfg.a_format.signed, back_to_back=back_to_back, rows=cfg.rows)
    return cycles
