"""``kind: reciprocal`` -- ``1 / x`` for unsigned ``x > 0``, ``lanes`` elements per cycle.

:class:`NewtonConfig` holds the keys ``kind: rsqrt`` shares (``gen/kinds/rsqrt.py``).
"""

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from hw.arith.fixed import Overflow, Rounding
from hw.nonlinear.reciprocal import Reciprocal, ReciprocalSpec

from .nonlinear import BlockConfig, build_block_unit, elementwise_parameters


class NewtonConfig(BlockConfig):
    """Keys of the normalise / table seed / Newton step units (reciprocal, rsqrt)."""

    #: The block's spec class (``ReciprocalSpec``, ``RsqrtSpec``).
    block_spec: ClassVar[type]

    table_bits: int = Field(default=6, ge=1, le=12, description="Mantissa bits that index the seed table.")
    newton_steps: int = Field(default=1, ge=0, le=3,
                              description="Newton steps after the seed (each about doubles the correct bits).")
    frac_bits: int | None = Field(
        default=None, ge=1, le=28, validate_default=True,
        description="Fraction bits of the mantissa, the seed and the Newton products. "
                    "Default: output.width + 2 (at least table_bits + 2, at most 28).")

    @field_validator("input")
    @classmethod
    def _unsigned_input(cls, value):
        if value.signed:
            raise ValueError(f"an unsigned format ({cls.model_fields['kind'].annotation.__args__[0]} takes x > 0)")
        return value

    @classmethod
    def spec_from(cls, fields: dict, frac_bits):
        return cls.block_spec(input=fields["input"].format, output=fields["output"].format,
                              table_bits=fields["table_bits"], newton_steps=fields["newton_steps"],
                              frac_bits=frac_bits, rounding=Rounding(fields["rounding"]),
                              overflow=Overflow(fields["overflow"]))

    def describe(self) -> str:
        return (f"{self.kind}, {self.formats()}, {self.lanes} lane(s), {self.table_bits}-bit seed table, "
                f"{self.newton_steps} Newton step(s)")


class ReciprocalConfig(NewtonConfig):
    """``1 / x`` of an unsigned input as a stream unit.

    The input is normalised by a leading-zero count, a table of
    ``2**table_bits`` seeds approximates the mantissa's reciprocal,
    ``newton_steps`` Newton steps refine it and a shift undoes the
    normalisation. ``x = 0`` gives the largest output code. See docs/nonlinear.md.
    """

    summary = "1/x: normalise, table seed, Newton steps, denormalise"
    block = Reciprocal
    block_spec = ReciprocalSpec

    kind: Literal["reciprocal"] = Field(description="Selects this config model.")


def spec(cfg: NewtonConfig):
    """The block spec of ``cfg``."""
    return cfg.spec()


build = build_block_unit


def parameters(cfg: NewtonConfig, component) -> dict:
    """Element-wise stream parameters plus the block's derived constants."""
    block = cfg.spec()
    return {**elementwise_parameters(cfg, component), "frac_bits": block.frac_bits,
            "table_entries": len(block.table())}
