"""The data every part of a campaign shares: one fault, one outcome, one injection result.

These types are the contract between the sampler (``sim/fault/sampling.py``),
the injection engine (``sim/fault/engine.py``), the storage
(``sim/fault/store.py``) and the metrics (``sim/fault/metrics.py``). They are
plain frozen dataclasses so that they pickle across processes and serialise to
SQLite rows without a mapping layer.
"""

from dataclasses import dataclass
from enum import Enum


class FaultModel(str, Enum):
    """What a soft error does to the design's state."""

    SEU = "seu"          # one bit of one register inverted at the start of one cycle
    MBU = "mbu"          # ``k`` adjacent bits of one register inverted at once
    MEM_SEU = "mem_seu"  # one bit of one memory word inverted at the start of one cycle


class Outcome(str, Enum):
    """How one injection ended, compared with the fault-free run.

    * ``masked``: outputs (values and count) equal the fault-free reference, no alarm.
    * ``sdc``: silent data corruption, some output differs (a value, or a beat after
      the expected ones: ``InjectionResult.extra_beats``) and no alarm rose.
    * ``detected``: an alarm that only detects rose (outputs may differ).
    * ``corrected``: an alarm that corrects rose and the outputs equal the reference.
    * ``hang``: the workload did not complete within ``timeout_factor`` times the
      fault-free cycle count.
    """

    MASKED = "masked"
    SDC = "sdc"
    DETECTED = "detected"
    CORRECTED = "corrected"
    HANG = "hang"


@dataclass(frozen=True)
class Fault:
    """One injection: invert bits ``bit .. bit + width - 1`` of ``site`` at the start of ``cycle``.

    ``site`` is a manifest fault-site ``path`` (for example ``core.pe_1_2.acc``);
    ``word`` is the memory word for ``mem_seu`` and ``None`` for registers;
    ``width`` is 1 for ``seu``/``mem_seu`` and ``k`` for ``mbu`` (bits past the
    register's width are not flipped). ``cycle`` counts clock cycles from the
    first cycle after reset was released (cycle 0), as ``sim.tb.harness.CycleLoop``
    does. ``index`` is the fault's position in the campaign's sample (its
    identity for resuming).
    """

    index: int
    model: FaultModel
    site: str
    bit: int
    cycle: int
    word: int | None = None
    width: int = 1


@dataclass(frozen=True)
class InjectionResult:
    """What one injection did: its outcome and, for a wrong output, how wrong.

    ``differing`` counts output elements that differ from the reference
    (missing or extra elements count as differing); ``max_abs_diff`` is the
    largest absolute difference among elements present in both, 0 if none;
    ``cycles`` is how many cycles the run took, to its last output beat (the
    timeout for a hang); ``alarms`` names the alarm outputs that rose;
    ``extra_beats`` counts output beats after the expected ones (each makes the
    run an ``sdc``, unless an alarm rose: the fault-free run sends none).
    """

    fault: Fault
    outcome: Outcome
    differing: int = 0
    max_abs_diff: int = 0
    cycles: int = 0
    alarms: tuple[str, ...] = ()
    extra_beats: int = 0
