"""``kind: moevit_accel`` -- the MoE-ViT accelerator: descriptor processor, engines, AXI ports.

The network it runs (dimensions, formats, nonlinear units) comes from the ``kind: moevit``
config that ``model:`` names: one source of truth for the golden model, the compiler and
the hardware. The hardware keys choose the unified linear unit (a TPE of the family), the
memory ports and the on-chip buffers. See docs/accelerator.md.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationInfo, model_validator

from hw.arith import accumulator_width
from hw.arith.fixed import FixedFormat

from ..config.base import KindConfig, StrictModel
from ..errors import ConfigError
from . import tpe

#: Engines of the TPE family the linear engine can feed (the ``k_steps`` beat format).
LINEAR_ARCHS = ("systolic_os", "cube", "adder_tree", "matrix2d")
#: The model's matmuls the linear engine runs, in the order of the format table.
LINEAR_OPS = ("patch_embed", "qkv", "proj", "fc1", "fc2", "head")
#: ... and with MoE layers the gate's logits (a LINEAR without bias before GATE).
MOE_LINEAR_OPS = ("gate",)
#: Register-map version (major, minor): bump the minor for added registers, the major for moved ones.
VERSION = (1, 0)
#: Largest beats one weight tile may take (a request's beat count is 16 bits).
MAX_TILE_BEATS = (1 << 16) - 1


class LinearConfig(StrictModel):
    """The unified linear unit: a TPE of the family (the keys of ``kind: tpe`` except ``kind``,
    ``name``, ``operand``, ``k_max`` and ``acc_width``, which the model fixes)."""

    arch: Literal[LINEAR_ARCHS] = Field(
        default="systolic_os", description="Architecture: every kind: tpe arch with the k_steps beat format.")
    rows: int | None = Field(default=None, ge=1, le=64,
                             description="Rows of an M-tile (PE rows). Default: 16; not for adder_tree.")
    cols: int = Field(default=16, ge=1, le=64, description="Columns of an N-tile (output features per job).")
    depth: int | None = Field(default=None, ge=1, le=64, description="cube only, required: reduction steps per beat.")
    k_tile: int | None = Field(default=None, ge=1, le=256,
                               description="adder_tree only, required: multipliers per dot-product unit.")
    result_buffers: Literal[1, 2] | None = Field(default=None, description="systolic_os only. Default: 2.")
    mac: str = Field(default="baseline", json_schema_extra={"allowed": "a mac option of kind: tpe for the arch"},
                     description="Multiply-accumulate circuit (kind: tpe's mac).")

    def tpe_data(self, *, operand_width: int, k_max: int) -> dict:
        """This geometry as a ``kind: tpe`` mapping (validated by :class:`gen.kinds.tpe.TpeConfig`)."""
        data = {"kind": "tpe", "name": "linear", "arch": self.arch, "cols": self.cols, "mac": self.mac,
                "operand": {"width": operand_width, "signed": True}}
        rows = self.rows if self.rows is not None or self.arch == "adder_tree" else 16
        for key, value in (("rows", rows), ("depth", self.depth), ("k_tile", self.k_tile),
                           ("result_buffers", self.result_buffers)):
            if value is not None:
                data[key] = value
        if "k_max" in tpe.ARCH_KEYS[self.arch]:
            data["k_max"] = k_max
        return data


class MemoryConfig(StrictModel):
    """The AXI4 master ports to DRAM."""

    data_width: Literal[64, 128, 256] = Field(default=256, description="Data bits of every port.")
    addr_width: int = Field(default=32, ge=16, le=64, description="Address bits of every port.")
    ports: int = Field(default=2, ge=1, le=4, description="AXI4 master ports (m_axi0, m_axi1, ...).")
    max_burst: int = Field(default=16, ge=1, le=256, description="Longest burst (beats).")
    max_reads: int = Field(default=4, ge=1, le=32, description="Read bursts in flight per port.")
    max_writes: int = Field(default=4, ge=1, le=32, description="Write bursts in flight per port.")
    read_queue: int | None = Field(
        default=None, ge=3, le=1024,
        description="Beats of read data each read client's receive FIFO holds (default 2 x max_burst): a burst "
                    "goes out only when its beats fit, so one client keeps about read_queue / max_burst bursts in "
                    "flight; read_queue >= the DRAM's read latency + max_burst lets one client stream a beat per "
                    "cycle. At least max_burst.")


#: Attention engines: ``dedicated`` (Edge-MoE's p query rows and p x lanes MACs, hw/vit/attention.py) and
#: ``unified`` (Q K^T and A V as GEMMs on the linear engine, the softmax between them on the SOFTMAX engine).
ATTENTION_ENGINES = ("dedicated", "unified")
#: The matmuls of the unified attention, in the order they join the format table.
UNIFIED_ATTENTION_OPS = ("qk", "av")


class AttentionConfig(StrictModel):
    """The attention operator (``ATTENTION`` descriptors, one head each) and the engine that runs it."""

    engine: Literal[ATTENTION_ENGINES] = Field(
        default="dedicated", description="dedicated: Edge-MoE's attention engine (p query rows on chip, one key row "
                                         "per step, the softmax unit between Q K^T and A V); unified: Q K^T and A V "
                                         "as GEMMs on the linear engine, the softmax between them.")
    p: int = Field(default=4, ge=1, le=64, description="dedicated: query rows held on chip (slots).")
    macs: int | None = Field(default=None, ge=1, le=4096,
                             json_schema_extra={"allowed": "p x lanes, lanes a power of two"},
                             description="dedicated: multipliers, p x lanes (lanes per slot a power of two). "
                                         "Default: p x the activations of one memory beat.")


class BuffersConfig(StrictModel):
    """On-chip buffer sizes (defaults: what the model needs)."""

    a_rows: int | None = Field(default=None, ge=1, le=1 << 16,
                               description="Rows (tokens) of A held on chip. Default: the model's tokens.")
    a_k: int | None = Field(default=None, ge=1, le=1 << 16,
                            description="Elements per A row held on chip. Default: the model's largest K.")
    k_max: int | None = Field(default=None, ge=1, le=1 << 16,
                              description="Rows of a weight tile: the largest K. Default: the model's largest K.")


@dataclass(frozen=True)
class AccelFacts:
    """What the generator, the compiler and the docs derive from a config and its model."""

    act: FixedFormat
    act_bytes: int
    w_bytes: int
    operand_width: int
    rows: int
    cols: int
    steps: int
    a_rows: int
    a_k: int
    k_max: int
    acc_width: int
    formats: tuple  # of hw.vit.epilogue.EpilogueFormat
    params_bytes: int  # container of a LayerNorm parameter code (hw.vit.rows.params_bytes)
    op_format: dict = field(default_factory=dict)  # matmul name -> row of formats
    k_of_op: dict = field(default_factory=dict)
    attention: "AttentionFacts | None" = None

    @property
    def macs(self) -> int:
        return self.rows * self.cols * self.steps


@dataclass(frozen=True)
class AttentionFacts:
    """The attention engine of a config: its mode, slots, multipliers and the largest head it takes."""

    engine: str
    p: int | None  # dedicated only (None: unified)
    macs: int | None
    lanes: int | None
    t_max: int
    hd_max: int

    def to_json(self) -> dict:
        return {"engine": self.engine, "p": self.p, "macs": self.macs, "lanes": self.lanes, "t_max": self.t_max,
                "hd_max": self.hd_max}


def container_bytes(fmt: FixedFormat) -> int:
    """The smallest power-of-two byte count holding a code of ``fmt`` (1, 2 or 4)."""
    for size in (1, 2, 4):
        if fmt.width <= 8 * size:
            return size
    raise ValueError(f"{fmt.describe()} is wider than 32 bits")


def has_moe(model) -> bool:
    """Does the network have mixture-of-experts layers (then the accelerator has GATE and the route table)?"""
    return any(model.is_moe(layer) for layer in range(model.layers))


def linear_ops(model) -> tuple[str, ...]:
    """The model's matmuls the linear engine runs (the format table's order)."""
    return LINEAR_OPS + (MOE_LINEAR_OPS if has_moe(model) else ())


def _k_of_ops(model) -> dict[str, int]:
    moe = has_moe(model)
    dense = any(not model.is_moe(layer) for layer in range(model.layers))
    return {"patch_embed": model.patch_inputs, "qkv": model.dim, "proj": model.dim, "fc1": model.dim,
            "fc2": max([model.hidden] * dense + [model.expert_hidden] * moe), "head": model.dim,
            **({"gate": model.dim} if moe else {})}


class MoevitAccelConfig(KindConfig):
    """A MoE-ViT accelerator for the network of ``model`` (a ``kind: moevit`` config): a descriptor
    processor on AXI4-Lite registers, AXI4 master ports to DRAM, the unified linear engine (a TPE of
    the family behind A banks and double-buffered weight tiles, with an epilogue for bias,
    requantisation, GELU and residual add), an element-wise engine and the patch gather. See
    docs/accelerator.md."""

    summary = "MoE-ViT accelerator: descriptor processor, unified linear engine, AXI4 ports (docs/accelerator.md)"

    kind: Literal["moevit_accel"] = Field(description="Selects this config model.")
    model: str = Field(min_length=1, description="The kind: moevit config of the network, relative to this file.")
    linear: LinearConfig = Field(default_factory=LinearConfig, description="The unified linear unit.")
    memory: MemoryConfig = Field(default_factory=MemoryConfig, description="The AXI4 memory ports.")
    buffers: BuffersConfig = Field(default_factory=BuffersConfig, description="On-chip buffer sizes.")
    attention: AttentionConfig | None = Field(
        default=None, description="The attention engine (ATTENTION descriptors); none when left out.")
    clock_mhz: float = Field(default=300.0, gt=0, le=2000, json_schema_extra={"allowed": "a number > 0, at most 2000"},
                             description="Target clock (MHz), for reports.")

    _network = PrivateAttr(default=None)
    _facts = PrivateAttr(default=None)
    _model_path = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_and_derive(self, info: ValidationInfo):
        from ..config.moevit import load_moevit

        source = (info.context or {}).get("source") if info else None
        base = Path(source).parent if source else Path.cwd()
        path = Path(self.model) if Path(self.model).is_absolute() else base / self.model
        try:
            network = load_moevit(path)
        except ConfigError as error:
            raise ValueError(f"model: {self.model!r} is not a usable kind: moevit config: {error}") from None
        self._network, self._model_path = network, path
        mem = self.memory
        if mem.read_queue is not None and mem.read_queue < mem.max_burst:
            raise ValueError(f"memory.read_queue: got {mem.read_queue}; allowed: at least memory.max_burst "
                             f"({mem.max_burst}), the beats of one burst")
        self._facts = derive(self, network)
        return self

    @property
    def network(self):
        """The ``kind: moevit`` config the accelerator runs."""
        return self._network

    @property
    def model_path(self) -> Path:
        return self._model_path

    @property
    def facts(self) -> AccelFacts:
        return self._facts

    def tpe_config(self) -> "tpe.TpeConfig":
        """The linear unit as a validated ``kind: tpe`` config (operands of the model's widest format)."""
        f = self.facts
        data = self.linear.tpe_data(operand_width=f.operand_width, k_max=f.k_max)
        return tpe.TpeConfig.model_validate(data).model_copy(update={"acc_width": f.acc_width})

    def normalized(self) -> dict:
        data = super().normalized()
        f = self.facts
        # The model's content shapes the hardware (formats, sizes): hash it, not its path.
        data["model"] = self.network.model_dump(mode="json", exclude={"weights", "gelu_alternatives"})
        data["linear"] = {k: v for k, v in self.tpe_config().normalized().items() if k not in ("kind", "name")}
        data["buffers"] = {"a_rows": f.a_rows, "a_k": f.a_k, "k_max": f.k_max}
        if f.attention is not None:
            data["attention"] = {"engine": f.attention.engine, "p": f.attention.p, "macs": f.attention.macs}
            if f.attention.engine == "unified":
                data["attention"] = {"engine": "unified"}
        return data

    def describe(self) -> str:
        f, lin, mem = self.facts, self.linear, self.memory
        steps = f" x {f.steps}" if f.steps > 1 else ""
        att = f.attention
        attention = ("" if att is None else ", attention on the linear engine" if att.engine == "unified" else
                     f", attention {att.engine} p = {att.p}, {att.macs} MACs ({att.p} x {att.lanes})")
        return (f"moevit_accel for {self.network.name}: linear {lin.arch} {f.rows}x{f.cols}{steps} ({f.macs} MACs, "
                f"mac {lin.mac}){attention}, {mem.ports} AXI4 port(s) of {mem.data_width} bits, A buffer "
                f"{f.a_rows} x {f.a_k}, weight tiles of {f.k_max} rows, {len(f.formats)} epilogue format(s)")


def derive(cfg: MoevitAccelConfig, model) -> AccelFacts:
    """The derived facts of ``cfg``; ValueError naming the field for an impossible combination."""
    from hw.arith.fixed import Overflow, Rounding
    from hw.vit.epilogue import EpilogueFormat
    from hw.vit.rows import params_bytes

    from ..config.moevit import matmul_specs

    specs = matmul_specs(model)
    unified = cfg.attention is not None and cfg.attention.engine == "unified"
    # The unified attention's matmuls run on the linear engine too: their formats join the table, their
    # operands the operand width, their K (head_dim for Q K^T, tokens for A V) the buffers' K.
    weight_ops = linear_ops(model)  # the matmuls whose B operand is a weight tile
    ops = weight_ops + (UNIFIED_ATTENTION_OPS if unified else ())
    ks = _k_of_ops(model) | ({"qk": model.head_dim, "av": model.tokens} if unified else {})
    k_need = max(ks.values())
    largest = max(ks, key=ks.get)
    act = model.format("activation")
    act_bytes = container_bytes(act)
    a_formats = {specs[op].a for op in ops}
    b_formats = {specs[op].b for op in weight_ops} | {specs[op].bias for op in weight_ops if specs[op].bias}
    operand_width = max(f.width + (0 if f.signed else 1) for f in a_formats | {specs[op].b for op in ops})
    w_bytes = max(container_bytes(f) for f in b_formats)
    for op in ops:
        spec = specs[op]
        if spec.product_shift > 0:
            raise ValueError(
                f"model: formats.accumulator of {model.name} keeps {spec.acc.frac} fraction bits, fewer than the "
                f"{spec.a.frac + spec.b.frac} of a {op} product; the linear engine sums exact products "
                f"(allowed: accumulator.frac >= {spec.a.frac + spec.b.frac})")
        if container_bytes(spec.a) > act_bytes:
            raise ValueError(f"model: the {op} input format {spec.a.describe()} is wider than the activations' "
                             f"{act_bytes}-byte containers")
    # The geometry and the operand width are checked by kind: tpe (operands up to 32 bits).
    from pydantic import ValidationError

    from ..config.messages import format_validation_error

    k_max = cfg.buffers.k_max or k_need
    try:
        tpe_cfg = tpe.TpeConfig.model_validate(cfg.linear.tpe_data(operand_width=operand_width, k_max=k_max))
    except ValidationError as error:
        line = format_validation_error(error, tpe.TpeConfig, "linear")
        raise ValueError(line.replace("linear: ", "linear.", 1)) from None
    rows, cols = tpe_cfg.c_rows, tpe_cfg.cols
    steps = {"cube": tpe_cfg.depth, "adder_tree": tpe_cfg.k_tile}.get(tpe_cfg.arch, 1)
    beat_bytes = cfg.memory.data_width // 8
    beat_elems = beat_bytes // act_bytes
    step_key = {"cube": "depth", "adder_tree": "k_tile"}.get(tpe_cfg.arch)
    if steps > 1 and (steps % beat_elems if steps > beat_elems else beat_elems % steps):
        raise ValueError(f"linear.{step_key}: {steps} must divide, or be a multiple of, the {beat_elems} activations "
                         f"of a {cfg.memory.data_width}-bit beat")
    slice_bytes = cols * act_bytes
    if (slice_bytes % beat_bytes if slice_bytes >= beat_bytes else beat_bytes % slice_bytes):
        allowed = sorted({c for c in range(1, 65) if (c * act_bytes) % beat_bytes == 0
                          or (c * act_bytes < beat_bytes and beat_bytes % (c * act_bytes) == 0)})
        raise ValueError(f"linear.cols: {cols} columns of {act_bytes}-byte activations do not fill whole "
                         f"{cfg.memory.data_width}-bit beats nor a power-of-two part of one; allowed: "
                         f"{', '.join(map(str, allowed[:12]))}, ...")
    prob = model.units["softmax"].output.format
    if prob.width > 8 * act_bytes:
        raise ValueError(f"model: nonlinear.softmax.output {prob.describe()} is wider than the activations' "
                         f"{act_bytes}-byte containers, which the SOFTMAX engine writes the probabilities into "
                         f"(allowed: at most {8 * act_bytes} bits)")
    ln = model.units["layernorm"]
    try:
        params = params_bytes(ln.gamma.format, ln.beta.format)
    except ValueError as error:
        raise ValueError(f"model: formats.norm: {error}") from None
    if k_max < k_need:
        raise ValueError(f"buffers.k_max: {k_max} is below the model's largest K ({k_need}, {largest}); "
                         f"allowed: at least {k_need}")
    a_k = cfg.buffers.a_k or k_need
    if a_k < k_need:
        raise ValueError(f"buffers.a_k: {a_k} is below the model's largest K ({k_need}, {largest}); "
                         f"allowed: at least {k_need}")
    a_rows = cfg.buffers.a_rows or model.tokens
    w_row_beats = -(-cols * w_bytes // beat_bytes)
    if (k_max + 1) * w_row_beats > MAX_TILE_BEATS:
        raise ValueError(f"buffers.k_max: {k_max} rows of {w_row_beats} beats make a weight tile of more than "
                         f"{MAX_TILE_BEATS} beats; allowed: a smaller k_max or a wider memory.data_width")
    formats, op_format = [], {}
    code, scale_fmt = model.score_scale()
    for op in ops:
        spec = specs[op]
        # Q K^T: the golden's scale_scores (the accumulator times the scale code) in the epilogue
        scale = (code, scale_fmt.frac) if op == "qk" else None
        key = (spec.a, spec.b, spec.acc, spec.out, Rounding(spec.rounding), Overflow(spec.overflow), spec.bias, scale)
        for index, existing in enumerate(formats):
            if (existing.a, existing.b, existing.acc, existing.out, existing.rounding, existing.overflow,
                    existing.bias, existing.scale) == key:
                formats[index] = EpilogueFormat(existing.names + (op,), *key)
                op_format[op] = index
                break
        else:
            op_format[op] = len(formats)
            formats.append(EpilogueFormat((op,), *key))
    acc_width = accumulator_width(operand_width, True, k_max)
    if acc_width > tpe.MAX_ACC_WIDTH:
        raise ValueError(f"buffers.k_max: {k_max} with {operand_width}-bit operands needs {acc_width}-bit "
                         f"accumulators; allowed: at most {tpe.MAX_ACC_WIDTH}")
    attention = _attention_facts(cfg, model, specs, beat_elems) if cfg.attention is not None else None
    return AccelFacts(act=act, act_bytes=act_bytes, w_bytes=w_bytes, operand_width=operand_width, rows=rows, cols=cols,
                      steps=steps, a_rows=a_rows, a_k=a_k, k_max=k_max, acc_width=acc_width, formats=tuple(formats),
                      params_bytes=params, op_format=op_format, k_of_op=ks, attention=attention)


def _attention_facts(cfg: MoevitAccelConfig, model, specs: dict, beat_elems: int) -> AttentionFacts:
    att = cfg.attention
    if att.engine == "unified":  # the linear engine's checks (derive) cover its matmuls
        if {"p", "macs"} & att.model_fields_set:
            raise ValueError("attention.p, attention.macs: the unified attention runs on the linear engine's MACs; "
                             "allowed: only with engine: dedicated")
        return AttentionFacts(engine="unified", p=None, macs=None, lanes=None, t_max=model.tokens,
                              hd_max=model.head_dim)
    macs = att.macs if att.macs is not None else att.p * beat_elems
    lanes = macs // att.p
    if macs % att.p or lanes & (lanes - 1):
        allowed = ", ".join(str(att.p << k) for k in range(6))
        raise ValueError(f"attention.macs: {macs} is not p = {att.p} times a power of two; allowed: {allowed}, ...")
    for name in ("qk", "av"):
        spec = specs[name]
        if spec.product_shift > 0:
            raise ValueError(
                f"model: formats.accumulator of {model.name} keeps {spec.acc.frac} fraction bits, fewer than the "
                f"{spec.a.frac + spec.b.frac} of a {name} product; the attention engine sums exact products "
                f"(allowed: accumulator.frac >= {spec.a.frac + spec.b.frac})")
    return AttentionFacts(engine=att.engine, p=att.p, macs=macs, lanes=lanes, t_max=model.tokens,
                          hd_max=model.head_dim)


def attention_engine(model, facts: AttentionFacts, *, addr_width: int, data_width: int, act_bytes: int):
    """The dedicated attention engine (:class:`hw.vit.attention.AttentionEngine`) for ``model``'s formats: ``Q K^T``
    and ``A V`` as the golden's matmul specs ``qk`` and ``av``, the scale code in the weight format, the model's
    softmax unit."""
    from hw.arith.fixed import Overflow, Rounding
    from hw.vit.attention import AttentionEngine
    from hw.vit.epilogue import EpilogueFormat

    from ..config.moevit import matmul_specs
    from . import softmax as softmax_kind

    specs = matmul_specs(model)

    def epilogue(spec):
        return EpilogueFormat((spec.name,), spec.a, spec.b, spec.acc, spec.out, Rounding(spec.rounding),
                              Overflow(spec.overflow))

    return AttentionEngine(addr_width=addr_width, data_width=data_width, act_bytes=act_bytes, p=facts.p,
                           macs=facts.macs, t_max=facts.t_max, hd_max=facts.hd_max, qk=epilogue(specs["qk"]),
                           av=epilogue(specs["av"]), scale=model.format("weight"),
                           softmax=softmax_kind.spec(model.units["softmax"]))


def build(cfg: MoevitAccelConfig):
    """The ``hw`` component for ``cfg``."""
    from hw.arith.fixed import Overflow, Rounding
    from hw.nonlinear.gate import GateSpec
    from hw.vit.accel import MoevitAccel

    from . import gelu as gelu_kind
    from . import layernorm as layernorm_kind
    from . import softmax as softmax_kind

    f, mem, net = cfg.facts, cfg.memory, cfg.network
    engine = tpe.build(cfg.tpe_config())
    moe = {}
    if has_moe(net):
        moe = {"gate": GateSpec(softmax_kind.spec(net.units["gate"]), net.top_k), "tokens": net.tokens}
    attention = None
    if f.attention is not None and f.attention.engine == "dedicated":  # unified: the linear engine's B^T operands
        attention = attention_engine(net, f.attention, addr_width=mem.addr_width, data_width=mem.data_width,
                                     act_bytes=f.act_bytes)
    return MoevitAccel(
        name=cfg.name, config_id=int(cfg.config_hash()[:4], 16), engine=engine, addr_width=mem.addr_width,
        data_width=mem.data_width, ports=mem.ports, max_burst=mem.max_burst, max_reads=mem.max_reads,
        max_writes=mem.max_writes, read_queue=mem.read_queue, act=f.act, act_bytes=f.act_bytes, w_bytes=f.w_bytes,
        rounding=Rounding(net.rounding), overflow=Overflow(net.overflow), a_rows=f.a_rows, a_k=f.a_k, k_max=f.k_max,
        formats=list(f.formats), gelu=gelu_kind.spec(net.units["gelu"]),
        layernorm=layernorm_kind.spec(net.units["layernorm"]), softmax=softmax_kind.spec(net.units["softmax"]),
        version=VERSION, attention=attention,
        unified_attention=f.attention is not None and f.attention.engine == "unified",
        attention_limits=(f.attention.t_max, f.attention.hd_max) if f.attention is not None else None, **moe)


def parameters(cfg: MoevitAccelConfig, component) -> dict:
    """Derived facts for the manifest: engines, buffers, formats, client-to-port map."""
    return component.parameters


def files(cfg: MoevitAccelConfig, component) -> dict:
    """The register map beside the Verilog: its SystemRDL source and the C header made from it."""
    from hw.vit.regmap import c_header

    return {f"{cfg.name}_regs.rdl": component.rdl, f"{cfg.name}_regs.h": c_header(component.rdl_node)}


def manifest_sections(cfg: MoevitAccelConfig, component, fault_sites) -> dict:
    """The accelerator's own manifest entries: ``registers`` (the register map) and ``descriptors``."""
    from hw.vit import descriptors

    return {"registers": component.register_map.to_json(), "descriptors": descriptors.table(),
            "axi": component.axi_ports}
