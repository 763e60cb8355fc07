"""``kind: moevit`` -- a model config (not a hardware kind): an M3ViT-style multi-task MoE vision transformer.

The config fixes the network (image, patch, dim, heads, layers, which layers are
MoE, experts, top-k, tasks), the fixed-point format of every tensor class and the
nonlinear units (softmax, MoE gate, GELU, LayerNorm) with their formats and knobs,
given as the keys of the units' own kinds (``gen/kinds/{softmax,gelu,layernorm}.py``),
less the keys the network fixes (``n_max``, ``experts``, ``top_k``, LayerNorm
``gamma``/``beta`` formats). ``npuforge eval`` and ``npuforge perf`` read it; the
hardware commands (``generate``, ``sim``, ...) refuse it with one line.

The hardware description ``npuforge perf --hw`` reads (``kind: moevit_hw``) is
:class:`MoevitHwConfig`.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from hw.arith.fixed import MAX_INTERMEDIATE_BITS, FixedFormat, Overflow, Rounding

from ..errors import ConfigError
from .base import StrictModel, TopName
from .fixed import FixedFormatConfig, OverflowName, RoundingName
from .messages import format_validation_error, show_value
from .reader import parse_yaml_text, read_config_text

#: ``kind`` values that are not hardware kinds: what each is, and the commands that read it.
MODEL_KINDS = {"moevit": ("a model config", ("eval", "perf")),
               "moevit_hw": ("a hardware description for the performance model", ("perf --hw",))}

#: Keys of a nonlinear unit section that the network fixes (given by the moevit config, not the user).
FIXED_UNIT_KEYS = {
    "softmax": ("kind", "name", "n_max", "experts", "top_k"),
    "gate": ("kind", "name", "n_max", "experts", "top_k"),
    "gelu": ("kind", "name"),
    "layernorm": ("kind", "name", "n_max", "gamma", "beta"),
}
#: The kind of each nonlinear unit section.
UNIT_KINDS = {"softmax": "softmax", "gate": "softmax", "gelu": "gelu", "layernorm": "layernorm"}


class TaskConfig(StrictModel):
    """One task: a per-patch linear head upsampled to the image by pixel shuffle."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,31}$",
                      json_schema_extra={"allowed": "an identifier of at most 32 characters"},
                      description="Task name (names the gate and head weights).")
    type: Literal["segmentation", "depth"] = Field(description="segmentation: per-pixel class logits; "
                                                               "depth: one value per pixel.")
    classes: int | None = Field(default=None, ge=2, le=1024,
                                description="segmentation only, required: classes (logits per pixel).")

    @model_validator(mode="after")
    def _classes(self):
        if self.type == "segmentation" and self.classes is None:
            raise ValueError("a segmentation task needs classes (an integer from 2 to 1024)")
        if self.type == "depth" and self.classes is not None:
            raise ValueError("a depth task has no classes (it outputs one value per pixel)")
        return self

    @property
    def outputs(self) -> int:
        """Output channels per pixel."""
        return self.classes if self.type == "segmentation" else 1


class AccumulatorFormatConfig(FixedFormatConfig):
    """A fixed-point accumulator format (wider than a tensor format may be)."""

    width: int = Field(ge=2, le=MAX_INTERMEDIATE_BITS, description="Total bits of an accumulator.")


