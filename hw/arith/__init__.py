"""Arithmetic building blocks and the width rules every datapath shares."""

from .fixed import FixedFormat, Overflow, Rounding, requantize, requantize_hw
from .widths import accumulator_signed, accumulator_width, operand_range, product_range, signed_width_for

__all__ = ["FixedFormat", "Overflow", "Rounding", "requantize", "requantize_hw",
           "accumulator_signed", "accumulator_width", "operand_range", "product_range", "signed_width_for"]
