"""``kind: campaign`` -- a fault-injection campaign on one design, validated like every config.

A campaign file names a design config (a path relative to the campaign file), the
workload that exercises it (a plug-in of the design's kind), the fault models and the
sample size. :func:`load_campaign` reads it with the strict YAML reader of
``gen.config.loader`` (duplicate keys rejected) and reports every problem as one
line naming the file, the key, the value and what is allowed. See
``docs/campaigns.md``.
"""

import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from gen.config import load_config
from gen.config.base import KindConfig, StrictModel
from gen.config.messages import format_validation_error, quote, show_path, show_value, suggest_key
from gen.config.reader import parse_yaml_text, read_config_text
from gen.errors import ConfigError

from .model import FaultModel

#: FIT per bit used when the campaign does not set ``fit_per_bit``. Memories: 1,000 FIT/Mbit,
#: the middle of IEC 61508's 700-1,200 FIT/Mbit for embedded memories. Registers: no public
#: per-flop figure exists; 1e-4 FIT/bit is a placeholder of the same order as published
#: flop-versus-SRAM ratios (flops roughly ten times harder). Set both for your process.
DEFAULT_FIT_REGISTER = 1.0e-4
DEFAULT_FIT_MEMORY = 1.0e-3

_POSITIVE_NUMBER = "a number > 0 (YAML reads 1e-4 as text: write 1.0e-4)"


def _number_hint(value: Any) -> Any:
    """Explain the YAML 1.1 trap: ``1e-4`` is a string there, ``1.0e-4`` a number."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(f"a number, not text ({value!r} is read as text by YAML 1.1: write it with a "
                         "dot and a signed exponent, e.g. 1.0e-4)")
    return value


# ``register`` is the key the campaign YAML uses; it shadows ``ABCMeta.register`` on the class only
# (pydantic warns), while instances read the field as usual.
warnings.filterwarnings("ignore", message='Field name "register" in "FitPerBit"', category=UserWarning)


class FitPerBit(StrictModel):
    """Raw soft-error rates, in FIT (failures per 10^9 device-hours) per bit."""

    register: float = Field(
        default=DEFAULT_FIT_REGISTER, gt=0, allow_inf_nan=False, json_schema_extra={"allowed": _POSITIVE_NUMBER},
        description=f"FIT per flip-flop bit. Default {DEFAULT_FIT_REGISTER:g} (no public per-flop figure: "
                    "set it for your process).")
    memory: float = Field(
        default=DEFAULT_FIT_MEMORY, gt=0, allow_inf_nan=False, json_schema_extra={"allowed": _POSITIVE_NUMBER},
        description=f"FIT per memory bit. Default {DEFAULT_FIT_MEMORY:g} (1,000 FIT/Mbit, within IEC 61508's "
                    "700-1,200 FIT/Mbit for embedded memories).")

    _hint = field_validator("register", "memory", mode="before")(_number_hint)


class WorkloadConfig(StrictModel):
    """``type`` names a workload of the design's kind; every other key is a parameter of it."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: str = Field(description="Workload name, one the design's kind declares (tpe: gemm).")

    @property
    def params(self) -> dict[str, Any]:
        """The parameters passed to the workload function, in the order written."""
        return dict(self.model_extra or {})