class FormatsConfig(StrictModel):
    """Fixed-point format of every tensor class (Edge-MoE's ``ap_fixed`` types by default)."""

    pixel: FixedFormatConfig = Field(description="Input pixels in [0, 1] (Edge-MoE: ap_ufixed<8,0>).")
    activation: FixedFormatConfig = Field(
        description="Feature maps between operators: embeddings, q/k/v, attention scores, matmul outputs, "
                    "residual stream (Edge-MoE: ap_fixed<32,10>).")
    weight: FixedFormatConfig = Field(description="Linear, gate and head weights (Edge-MoE: ap_fixed<16,2>).")
    patch_weight: FixedFormatConfig = Field(description="Patch-embedding weights (Edge-MoE: ap_fixed<16,0>).")
    attn_bias: FixedFormatConfig = Field(description="Biases of qkv and proj (Edge-MoE: ap_fixed<16,7>).")
    bias: FixedFormatConfig = Field(description="Other biases: patch embed, MLP, experts, heads "
                                                "(Edge-MoE: ap_fixed<16,5>).")
    norm: FixedFormatConfig = Field(description="LayerNorm gamma and beta (Edge-MoE: ap_fixed<16,5>).")
    embedding: FixedFormatConfig | None = Field(
        default=None, description="cls token and position embedding. Default: activation.")
    accumulator: AccumulatorFormatConfig = Field(
        description="Every matmul's accumulator: each product is requantised to its fraction bits by "
                    "rounding, the sum wraps or saturates in its width (Edge-MoE accumulates in "
                    "ap_fixed<32,10>, truncating each product).")


