"""``kind: tpe`` -- tensor processing engines computing ``C = A @ B``."""

from typing import Literal

from amaranth.hdl import signed, unsigned
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hw.arith import accumulator_width

from ..config.base import KindConfig, StrictModel

MAX_ACC_WIDTH = 64

#: The keys each architecture takes besides kind, name, arch, operand and acc_width.
ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "systolic_os": ("rows", "cols", "k_max", "result_buffers"),
    "systolic_ws": ("rows", "cols"),
    "cube": ("rows", "cols", "depth", "k_max"),
    "adder_tree": ("cols", "k_tile", "k_max"),
    "matrix2d": ("rows", "cols", "k_max"),
}
#: The ``mac`` options each architecture implements (``hw/tpe/mac.py``); the first is the default.
MAC_BY_ARCH: dict[str, tuple[str, ...]] = {
    "systolic_os": ("baseline", "opt1"),
    "systolic_ws": ("baseline", "opt1"),
    "cube": ("baseline", "opt1", "opt2"),
    "adder_tree": ("baseline", "opt2"),
    "matrix2d": ("baseline", "opt2", "opt3", "opt4c", "laconic"),
}
#: ``mac`` options named by the bit-weight MAC issue that no architecture implements yet.
MAC_PLANNED: tuple[str, ...] = ()
#: Keys an architecture takes but need not be given (they have a default).
OPTIONAL_KEYS = {"result_buffers"}
COMMON_KEYS = ("kind", "name", "arch", "operand", "acc_width", "mac")
ARCH_SPECIFIC = ("rows", "depth", "k_tile", "result_buffers", "k_max")


class OperandConfig(StrictModel):
    """Number format of every ``A`` and ``B`` element."""

    width: int = Field(ge=4, le=16, description="Bits per operand.")
    signed: bool = Field(default=True, description="Two's complement when true, unsigned when false.")


def _accepted_keys(arch: str) -> str:
    keys = [key for key in COMMON_KEYS[:3]] + list(ARCH_KEYS[arch]) + ["operand", "acc_width", "mac"]
    return ", ".join(keys)


