"""``kind: exp`` -- ``exp(x)`` for ``x <= 0``, ``lanes`` elements per cycle."""

from typing import Literal

from pydantic import Field, field_validator

from hw.arith.fixed import Overflow, Rounding
from hw.nonlinear.exp import Exp, ExpSpec

from .nonlinear import BlockConfig, build_block_unit, elementwise_parameters


class ExpConfig(BlockConfig):
    """``exp(x)`` for ``x <= 0`` (softmax's exponential) as a stream unit.

    ``t = -x * log2(e)`` is split into an integer shift ``q`` and a fraction
    ``f``; ``2**-f`` comes from a table of ``2**table_bits + 1`` entries
    (``method: table``: the nearest entry; ``linear``: interpolated), then is
    shifted right by ``q``. Inputs above 0 give 1. See docs/nonlinear.md.
    """

    summary = "exp(x) for x <= 0: base-2 range reduction, 2**-f table (nearest or interpolated), shift"
    block = Exp
    DERIVED = ("frac_bits", "entry_frac")

    kind: Literal["exp"] = Field(description="Selects this config model.")
    method: Literal["table", "linear"] = Field(
        default="linear",
        description="How 2**-f is read: table (nearest entry) or linear (interpolation between entries).")
    table_bits: int = Field(default=6, ge=1, le=12, description="The table has 2**table_bits + 1 entries.")
    entry_frac: int | None = Field(
        default=None, ge=1, le=40,
        description="Fraction bits of the table entries and of 2**-f. Default: output.frac + 2.")
    frac_bits: int | None = Field(
        default=None, ge=1, le=48, validate_default=True,
        description="Fraction bits of t = -x * log2(e). Default: output.frac + 2, at least table_bits "
                    "(plus 2 with method linear, which needs more than table_bits).")

    @field_validator("input")
    @classmethod
    def _signed_input(cls, value):
        if not value.signed:
            raise ValueError("a signed format (exp takes x <= 0)")
        return value

    @classmethod
    def spec_from(cls, fields: dict, frac_bits) -> ExpSpec:
        return ExpSpec(input=fields["input"].format, output=fields["output"].format,
                       table_bits=fields["table_bits"], interpolate=fields["method"] == "linear",
                       frac_bits=frac_bits, entry_frac=fields["entry_frac"],
                       rounding=Rounding(fields["rounding"]), overflow=Overflow(fields["overflow"]))

    def describe(self) -> str:
        return (f"exp, {self.formats()}, {self.lanes} lane(s), {self.method} over a "
                f"{2 ** self.table_bits + 1}-entry table")


def spec(cfg: ExpConfig) -> ExpSpec:
    """The block spec of ``cfg``."""
    return cfg.spec()


build = build_block_unit


def parameters(cfg: ExpConfig, component) -> dict:
    """Element-wise stream parameters plus the block's derived constants."""
    block = cfg.spec()
    return {**elementwise_parameters(cfg, component),
            "q_max": block.q_max, "log2e_frac": block.log2e_frac, "table_entries": len(block.table())}