class MoevitConfig(StrictModel):
    """An M3ViT-style multi-task MoE vision transformer (a model, not a hardware kind).

    tokens = [cls] + patches (row-major); pre-norm blocks (LayerNorm, multi-head
    attention, residual; LayerNorm, dense MLP or MoE, residual); final LayerNorm;
    per task a linear head on the patch tokens, pixel-shuffled to the image. MoE:
    one gate per task, softmax over all experts, top-k without renormalisation,
    ties to the lower index. Read by ``npuforge eval`` and ``npuforge perf``.
    """

    summary: ClassVar[str] = "model config: M3ViT-style multi-task MoE ViT (float, fixed-point, perf)"

    kind: Literal["moevit"] = Field(description="Selects this config model.")
    name: TopName = Field(description="Model name.")
    height: int = Field(ge=1, le=4096, description="Image height (pixels), a multiple of patch.")
    width: int = Field(ge=1, le=4096, description="Image width (pixels), a multiple of patch.")
    channels: int = Field(default=3, ge=1, le=16, description="Image channels.")
    patch: int = Field(ge=1, le=64, description="Patch side (pixels).")
    dim: int = Field(ge=1, le=4096, description="Embedding dimension.")
    heads: int = Field(ge=1, le=64, description="Attention heads (dim must be a multiple).")
    layers: int = Field(ge=1, le=64, description="Transformer blocks.")
    mlp_ratio: int = Field(default=4, ge=1, le=16, description="Dense MLP hidden size = mlp_ratio * dim.")
    moe_layers: Literal["odd", "even", "all", "none"] = Field(
        default="odd", description="Blocks whose FFN is a MoE (Edge-MoE: odd, counting from 0).")
    experts: int = Field(default=16, ge=2, le=256, description="Experts per MoE layer.")
    top_k: int = Field(default=2, ge=1, le=256, description="Experts chosen per token (1..experts).")
    expert_hidden: int = Field(ge=1, le=16384, description="Hidden size of each expert's MLP.")
    tasks: list[TaskConfig] = Field(min_length=1, max_length=8, description="Tasks, one gate and head each.")
    weights: str | None = Field(
        default=None, description="Weights file (.npz, keys in docs/moevit.md), relative to the config file; "
                                  "null: none (random weights for tests).")
    formats: FormatsConfig = Field(description="Fixed-point formats of the tensor classes.")
    rounding: RoundingName = Field(
        default="truncate", description="How matmul products, matmul outputs and conversions between formats "
                                        "drop fraction bits (Edge-MoE: truncate).")
    overflow: OverflowName = Field(default="wrap", description="What an accumulator, output, conversion or "
                                                               "residual sum that does not fit becomes "
                                                               "(Edge-MoE: wrap).")
    nonlinear: dict[str, dict[str, Any]] = Field(
        json_schema_extra={"allowed": "a mapping of the units softmax, gate, gelu, layernorm to mappings of "
                                      "their kinds' keys"},
        description="Nonlinear units: softmax (attention), gate (MoE gate softmax), gelu, layernorm; each a "
                    "mapping of its kind's keys (docs/nonlinear.md) without kind, name and the keys the "
                    "network fixes (n_max, experts, top_k; LayerNorm gamma and beta take formats.norm).")

    _source: Path | None = PrivateAttr(default=None)
    _units: dict | None = PrivateAttr(default=None)
    _cache: dict = PrivateAttr(default_factory=dict)
    gelu_alternatives: dict[Literal["table", "poly", "pwl"], dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"allowed": "a mapping of table, poly or pwl to that method's knobs"},
        description="Knobs of the other GELU methods the evaluation compares (method -> knobs; "
                    "input, output, rounding and overflow come from nonlinear.gelu). Default: their defaults.")

    @field_validator("patch")
    @classmethod
    def _patch_divides_image(cls, value, info: ValidationInfo):
        sides = {side: info.data[side] for side in ("height", "width") if side in info.data}
        if any(size % value for size in sides.values()):
            raise ValueError("a divisor of " + " and ".join(f"{k} ({v})" for k, v in sides.items()))
        return value

    @field_validator("heads")
    @classmethod
    def _heads_divide_dim(cls, value, info: ValidationInfo):
        if "dim" in info.data and info.data["dim"] % value:
            raise ValueError(f"a divisor of dim ({info.data['dim']})")
        return value

    @field_validator("top_k")
    @classmethod
    def _top_k_of_experts(cls, value, info: ValidationInfo):
        if "experts" in info.data and value > info.data["experts"]:
            raise ValueError(f"at most experts ({info.data['experts']})")
        return value

    @field_validator("tasks")
    @classmethod
    def _distinct_tasks(cls, value):
        names = [task.name for task in value]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks with distinct names (got {', '.join(names)})")
        return value

    @field_validator("nonlinear")
    @classmethod
    def _units_present(cls, value):
        missing = sorted(set(FIXED_UNIT_KEYS) - set(value))
        extra = sorted(set(value) - set(FIXED_UNIT_KEYS))
        if missing or extra:
            problem = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(extra)}"
            raise ValueError(f"exactly the units {', '.join(FIXED_UNIT_KEYS)} ({problem})")
        for unit, keys in FIXED_UNIT_KEYS.items():
            fixed = sorted(set(keys) & set(value[unit]))
            if fixed:
                raise ValueError(f"no {', '.join(fixed)} in nonlinear.{unit} (the network fixes them)")
        return value

    # ------------------------------------------------------------ derived sizes

    @property
    def grid(self) -> tuple[int, int]:
        """Patches per column and per row."""
        return self.height // self.patch, self.width // self.patch

    @property
    def patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def tokens(self) -> int:
        """Patches plus the cls token."""
        return self.patches + 1

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    @property
    def hidden(self) -> int:
        """Dense MLP hidden size."""
        return self.mlp_ratio * self.dim

    @property
    def patch_inputs(self) -> int:
        """Pixels per patch (channels * patch * patch)."""
        return self.channels * self.patch * self.patch

    def is_moe(self, layer: int) -> bool:
        return {"odd": layer % 2 == 1, "even": layer % 2 == 0, "all": True, "none": False}[self.moe_layers]

    def task(self, name: str) -> TaskConfig:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]

    def format(self, tensor_class: str) -> FixedFormat:
        """The :class:`FixedFormat` of a tensor class of ``formats`` (``embedding`` defaults to activation)."""
        config = getattr(self.formats, tensor_class)
        if config is None:
            config = self.formats.activation
        return config.format

    # --------------------------------------------------------- nonlinear units

    def score_scale(self) -> tuple[int, FixedFormat]:
        """The attention scale ``1/sqrt(head_dim)`` as a code of the weight format (round half to even,
        saturate: the host-side quantisation of a constant) and that format."""
        import math

        w = self.format("weight")
        return int(w.from_float(1.0 / math.sqrt(self.head_dim))), w

    def unit_data(self, unit: str, **overrides) -> dict:
        """The kind config mapping of nonlinear ``unit`` (fixed keys filled in), with ``overrides``."""
        data = {"kind": UNIT_KINDS[unit], "name": f"{self.name}_{unit}", **self.nonlinear[unit]}
        if unit == "softmax":
            data["n_max"] = self.tokens
        elif unit == "gate":
            data.update(experts=self.experts, top_k=self.top_k)
        elif unit == "layernorm":
            data.update(n_max=self.dim, gamma=self.formats.norm.model_dump(), beta=self.formats.norm.model_dump())
        data.update(overrides)
        return data

    def unit(self, unit: str, source: str = "config", **overrides):
        """The validated kind config of nonlinear ``unit``; :class:`ConfigError` naming ``nonlinear.<unit>``."""
        from ..kinds import gelu, layernorm, softmax  # not the registry: it lists the accelerator, which reads this

        models = {"softmax": softmax.SoftmaxConfig, "gelu": gelu.GeluConfig, "layernorm": layernorm.LayerNormConfig}
        model = models[UNIT_KINDS[unit]]
        try:
            return model.model_validate(self.unit_data(unit, **overrides))
        except ValidationError as error:
            line = format_validation_error(error, model, source)
            line = line.replace(f"{source}: top level:", f"{source}: nonlinear.{unit}:", 1)
            raise ConfigError(line.replace(f"{source}: ", f"{source}: nonlinear.{unit}.", 1)
                              if not line.startswith(f"{source}: nonlinear.") else line) from None

    @property
    def units(self) -> dict:
        """Every nonlinear unit's kind config, as configured (validated once)."""
        if self._units is None:
            self._units = {unit: self.unit(unit, self.source_name) for unit in FIXED_UNIT_KEYS}
        return self._units

    def gelu_unit(self, method: str):
        """The GELU unit with ``method``: the configured one, or another method with its knobs from
        ``gelu_alternatives`` (defaults otherwise) and the configured formats; one-line :class:`ConfigError`."""
        from ..kinds.gelu import COMMON_KEYS, GeluConfig

        if method == self.units["gelu"].method:
            return self.units["gelu"]
        data = {k: v for k, v in self.nonlinear["gelu"].items() if k in COMMON_KEYS}
        data |= {**(self.gelu_alternatives or {}).get(method, {}), "kind": "gelu", "name": f"{self.name}_gelu",
                 "method": method}
        try:
            return GeluConfig.model_validate(data)
        except ValidationError as error:
            source = self.source_name
            line = format_validation_error(error, GeluConfig, source)
            raise ConfigError(line.replace(f"{source}: ", f"{source}: gelu_alternatives.{method}.", 1)) from None

    @property
    def cache(self) -> dict:
        """Scratch space for models derived from this config (unit specs, ...), built once."""
        return self._cache

    @property
    def source_name(self) -> str:
        return str(self._source) if self._source is not None else "config"

    def describe(self) -> str:
        moe = sum(self.is_moe(layer) for layer in range(self.layers))
        return (f"moevit {self.name}: {self.channels}x{self.height}x{self.width}, patch {self.patch}, "
                f"{self.tokens} tokens, dim {self.dim}, {self.heads} heads, {self.layers} layers "
                f"({moe} MoE: {self.experts} experts top-{self.top_k}, hidden {self.expert_hidden}), "
                f"tasks {', '.join(self.task_names)}")


