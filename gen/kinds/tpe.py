"""``kind: tpe`` -- tensor processing engines computing ``C = A @ B``."""

from typing import Literal

from amaranth.hdl import signed, unsigned
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hw.arith import accumulator_signed, accumulator_width
from hw.tpe.digit_serial import DECOUPLED as DECOUPLED_MACS
from hw.tpe.digit_serial import DIGIT_SERIAL as DIGIT_SERIAL_MACS
from hw.tpe.mac import SAME_FORMAT_MAX_WIDTH, format_limit

from ..config.base import KindConfig, StrictModel

MAX_ACC_WIDTH = 64
MIN_OPERAND_WIDTH, MAX_OPERAND_WIDTH = 4, 32

#: The keys each architecture takes besides kind, name, arch, operand and acc_width.
ARCH_KEYS: dict[str, tuple[str, ...]] = {
    "systolic_os": ("rows", "cols", "k_max", "result_buffers"),
    "systolic_ws": ("rows", "cols"),
    "cube": ("rows", "cols", "depth", "k_max", "result_rows", "fanout"),
    "adder_tree": ("cols", "k_tile", "k_max", "fanout"),
    "matrix2d": ("rows", "cols", "k_max", "fanout", "row_queue"),
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
OPTIONAL_KEYS = {"result_buffers", "result_rows", "fanout", "row_queue"}
COMMON_KEYS = ("kind", "name", "arch", "operand", "acc_width", "mac")
ARCH_SPECIFIC = ("rows", "depth", "k_tile", "result_buffers", "result_rows", "fanout", "row_queue", "k_max")
OPERAND_KEYS = ("operand", "operand_a", "operand_b")


class OperandConfig(StrictModel):
    """Number format of operand elements."""

    width: int = Field(ge=MIN_OPERAND_WIDTH, le=MAX_OPERAND_WIDTH, description="Bits per operand.")
    signed: bool = Field(default=True, description="Two's complement when true, unsigned when false.")

    def describe(self) -> str:
        return f"{self.width}-bit {'signed' if self.signed else 'unsigned'}"


def _accepted_keys(arch: str) -> str:
    keys = [key for key in COMMON_KEYS[:3]] + list(ARCH_KEYS[arch]) + ["operand", "acc_width", "mac"]
    return ", ".join(keys)


def _formats(data: dict) -> tuple[OperandConfig, OperandConfig] | None:
    """``(A's format, B's format)`` from validated fields, or None while they are missing or inconsistent."""
    operand, a, b = (data.get(key) for key in OPERAND_KEYS)
    if operand is not None and a is None and b is None:
        return operand, operand
    if operand is None and a is not None and b is not None:
        return a, b
    return None


def _describe_formats(a: OperandConfig, b: OperandConfig) -> str:
    return f"{a.describe()} operands" if a == b else f"{a.describe()} A and {b.describe()} B operands"


def _operand_keys_error(data: dict) -> str | None:
    """The one-line error about ``operand`` / ``operand_a`` / ``operand_b`` of ``data``, or None."""
    given = [key for key in OPERAND_KEYS if data.get(key) is not None]
    both = "give operand (one format for A and B) or both operand_a and operand_b"
    if "operand" in given and len(given) > 1:
        return f"{given[1]}: not allowed together with operand; allowed: {both}, not both"
    if not given:
        return "operand: missing required key; allowed: a mapping with keys width, signed (or both operand_a and " \
               "operand_b)"
    if "operand" not in given and len(given) == 1:
        missing = "operand_b" if given == ["operand_a"] else "operand_a"
        return (f"{missing}: missing required key (with {given[0]}); allowed: a mapping with keys width, signed "
                f"(or operand instead of operand_a and operand_b)")
    return None


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
    result_rows: int | None = Field(
        default=None, ge=1, le=64, validate_default=True, json_schema_extra={"per_arch": True},
        description="cube only. Default: 1. Rows of C per result beat, a divisor of rows: a job leaves in "
                    "rows / result_rows beats, and a job occupies max(its beats, rows / result_rows) cycles "
                    "back to back (an 8x8x8 cube with K = 16 jobs needs 4 to stay busy).")
    fanout: int | None = Field(
        default=None, ge=0, le=64, validate_default=True, json_schema_extra={"per_arch": True},
        description="cube, adder_tree and matrix2d (not with the digit-serial macs). Default: 0, every operand "
                    "goes from the input registers to all PEs of its row or column. n >= 1: one more register "
                    "stage (latency + 1) with a copy of each operand per group of n PEs, so no operand register "
                    "drives more than n PEs: on an FPGA the broadcast nets stay short (the copies are kept).")
    row_queue: int | None = Field(
        default=None, ge=0, le=64, validate_default=True, json_schema_extra={"per_arch": True},
        description="matrix2d with mac opt3 or opt4c only. Default: 0, the rows run in lockstep (a beat takes "
                    "as many cycles as its busiest row's digits). n >= 1: decoupled rows; beats wait in a queue "
                    "of n slots shared by the rows, and each row takes its next beat when its own digits are done, "
                    "so a beat costs the row's own digits; a row waits only while the result bank holds the previous job. "
                    "Latency 3; cycles per job from sim.golden.tpe_cycles.capture_cycles.")
    operand: OperandConfig | None = Field(
        default=None,
        json_schema_extra={"allowed": "a mapping with keys width, signed (or operand_a and operand_b instead)"},
        description="Format of the A and B elements (the shorthand for operand_a = operand_b). Give it, or both "
                    "operand_a and operand_b.")
    operand_a: OperandConfig | None = Field(
        default=None,
        json_schema_extra={"allowed": "a mapping with keys width, signed (with operand_b, instead of operand)"},
        description="Format of the A elements when it differs from B's (with operand_b, instead of operand). "
                    "A config whose operand_a equals operand_b is the config with that operand.")
    operand_b: OperandConfig | None = Field(
        default=None,
        json_schema_extra={"allowed": "a mapping with keys width, signed (with operand_a, instead of operand)"},
        description="Format of the B elements when it differs from A's (with operand_a, instead of operand). "
                    "Products, accumulators and C are signed when either operand is.")
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
                    "PE row; laconic (matrix2d): both operands as effectual terms, one term pair per cycle. "
                    "opt2, opt3, opt4c and laconic take one format for A and B (operand) of at most 16 bits; "
                    "baseline and opt1 take any operand_a and operand_b.")
    acc_width: int | None = Field(
        default=None, ge=1, le=MAX_ACC_WIDTH,
        description="Accumulator bits. Default: the minimum for which no K <= k_max products of A and B "
                    "overflow. A narrower value is an error; a wider one is kept.")

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
        formats = _formats(info.data)
        if formats is not None and not _takes(value, *formats):
            fitting = [repr(mac) for mac in MAC_BY_ARCH.get(arch, ("baseline",)) if _takes(mac, *formats)]
            raise ValueError(f"{' or '.join(fitting)} with {_describe_formats(*formats)}; "
                             f"mac '{value}' takes {format_limit(value)}")
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
        formats, arch = _formats(info.data), info.data.get("arch")
        if value is None or formats is None or arch is None:
            return value
        k_max = info.data.get("rows") if arch == "systolic_ws" else info.data.get("k_max")
        if k_max is None:
            return value
        minimum = _minimum_acc_width(*formats, k_max)
        if value < minimum:
            bound = f"rows={k_max}" if arch == "systolic_ws" else f"k_max={k_max}"
            raise ValueError(
                f"an integer from {minimum} to {MAX_ACC_WIDTH} ({minimum} is the minimum for "
                f"{bound} with {_describe_formats(*formats)})")
        return value

    @model_validator(mode="after")
    def _derive_defaults(self):
        problem = _operand_keys_error({key: getattr(self, key) for key in OPERAND_KEYS})
        if problem:
            raise ValueError(problem)
        if self.operand_a is not None and self.operand_a == self.operand_b:
            # One format for both: the config is the one written with operand (same hash, same hardware).
            self.operand, self.operand_a, self.operand_b = self.operand_a, None, None
        if self.arch == "systolic_os" and self.result_buffers is None:
            self.result_buffers = 2
        if self.arch == "cube":
            if self.result_rows is None:
                self.result_rows = 1
            if self.rows % self.result_rows:
                divisors = ", ".join(str(d) for d in range(1, self.rows + 1) if self.rows % d == 0)
                raise ValueError(f"result_rows: {self.result_rows} does not divide rows={self.rows}; "
                                 f"allowed: {divisors}")
        if "fanout" in ARCH_KEYS[self.arch]:
            if self.fanout is None:
                self.fanout = 0
            if self.fanout and self.mac in DIGIT_SERIAL_MACS:
                raise ValueError(f"fanout: {self.fanout} with mac '{self.mac}', whose digit-serial grid has no "
                                 "broadcast registers to copy; allowed: 0")
        if "row_queue" in ARCH_KEYS[self.arch]:
            if self.row_queue is None:
                self.row_queue = 0
            if self.row_queue and self.mac not in DECOUPLED_MACS:
                why = ("whose column issuers walk B's terms once for all rows" if self.mac == "laconic"
                       else "whose rows have no digits to wait for")
                raise ValueError(f"row_queue: {self.row_queue} with mac '{self.mac}', {why}; allowed: 0, or mac "
                                 f"{' or '.join(DECOUPLED_MACS)}")
        if self.acc_width is None:
            minimum = _minimum_acc_width(self.a_format, self.b_format, self.k_bound)
            if minimum > MAX_ACC_WIDTH:
                key = "rows" if self.arch == "systolic_ws" else "k_max"
                raise ValueError(
                    f"{key}: {self.k_bound} needs {minimum}-bit accumulators with "
                    f"{_describe_formats(self.a_format, self.b_format)}, above the {MAX_ACC_WIDTH}-bit limit; "
                    f"allowed: {key} <= {_largest_k(self.a_format, self.b_format)}")
            self.acc_width = minimum
        return self

    @property
    def a_format(self) -> OperandConfig:
        """Format of the ``A`` elements (``operand_a``, or ``operand``)."""
        return self.operand if self.operand is not None else self.operand_a

    @property
    def b_format(self) -> OperandConfig:
        """Format of the ``B`` elements (``operand_b``, or ``operand``)."""
        return self.operand if self.operand is not None else self.operand_b

    @property
    def acc_signed(self) -> bool:
        """Accumulators and ``C`` are signed when either operand is."""
        return accumulator_signed(self.a_format.signed, self.b_format.signed)

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
        for key, default in (("result_rows", 1), ("fanout", 0), ("row_queue", 0)):  # likewise for their defaults
            if key in data and data[key] == default:
                data.pop(key)
        for key in OPERAND_KEYS:  # operand, or operand_a and operand_b when they differ (see _derive_defaults)
            if data[key] is None:
                data.pop(key)
        return data

    def describe(self) -> str:
        shape = {
            "adder_tree": f"{self.cols} units x {self.k_tile}",
            "cube": f"{self.rows}x{self.cols}x{self.depth}",
        }.get(self.arch, f"{self.rows}x{self.cols}")
        extra = f", {self.result_buffers} result buffer(s)" if self.arch == "systolic_os" else ""
        if self.arch == "cube" and self.result_rows > 1:
            extra += f", {self.result_rows} rows per result beat"
        if self.mac != "baseline":
            extra += f", mac {self.mac}"
        if self.fanout:
            extra += f", operands copied per {self.fanout} PEs"
        if self.arch == "matrix2d" and self.row_queue:
            extra += f", decoupled rows (queue of {self.row_queue})"
        bound = f"K <= {self.rows}" if self.arch == "systolic_ws" else f"k_max {self.k_max}"
        return (f"{self.arch} {shape}, {_describe_formats(self.a_format, self.b_format)}, {bound}, "
                f"{self.acc_width}-bit accumulators{extra}")