class TpeConfig(KindConfig):
    """A tensor processing engine computing ``C = A @ B`` on an array of multipliers.

    ``arch`` chooses the architecture; each takes its own keys (below), and a key
    that does not apply to the chosen ``arch`` is an error. ``systolic_os``,
    ``cube`` and ``matrix2d`` take ``rows`` and ``cols`` and any ``K <= k_max``
    per job; ``adder_tree`` computes one row of ``C`` (``cols`` dot-product units
    of width ``k_tile``); ``systolic_ws`` keeps a ``rows x cols`` tile of ``B``, so
    ``K <= rows``, and streams any number of ``A`` rows per job.
    """

    summary = "tensor processing engine: C = A @ B (systolic OS/WS, cube, adder tree, 2D matrix)"

    kind: Literal["tpe"] = Field(description="Selects this config model.")
    arch: Literal["systolic_os", "systolic_ws", "cube", "adder_tree", "matrix2d"] = Field(
        description="Architecture. systolic_os: output-stationary systolic array; systolic_ws: "
                    "weight-stationary systolic array; cube: rows x cols x depth multipliers with an "
                    "adder tree per output; adder_tree: cols dot-product units of k_tile multipliers; "
                    "matrix2d: output-stationary grid with broadcast operands.")
    rows: int | None = Field(
        default=None, ge=1, le=64, validate_default=True, json_schema_extra={"per_arch": True},
        description="Rows of A and C (PE rows); for systolic_ws the largest K. "
                    "Required except for adder_tree, which has none.")
    cols: int = Field(ge=1, le=64, description="Columns of B and C (PE columns, or dot-product units).")
    depth: int | None = Field(
        default=None, ge=1, le=64, validate_default=True, json_schema_extra={"per_arch": True},
        description="cube only, required: reduction steps per beat (multipliers per output).")
    k_tile: int | None = Field(
        default=None, ge=1, le=256, validate_default=True, json_schema_extra={"per_arch": True},
        description="adder_tree only, required: multipliers per dot-product unit (reduction steps per beat).")
    result_buffers: Literal[1, 2] | None = Field(
        default=None, validate_default=True, json_schema_extra={"per_arch": True},
        description="systolic_os only. Default: 2. 1: results drain by shifting, a job occupies "
                    "max(K, 2*rows+cols+1) cycles back to back; 2: results stream out, max(K, rows).")
    operand: OperandConfig = Field(description="Format of the A and B elements.")
    k_max: int | None = Field(
        default=None, ge=1, le=65536, validate_default=True, json_schema_extra={"per_arch": True},
        description="Longest reduction (K) a job may have; sizes the accumulators. "
                    "Required except for systolic_ws, whose K is at most rows.")
    mac: str = Field(
        default="baseline",
        json_schema_extra={"allowed": "one of 'baseline', 'opt1' (opt1 with systolic_os, systolic_ws, cube), "
                                      "'opt2' (opt2 with cube, adder_tree, matrix2d), 'opt3', 'opt4c', "
                                      "'laconic' (with matrix2d)"},
        description="Multiply-accumulate circuit. baseline: a multiplier and a carry-propagate accumulator "
                    "per MAC; opt1 (systolic_os, systolic_ws, cube): radix-4 Booth partial products and "
                    "the running sum and carry in one carry-save compressor tree, resolved by one adder "
                    "where results leave the array; opt2 (cube, adder_tree, matrix2d): A recoded into "
                    "radix-4 digits at the array edge, partial products of equal bit weight summed across "
                    "K by narrow adders, one shift-and-add per dot product; opt3 (matrix2d): every PE "
                    "issues the nonzero EN-T radix-4 digits of its A operand one per cycle into a carry-save "
                    "accumulator, so cycles follow the data; opt4c (matrix2d): opt3 with one digit encoder per "
                    "PE row; laconic (matrix2d): both operands as effectual terms, one term pair per cycle.")
    acc_width: int | None = Field(
        default=None, ge=1, le=MAX_ACC_WIDTH,
        description="Accumulator bits. Default: the minimum for which no K <= k_max overflows. "
                    "A narrower value is an error; a wider one is kept.")

    @field_validator(*ARCH_SPECIFIC)
    @classmethod
    def _applies_to_arch(cls, value, info: ValidationInfo):
        arch = info.data.get("arch")
        if arch is None:  # arch itself was rejected; that error is reported
            return value
        takes = info.field_name in ARCH_KEYS[arch]
        if value is not None and not takes:
            raise ValueError(f"no '{info.field_name}' with arch '{arch}', which takes the keys "
                             f"{_accepted_keys(arch)}")
        if value is None and takes and info.field_name not in OPTIONAL_KEYS:
            raise PydanticCustomError(
                "missing_for_arch", "arch '{arch}' needs this key",
                {"arch": arch, "error": f"arch '{arch}' needs it"})
        return value

    @field_validator("mac")
    @classmethod
    def _mac_for_arch(cls, value: str, info: ValidationInfo) -> str:
        arch = info.data.get("arch")
        if arch is None or value in MAC_BY_ARCH[arch]:
            return value
        options = MAC_BY_ARCH[arch]
        valid = f"'{options[0]}', the only option" if len(options) == 1 else \
            "one of " + ", ".join(repr(option) for option in options)
        if value in MAC_PLANNED:
            note = f" ('{value}' is planned, not implemented yet)"
        elif any(value in others for others in MAC_BY_ARCH.values()):
            users = ", ".join(name for name, others in MAC_BY_ARCH.items() if value in others)
            note = f" ('{value}' applies to {users} only)"
        else:
            note = ""
        raise ValueError(f"{valid} for arch '{arch}'{note}")

    @field_validator("acc_width")
    @classmethod
    def _wide_enough(cls, value: int | None, info: ValidationInfo) -> int | None:
        operand, arch = info.data.get("operand"), info.data.get("arch")
        if value is None or operand is None or arch is None:
            return value
        k_max = info.data.get("rows") if arch == "systolic_ws" else info.data.get("k_max")
        if k_max is None:
            return value
        minimum = accumulator_width(operand.width, operand.signed, k_max)
        if value < minimum:
            kind = "signed" if operand.signed else "unsigned"
            bound = f"rows={k_max}" if arch == "systolic_ws" else f"k_max={k_max}"
            raise ValueError(
                f"an integer from {minimum} to {MAX_ACC_WIDTH} ({minimum} is the minimum for "
                f"{bound} with {operand.width}-bit {kind} operands)")
        return value

    @model_validator(mode="after")
    def _derive_defaults(self):
        if self.arch == "systolic_os" and self.result_buffers is None:
            self.result_buffers = 2
        if self.acc_width is None:
            self.acc_width = accumulator_width(self.operand.width, self.operand.signed, self.k_bound)
        return self

    @property
    def k_bound(self) -> int:
        """The longest reduction a job may have: ``k_max``, or ``rows`` for ``systolic_ws``."""
        return self.rows if self.arch == "systolic_ws" else self.k_max

    @property
    def c_rows(self) -> int:
        """Rows of ``C`` per job for fixed-shape architectures (``adder_tree``: 1)."""
        return 1 if self.arch == "adder_tree" else self.rows

    def normalized(self) -> dict:
        """The config with defaults filled in; keys the architecture does not take are left out."""
        data = super().normalized()
        for key in ARCH_SPECIFIC:
            if key not in ARCH_KEYS[self.arch]:
                data.pop(key)
        if self.mac == "baseline":  # configs written before mac existed keep their hash
            data.pop("mac")
        return data

    def describe(self) -> str:
        kind = "signed" if self.operand.signed else "unsigned"
        shape = {
            "adder_tree": f"{self.cols} units x {self.k_tile}",
            "cube": f"{self.rows}x{self.cols}x{self.depth}",
        }.get(self.arch, f"{self.rows}x{self.cols}")
        extra = f", {self.result_buffers} result buffer(s)" if self.arch == "systolic_os" else ""
        if self.mac != "baseline":
            extra += f", mac {self.mac}"
        bound = f"K <= {self.rows}" if self.arch == "systolic_ws" else f"k_max {self.k_max}"
        return (f"{self.arch} {shape}, {self.operand.width}-bit {kind} operands, {bound}, "
                f"{self.acc_width}-bit accumulators{extra}")


