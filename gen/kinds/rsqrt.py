"""``kind: rsqrt`` -- ``1 / sqrt(x)`` for unsigned ``x > 0``, ``lanes`` elements per cycle."""

from typing import Literal

from pydantic import Field

from hw.nonlinear.rsqrt import Rsqrt, RsqrtSpec

from .reciprocal import NewtonConfig, build_block_unit, parameters, spec

__all__ = ["RsqrtConfig", "build", "parameters", "spec"]


class RsqrtConfig(NewtonConfig):
    """``1 / sqrt(x)`` of an unsigned input as a stream unit.

    The input is normalised by a leading-zero count, a table of
    ``2 * 2**table_bits`` seeds (both exponent parities) approximates the
    mantissa's reciprocal square root, ``newton_steps`` Newton steps refine it
    and a shift undoes the normalisation. ``x = 0`` gives the largest output
    code. See docs/nonlinear.md.
    """

    summary = "1/sqrt(x): normalise, table seed, Newton steps, denormalise"
    block = Rsqrt
    block_spec = RsqrtSpec

    kind: Literal["rsqrt"] = Field(description="Selects this config model.")


build = build_block_unit
