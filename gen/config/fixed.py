"""Config fields for fixed-point formats, shared by every kind with fixed-point ports.

The format itself (and its quantisation rules) is :class:`hw.arith.fixed.FixedFormat`;
this is only how a YAML config names one: ``{width: 16, frac: 12, signed: true}``.
"""

from typing import Literal

from pydantic import Field, model_validator

from hw.arith.fixed import MAX_INTERMEDIATE_BITS, FixedFormat, Overflow, Rounding

from .base import StrictModel

#: Widest format a config may ask for (intermediates of products and squares must stay in int64).
MAX_FORMAT_WIDTH = 32

RoundingName = Literal["truncate", "round_half_even", "round_half_away"]
OverflowName = Literal["wrap", "saturate"]

assert set(RoundingName.__args__) == {r.value for r in Rounding}
assert set(OverflowName.__args__) == {o.value for o in Overflow}
assert MAX_FORMAT_WIDTH * 2 <= MAX_INTERMEDIATE_BITS + 2


class FixedFormatConfig(StrictModel):
    """A fixed-point format: ``width`` bits of which ``frac`` are fraction bits."""

    width: int = Field(ge=2, le=MAX_FORMAT_WIDTH, description="Total bits of a code.")
    frac: int = Field(ge=-MAX_FORMAT_WIDTH, le=2 * MAX_FORMAT_WIDTH,
                      description="Fraction bits: a code c stands for c * 2**-frac.")
    signed: bool = Field(description="Two's complement when true, unsigned when false.")

    @model_validator(mode="after")
    def _valid_format(self):
        self.format  # noqa: B018 -- raises ValueError with the reason
        return self

    @property
    def format(self) -> FixedFormat:
        return FixedFormat(self.width, self.frac, self.signed)