def build(cfg: TpeConfig, operand_shape=None):
    """The ``hw`` component for ``cfg``; ``operand_shape`` overrides ``cfg.operand`` (a system that
    embeds the engine, such as the MoE-ViT accelerator, with operands of its own formats)."""
    from hw import tpe as engines

    if operand_shape is not None:
        shape = operand_shape
    else:
        shape = signed(cfg.operand.width) if cfg.operand.signed else unsigned(cfg.operand.width)
    if cfg.arch == "systolic_os":
        return engines.SystolicOS(cfg.rows, cfg.cols, shape, cfg.acc_width, result_buffers=cfg.result_buffers,
                                  mac=cfg.mac)
    if cfg.arch == "systolic_ws":
        return engines.SystolicWS(cfg.rows, cfg.cols, shape, cfg.acc_width, mac=cfg.mac)
    if cfg.arch == "matrix2d" and cfg.mac in engines.DIGIT_SERIAL:
        return engines.DigitSerialGrid(cfg.rows, cfg.cols, shape, cfg.acc_width, mac=cfg.mac)
    if cfg.arch == "matrix2d":
        return engines.BroadcastGrid(cfg.rows, cfg.cols, 1, shape, cfg.acc_width, tree_register=False,
                                     mac=cfg.mac)
    if cfg.arch == "cube":
        # opt1 folds the adder tree and the accumulator into one compressor: nothing to register between.
        return engines.BroadcastGrid(cfg.rows, cfg.cols, cfg.depth, shape, cfg.acc_width,
                                     tree_register=cfg.mac != "opt1", mac=cfg.mac)
    if cfg.arch == "adder_tree":
        return engines.BroadcastGrid(1, cfg.cols, cfg.k_tile, shape, cfg.acc_width, tree_register=True,
                                     mac=cfg.mac)
    raise AssertionError(f"arch {cfg.arch!r} passed validation but has no generator")


def parameters(cfg: TpeConfig, component) -> dict:
    """Derived facts a testbench or user needs beyond the config (all in the manifest).

    ``job`` says how a job is cut into beats (``format``: ``k_steps`` or
    ``rows_with_weights``, see ``hw/tpe/interface.py``); ``latency`` and
    ``job_interval`` are in cycles, ``mac_units`` counts multipliers, ``mac``
    is the multiply-accumulate circuit.
    """
    return {
        "mac": cfg.mac,
        "acc_width": cfg.acc_width,
        "k_max": cfg.k_bound,
        "latency": component.latency,
        "job_interval": component.job_interval,
        "mac_units": component.mac_units,
        "job": component.job,
        "flow_control": component.flow_control,
    } | _timing(component)


def _timing(component) -> dict:
    """For engines whose cycles follow the data: ``timing`` and the model that predicts each job's cycles."""
    if getattr(component, "timing", "fixed") == "fixed":
        return {}
    return {"timing": component.timing, "cycle_model": "sim.golden.tpe_cycles.job_cycles"}
