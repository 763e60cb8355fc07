"""Tensor processing engines: arrays that compute ``C = A @ B`` behind one stream interface."""

from .interface import engine_signature, operand_beat_layout, result_beat_layout
from .pe import OutputStationaryPE
from .skew import SkewBuffer
from .systolic_os import SystolicOS

__all__ = [
    "OutputStationaryPE",
    "SkewBuffer",
    "SystolicOS",
    "engine_signature",
    "operand_beat_layout",
    "result_beat_layout",
]