@dataclass(frozen=True)
class MatmulSpec:
    """Formats of one matmul ``out = a @ b (+ bias)`` (the arithmetic: ``sim/golden/moevit/fixed.py``)."""

    name: str
    a: FixedFormat
    b: FixedFormat
    acc: FixedFormat
    out: FixedFormat
    rounding: Rounding
    overflow: Overflow
    bias: FixedFormat | None = None

    @property
    def product_shift(self) -> int:
        """Fraction bits each product drops (<= 0: products are exact)."""
        return self.a.frac + self.b.frac - self.acc.frac


def matmul_specs(cfg: MoevitConfig) -> dict[str, MatmulSpec]:
    """The formats of every matmul of the network, by name:

    ``patch_embed`` (pixels x patch weights + bias), ``qkv`` and ``proj`` (+ attention bias),
    ``qk`` (q x k: the raw scores, before the scale), ``av`` (probabilities x v), ``fc1``/``fc2``
    (dense MLP and experts, + bias), ``gate`` (no bias), ``head`` (+ bias). Outputs are features.
    """
    act, acc, w = cfg.format("activation"), cfg.format("accumulator"), cfg.format("weight")
    rnd, ovf = Rounding(cfg.rounding), Overflow(cfg.overflow)
    prob = cfg.units["softmax"].output.format

    def spec(name, a, b, bias=None):
        return MatmulSpec(name, a, b, acc, act, rnd, ovf, bias)

    return {
        "patch_embed": spec("patch_embed", cfg.format("pixel"), cfg.format("patch_weight"), cfg.format("bias")),
        "qkv": spec("qkv", act, w, cfg.format("attn_bias")),
        "qk": spec("qk", act, act),
        "av": spec("av", prob, act),
        "proj": spec("proj", act, w, cfg.format("attn_bias")),
        "fc1": spec("fc1", act, w, cfg.format("bias")),
        "fc2": spec("fc2", act, w, cfg.format("bias")),
        "gate": spec("gate", act, w),
        "head": spec("head", act, w, cfg.format("bias")),
    }


