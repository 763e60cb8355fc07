"""``kind: tpe`` -- tensor processing engines computing ``C = A @ B``."""

from typing import Literal

from amaranth.hdl import signed, unsigned
from pydantic import Field, ValidationInfo, field_validator, model_validator

from hw.arith import accumulator_width
from hw.tpe import SystolicOS

from ..config.base import KindConfig, StrictModel

MAX_ACC_WIDTH = 64


class OperandConfig(StrictModel):
    """Number format of every ``A`` and ``B`` element."""

    width: int = Field(ge=4, le=16, description="Bits per operand.")
    signed: bool = Field(default=True, description="Two's complement when true, unsigned when false.")


class TpeConfig(KindConfig):
    """A tensor processing engine: a ``rows x cols`` array computing ``C = A @ B`` for any ``K <= k_max``."""

    summary = "tensor processing engine: C = A @ B on a rows x cols array"

    kind: Literal["tpe"] = Field(description="Selects this config model.")
    arch: Literal["systolic_os"] = Field(
        description="Array architecture. systolic_os: output-stationary systolic array.")
    rows: int = Field(ge=1, le=64, description="Rows of A and C (PE rows).")
    cols: int = Field(ge=1, le=64, description="Columns of B and C (PE columns).")
    operand: OperandConfig = Field(description="Format of the A and B elements.")
    k_max: int = Field(ge=1, le=65536, description="Longest reduction (K) a job may have; sizes the accumulators.")
    acc_width: int | None = Field(
        default=None, ge=1, le=MAX_ACC_WIDTH,
        description="Accumulator bits. Default: the minimum for which no K <= k_max overflows. "
                    "A narrower value is an error; a wider one is kept.")

    @field_validator("acc_width")
    @classmethod
    def _wide_enough(cls, value: int | None, info: ValidationInfo) -> int | None:
        operand, k_max = info.data.get("operand"), info.data.get("k_max")
        if value is None or operand is None or k_max is None:
            return value
        minimum = accumulator_width(operand.width, operand.signed, k_max)
        if value < minimum:
            kind = "signed" if operand.signed else "unsigned"
            raise ValueError(
                f"an integer from {minimum} to {MAX_ACC_WIDTH} ({minimum} is the minimum for "
                f"k_max={k_max} with {operand.width}-bit {kind} operands)")
        return value

    def describe(self) -> str:
        kind = "signed" if self.operand.signed else "unsigned"
        return (f"{self.arch} {self.rows}x{self.cols}, {self.operand.width}-bit {kind} operands, "
                f"k_max {self.k_max}, {self.acc_width}-bit accumulators")

    @model_validator(mode="after")
    def _derive_acc_width(self):
        if self.acc_width is None:
            self.acc_width = accumulator_width(self.operand.width, self.operand.signed, self.k_max)
        return self


def build(cfg: TpeConfig):
    """The ``hw`` component for ``cfg``."""
    shape = signed(cfg.operand.width) if cfg.operand.signed else unsigned(cfg.operand.width)
    if cfg.arch == "systolic_os":
        return SystolicOS(cfg.rows, cfg.cols, shape, cfg.acc_width)
    raise AssertionError(f"arch {cfg.arch!r} passed validation but has no generator")


def parameters(cfg: TpeConfig, component) -> dict:
    """Derived facts a testbench or user needs beyond the config (all in the manifest)."""
    return {
        "acc_width": cfg.acc_width,
        "latency": component.latency,
        "job_interval": component.job_interval,
    }