def _takes(mac: str, a: OperandConfig, b: OperandConfig) -> bool:
    """Whether ``mac`` takes these formats (``hw.tpe.mac.SAME_FORMAT_MAX_WIDTH``)."""
    limit = SAME_FORMAT_MAX_WIDTH.get(mac)
    return limit is None or (a == b and a.width <= limit)


def _minimum_acc_width(a: OperandConfig, b: OperandConfig, k_max: int) -> int:
    return accumulator_width(a.width, a.signed, k_max, b_width=b.width, b_signed=b.signed)


def _largest_k(a: OperandConfig, b: OperandConfig) -> int:
    """The largest K whose exact sums fit ``MAX_ACC_WIDTH`` bits (0 if not even one product does)."""
    lo, hi = 1, 1 << 17
    if _minimum_acc_width(a, b, 1) > MAX_ACC_WIDTH:
        return 0
    while lo < hi:  # the largest k with a fitting width, by bisection
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _minimum_acc_width(a, b, mid) <= MAX_ACC_WIDTH else (lo, mid - 1)
    return lo


def operand_shapes(cfg: TpeConfig):
    """Amaranth shapes of ``A`` and ``B`` elements."""
    def shape(fmt: OperandConfig):
        return signed(fmt.width) if fmt.signed else unsigned(fmt.width)
    return shape(cfg.a_format), shape(cfg.b_format)