class EngineConfig(StrictModel):
    """A compute engine: ``macs`` multiply-accumulates per cycle (``count`` copies)."""

    macs: int = Field(ge=1, le=1 << 20, description="MACs per cycle of one engine.")
    count: int = Field(default=1, ge=1, le=64, description="Copies of the engine.")


class MoevitHwConfig(StrictModel):
    """A MoE-ViT accelerator for ``npuforge perf``: engines, elementwise units, memory ports, clock."""

    kind: Literal["moevit_hw"] = Field(description="Selects this config model.")
    name: TopName = Field(description="Hardware name.")
    clock_mhz: float = Field(gt=0, le=10000, json_schema_extra={"allowed": "a number > 0, at most 10000"},
                             description="Clock frequency (MHz).")
    linear: EngineConfig = Field(description="The unified linear array: qkv, proj, MLP, experts, heads.")
    attention: EngineConfig = Field(description="Attention engines (Q x K and A x V); count 2 runs them on two.")
    attention_parallel: int = Field(default=4, ge=1, le=256,
                                    description="Query rows kept on chip per attention engine (p).")
    gate: EngineConfig = Field(description="The MoE gate's MAC unit.")
    patch_embed: EngineConfig = Field(description="The patch-embedding unit.")
    layernorm_elements: int = Field(default=8, ge=1, le=1024, description="LayerNorm elements per cycle.")
    port_bits: int = Field(ge=8, le=4096, description="Width of one memory port (bits per cycle).")
    ports: int = Field(default=1, ge=1, le=64, description="Memory ports usable at once.")

    @property
    def bytes_per_cycle(self) -> float:
        return self.ports * self.port_bits / 8


def _load(path: str | Path, model):
    source = str(path)
    data = parse_yaml_text(read_config_text(path), source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level: got {show_value(data)}; allowed: a mapping of config keys")
    if data.get("kind") != model.model_fields["kind"].annotation.__args__[0]:
        wanted = model.model_fields["kind"].annotation.__args__[0]
        raise ConfigError(f"{source}: kind: got {show_value(data.get('kind'))}; allowed: '{wanted}'")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, model, source)) from None


def load_moevit(path: str | Path) -> MoevitConfig:
    """Read and validate a ``kind: moevit`` config (nonlinear units included); one-line :class:`ConfigError`."""
    cfg = _load(path, MoevitConfig)
    cfg._source = Path(path)
    cfg.units  # noqa: B018 -- validates the nonlinear units now, naming the file
    for method in cfg.gelu_alternatives or {}:
        cfg.gelu_unit(method)
    return cfg


def load_moevit_hw(path: str | Path) -> MoevitHwConfig:
    """Read and validate a ``kind: moevit_hw`` hardware description; one-line :class:`ConfigError`."""
    return _load(path, MoevitHwConfig)


def weights_path(cfg: MoevitConfig) -> Path | None:
    """The weights file of ``cfg``, resolved against the config file's directory (``None`` if not set)."""
    if cfg.weights is None:
        return None
    base = cfg._source.parent if cfg._source is not None else Path.cwd()
    return (base / cfg.weights).resolve()
