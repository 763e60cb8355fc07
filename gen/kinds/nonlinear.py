"""Config fields every nonlinear kind shares, and the parameters of element-wise stream units.

``kind: exp | reciprocal | rsqrt | gelu`` are element-wise (one
:class:`hw.nonlinear.elementwise.Elementwise` around a block);
``softmax`` and ``layernorm`` reduce over rows. All take ``input``,
``output``, ``lanes``, ``rounding`` and ``overflow`` as defined here.
"""

from typing import ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..config.base import KindConfig
from ..config.fixed import FixedFormatConfig, OverflowName, RoundingName

MAX_LANES = 64


class NonlinearConfig(KindConfig):
    """Fields of every nonlinear unit: formats, lanes, output rounding and overflow."""

    input: FixedFormatConfig = Field(description="Format of the input elements.")
    output: FixedFormatConfig = Field(description="Format of the output elements.")
    lanes: int = Field(default=1, ge=1, le=MAX_LANES, description="Elements per stream beat (and per cycle).")
    rounding: RoundingName = Field(
        default="round_half_even",
        description="How the output drops fraction bits (internal steps always round half to even).")
    overflow: OverflowName = Field(default="saturate", description="What an output that does not fit becomes.")

    def formats(self) -> str:
        return f"{self.input.format.describe()} -> {self.output.format.describe()}"


def elementwise_parameters(cfg: NonlinearConfig, component) -> dict:
    """Manifest parameters of an element-wise unit (:class:`hw.nonlinear.elementwise.Elementwise`).

    ``latency`` (cycles from an input beat to its output beat at full rate),
    ``latency_rule`` ``"beat"`` (see ``sim/tb/nonlinear.py``), ``lanes``,
    ``elements_per_cycle`` and ``flow_control``.
    """
    return {
        "latency": component.latency,
        "latency_rule": "beat",
        "lanes": cfg.lanes,
        "elements_per_cycle": cfg.lanes,
        "flow_control": component.flow_control,
    }


class BlockConfig(NonlinearConfig):
    """An element-wise unit: ``lanes`` copies of one ``hw/nonlinear`` block in an ``Elementwise`` stream unit.

    A subclass sets ``block`` (the block class), implements :meth:`spec_from`
    and defines ``frac_bits`` as its last field: the block spec is built (and
    its checks run) when ``frac_bits`` is validated, and every key in
    ``DERIVED`` is then filled in from the spec's defaults.
    """

    block: ClassVar[type]
    #: Optional keys whose defaults the block spec derives (copied into the normalised config).
    DERIVED: ClassVar[tuple[str, ...]] = ("frac_bits",)

    @classmethod
    def spec_from(cls, fields: dict, frac_bits):
        """The block spec of the validated ``fields`` (a dict of this model's fields) and ``frac_bits``."""
        raise NotImplementedError

    @field_validator("frac_bits", check_fields=False)
    @classmethod
    def _spec_is_valid(cls, value, info: ValidationInfo):
        if set(cls.model_fields) - {"frac_bits"} - set(info.data):
            return value  # an earlier field was rejected; that error is reported
        try:
            cls.spec_from(info.data, value)
        except ValueError as error:
            derived = " (frac_bits left at its default)" if value is None else ""
            raise ValueError(f"{error}{derived}") from None
        return value

    @model_validator(mode="after")
    def _derive_defaults(self):
        derived = self.spec()
        for key in self.DERIVED:
            setattr(self, key, getattr(derived, key))
        return self

    def spec(self):
        """The block spec of this config."""
        return self.spec_from(dict(self), self.frac_bits)


def build_block_unit(cfg: BlockConfig):
    """The ``Elementwise`` stream unit of ``cfg``: ``lanes`` blocks of ``cfg.spec()``."""
    from hw.nonlinear.elementwise import Elementwise

    spec = cfg.spec()
    return Elementwise(lambda: cfg.block(spec), spec.input, spec.output, cfg.lanes)