def build(cfg: TpeConfig):
    """The ``hw`` component for ``cfg``."""
    from hw import tpe as engines

    shape, b_shape = operand_shapes(cfg)
    if cfg.arch == "systolic_os":
        return engines.SystolicOS(cfg.rows, cfg.cols, shape, cfg.acc_width, b_shape=b_shape,
                                  result_buffers=cfg.result_buffers, mac=cfg.mac)
    if cfg.arch == "systolic_ws":
        return engines.SystolicWS(cfg.rows, cfg.cols, shape, cfg.acc_width, b_shape=b_shape, mac=cfg.mac)
    if cfg.arch == "matrix2d" and cfg.mac in engines.DIGIT_SERIAL:
        return engines.DigitSerialGrid(cfg.rows, cfg.cols, shape, cfg.acc_width, b_shape=b_shape, mac=cfg.mac,
                                       row_queue=cfg.row_queue)
    if cfg.arch == "matrix2d":
        return engines.BroadcastGrid(cfg.rows, cfg.cols, 1, shape, cfg.acc_width, b_shape=b_shape,
                                     tree_register=False, mac=cfg.mac, fanout=cfg.fanout)
    if cfg.arch == "cube":
        # opt1 folds the adder tree and the accumulator into one compressor: nothing to register between.
        return engines.BroadcastGrid(cfg.rows, cfg.cols, cfg.depth, shape, cfg.acc_width, b_shape=b_shape,
                                     tree_register=cfg.mac != "opt1", mac=cfg.mac, result_rows=cfg.result_rows,
                                     fanout=cfg.fanout)
    if cfg.arch == "adder_tree":
        return engines.BroadcastGrid(1, cfg.cols, cfg.k_tile, shape, cfg.acc_width, b_shape=b_shape,
                                     tree_register=True, mac=cfg.mac, fanout=cfg.fanout)
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
    return {"timing": component.timing, "cycle_model": "sim.golden.tpe_cycles.capture_cycles"}
