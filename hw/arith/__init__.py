"""Arithmetic building blocks and the width rules every datapath shares."""

from .widths import accumulator_width, operand_range, product_range, signed_width_for

__all__ = ["accumulator_width", "operand_range", "product_range", "signed_width_for"]