class FaultsConfig(StrictModel):
    """Which faults are injected and how many."""

    models: list[Literal["seu", "mbu", "mem_seu"]] = Field(
        min_length=1,
        json_schema_extra={"allowed": "a non-empty list of distinct values from 'seu', 'mbu', 'mem_seu'"},
        description="Fault models. seu: one register bit flips at one cycle; mbu: mbu_width adjacent bits "
                    "of one register; mem_seu: one bit of one memory word. Each model is sampled on its own.")
    samples: int | None = Field(
        default=None, ge=1, le=10_000_000,
        description="Injections per fault model (per block and model with stratify: block); capped at the "
                    "population. Give samples, or margin (and confidence).")
    margin: float | None = Field(
        default=None, gt=0, lt=0.5, allow_inf_nan=False,
        json_schema_extra={"allowed": "a number above 0 and below 0.5, e.g. 0.01 for +-1%"},
        description="Error margin of an estimated fraction; the sample size follows from Leveugle et al. "
                    "(DATE 2009, p = 0.5) over the population of each model (of each block and model when "
                    "stratified).")
    confidence: float | None = Field(
        default=None, gt=0.5, lt=1, allow_inf_nan=False, validate_default=True,
        json_schema_extra={"allowed": "a number above 0.5 and below 1, e.g. 0.95"},
        description="Confidence of the margin. Default 0.95 when margin is given; only with margin.")
    seed: int = Field(default=1, ge=0, le=2**63 - 1, description="Seed of the fault sample.")
    mbu_width: int = Field(default=2, ge=2, le=64,
                           description="Adjacent bits an mbu flips (k). Only registers at least this wide are "
                                       "mbu sites.")
    stratify: Literal["none", "block"] = Field(
        default="none",
        description="none: sample each model uniformly over the whole design; block: sample each block "
                    "(manifest fault-site block) separately, with samples or the margin per block.")

    _hint = field_validator("margin", "confidence", mode="before")(_number_hint)

    @field_validator("models", mode="before")
    @classmethod
    def _known(cls, models: Any) -> Any:
        for model in models if isinstance(models, list) else []:
            if model not in ("seu", "mbu", "mem_seu"):
                raise ValueError(f"a list of distinct values from 'seu', 'mbu', 'mem_seu' "
                                 f"({show_value(model)} is none of them)")
        return models

    @field_validator("models")
    @classmethod
    def _distinct(cls, models: list[str]) -> list[str]:
        repeated = sorted({m for m in models if models.count(m) > 1})
        if repeated:
            raise ValueError(f"distinct fault models ({repeated[0]!r} is listed twice)")
        return models

    @field_validator("margin")
    @classmethod
    def _not_with_samples(cls, margin: float | None, info: ValidationInfo) -> float | None:
        if margin is not None and info.data.get("samples") is not None:
            raise ValueError("either samples or margin (with confidence), not both")
        return margin

    @field_validator("confidence")
    @classmethod
    def _with_margin(cls, confidence: float | None, info: ValidationInfo) -> float | None:
        if "margin" not in info.data:  # margin itself was rejected; that error is reported
            return confidence
        if info.data["margin"] is None:
            if confidence is not None:
                raise ValueError("confidence only together with margin")
            return None
        return 0.95 if confidence is None else confidence

    @model_validator(mode="after")
    def _sized(self):
        if self.samples is None and self.margin is None:
            raise ValueError("a sample size: samples (an integer >= 1), or margin (and confidence)")
        return self

    @property
    def fault_models(self) -> list[FaultModel]:
        return [FaultModel(m) for m in self.models]


class CampaignConfig(StrictModel):
    """A fault-injection campaign: a design, its workload, the faults, the safety targets."""

    kind: Literal["campaign"] = Field(description="Selects this config model.")
    name: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$",
        json_schema_extra={"allowed": "a file-name-safe name: letters, digits, _ . - (at most 63, not "
                                      "starting with . or -)"},
        description="Campaign name; names the default database build/campaigns/<name>.sqlite.")
    design: str = Field(min_length=1, description="Design config file, relative to this file.")
    workload: WorkloadConfig = Field(description="Stimulus: type and the workload's parameters.")
    faults: FaultsConfig = Field(description="Fault models and sample size.")
    level: Literal["rtl", "model"] = Field(
        default="rtl",
        description="rtl: flip bits in the Verilog (the C++ harness); model: flip the same bits where the "
                    "bit-accurate golden model holds them (sim/fault/model_level.py; tpe systolic_os/matrix2d and "
                    "npu_tile; only the sites it maps are sampled).")
    timeout_factor: float = Field(
        default=4.0, ge=1.0, le=100.0, allow_inf_nan=False,
        json_schema_extra={"allowed": "a number from 1 to 100"},
        description="A run that does not complete within timeout_factor x the fault-free cycles is a hang.")
    fit_per_bit: FitPerBit = Field(default=FitPerBit(), description="Raw FIT per bit by storage kind.")
    target_asil: Literal["QM", "A", "B", "C", "D"] = Field(
        default="D", description="ASIL the report compares the metrics with.")

    _hint = field_validator("timeout_factor", mode="before")(_number_hint)

    def normalized(self) -> dict[str, Any]:
        """Every default filled in, as JSON-able data (workload parameters included)."""
        return self.model_dump(mode="json")


