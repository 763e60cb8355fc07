"""Tensor processing engines: arrays that compute ``C = A @ B`` behind one stream interface."""

from .interface import (
    StepTag,
    engine_signature,
    operand_beat_layout,
    result_beat_layout,
    weight_row_beat_layout,
)
from .broadcast import BroadcastGrid, BroadcastPE
from .digit_serial import DIGIT_SERIAL, DigitSerialGrid
from .pe import OutputStationaryPE
from .rowbuffer import RowBuffer
from .skew import DelayLine, SkewBuffer
from .systolic_os import SystolicOS
from .systolic_ws import SystolicWS, WeightStationaryPE

__all__ = [
    "BroadcastGrid",
    "BroadcastPE",
    "DIGIT_SERIAL",
    "DigitSerialGrid",
    "DelayLine",
    "OutputStationaryPE",
    "RowBuffer",
    "SkewBuffer",
    "StepTag",
    "SystolicOS",
    "SystolicWS",
    "WeightStationaryPE",
    "engine_signature",
    "operand_beat_layout",
    "result_beat_layout",
    "weight_row_beat_layout",
]