#: A workload plug-in: ``function(design_cfg, manifest, **params) -> Workload``.
WorkloadFunction = Callable[..., Any]


@dataclass(frozen=True)
class Campaign:
    """A validated campaign file with its design config and resolved workload function."""

    config: CampaignConfig
    design: KindConfig
    source: Path  # the campaign file
    design_path: Path
    workload: WorkloadFunction | None  # None when loaded without the kind's workload table

    @property
    def name(self) -> str:
        return self.config.name


def _error(source: str, loc: tuple, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{source}: {show_path(loc)}: got {show_value(value)}; allowed: {allowed}")


def parse_campaign_data(data: Any, source: str) -> CampaignConfig:
    """Validate already-parsed YAML data as a campaign; one-line :class:`ConfigError` on any problem."""
    if not isinstance(data, dict):
        raise _error(source, (), data, "a mapping of campaign keys (kind: campaign, name, design, ...)")
    if "kind" not in data:
        raise ConfigError(f"{source}: kind: missing required key; allowed: 'campaign'")
    if data.get("kind") != "campaign":
        raise _error(source, ("kind",), data.get("kind"), "'campaign'")
    try:
        return CampaignConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, CampaignConfig, source)) from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply; allowed: a flat mapping of campaign keys") from None


def is_campaign_file(path: str | Path) -> bool:
    """Whether ``path`` is a YAML mapping with ``kind: campaign`` (read errors count as no)."""
    try:
        data = parse_yaml_text(read_config_text(path), str(path))
    except ConfigError:
        return False
    return isinstance(data, dict) and data.get("kind") == "campaign"


def _check_params(source: str, workload: WorkloadConfig, function: WorkloadFunction) -> None:
    """The workload parameters against ``function``'s keyword-only parameters (names, presence, type)."""
    signature = inspect.signature(function).parameters.values()
    parameters = {p.name: p for p in signature if p.kind is inspect.Parameter.KEYWORD_ONLY}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature)
    names = ", ".join(["type", *parameters])
    for key, value in workload.params.items():
        if key not in parameters and takes_any:
            continue
        if key not in parameters:
            raise ConfigError(f"{source}: workload.{key}: unknown key{suggest_key(key, parameters)}; "
                              f"allowed keys of workload '{workload.type}': {names}")
        expected = parameters[key].annotation
        if expected in (int, float, str, bool):
            ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
            if expected is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not ok:
                raise _error(source, ("workload", key), value, {int: "an integer", float: "a number",
                                                                str: "a string", bool: "true or false"}[expected])
    for key, parameter in parameters.items():
        if parameter.default is inspect.Parameter.empty and key not in workload.params:
            raise ConfigError(f"{source}: workload.{key}: missing required key of workload '{workload.type}'; "
                              f"allowed keys: {names}")


def load_campaign(path: str | Path, *,
                  workloads: Callable[[KindConfig], Mapping[str, WorkloadFunction]] | None = None) -> Campaign:
    """Read and validate the campaign file at ``path`` and the design config it names.

    ``workloads(design_cfg)`` returns the workload functions the design's kind declares
    (name -> function); the command line passes it from ``npuforge.registry``, since
    ``sim`` must not import ``npuforge``. With it, ``workload.type`` must be one of the
    names and the other workload keys must be keyword-only parameters of that function;
    without it the workload is left unchecked and unresolved.
    """
    source = str(path)
    config = parse_campaign_data(parse_yaml_text(read_config_text(path), source), source)
    design_path = Path(path).parent / config.design
    if not design_path.is_file():
        # The path quoted and escaped like the value: a newline in it must not break the one-line error.
        raise _error(source, ("design",), config.design,
                     f"a design config file, relative to the campaign file ({quote(str(design_path))} is not a file)")
    design = load_config(design_path)
    function = None
    if workloads is not None:
        table = dict(workloads(design))
        if config.workload.type not in table:
            names = ", ".join(repr(n) for n in table) or "none (this kind declares no workload)"
            raise _error(source, ("workload", "type"), config.workload.type,
                         f"one of {names} (the workloads of kind '{design.kind}')")
        function = table[config.workload.type]
        _check_params(source, config.workload, function)
    return Campaign(config=config, design=design, source=Path(path), design_path=design_path, workload=function)
