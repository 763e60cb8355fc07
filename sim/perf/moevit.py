"""Analytic performance model of a ``kind: moevit`` network on a ``kind: moevit_hw`` accelerator.

Per operator of one image: MACs, bytes moved to and from memory (each input, weight and output
once: the compulsory traffic, feature maps round-tripping through memory between operators as in
Edge-MoE), the roofline lower bound ``max(MACs / MACs per cycle of its engine, bytes / bytes per
cycle)``, and Edge-MoE's own schedule: the trip counts of its pipelined loops at II = 1 (weight
loads not counted), derived from its HLS code:

* patch embedding: ``C * H * ceil(W / pixels per port word) * ceil(dim / features per port word)``;
* linear array (``a x a`` MACs): ``tokens * ceil(out / a) * ceil(in / a)``; experts run on the
  tokens routed to them, ``tokens * top_k`` rows in all;
* attention engines (``p`` query rows x ``f`` features): one key (value) row per step over
  query blocks of ``p`` with skewed loads: ``(floor((T + p - 1) / p) * T + (T + p - 1) mod p) *
  ceil(dim / f)`` steps, all heads at once (``f`` features of one head per step);
* LayerNorm, the gate and the residual adds have their own units; the reference estimate
  ("about 427K cycles per layer, 5.20M per image") counts the matmul units only, so they are
  reported beside it (``other_cycles``), not in it.
"""

import math
from dataclasses import asdict, dataclass

from gen.config.moevit import MoevitConfig, MoevitHwConfig


@dataclass(frozen=True)
class Operator:
    """One operator of one image."""

    name: str  # "layer3.qkv", "patch_embed", ...
    kind: str  # "qkv", "qk", ... (the name without the layer)
    engine: str  # linear | attention | gate | patch_embed | layernorm | add | host
    macs: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    elements: int = 0  # elements an element-wise unit processes (layernorm, add)
    rows: int = 0  # a linear operator's input rows (tokens; tokens * top_k for the experts) ...
    fan_in: int = 0  # ... and its input and output features
    fan_out: int = 0

    @property
    def bytes(self) -> int:
        return self.weight_bytes + self.input_bytes + self.output_bytes


def _bytes(fmt, count: int) -> int:
    return count * math.ceil(fmt.width / 8)


def operators(cfg: MoevitConfig, task: str | None = None, include_heads: bool = False) -> list[Operator]:
    """The operators of one image in execution order (``task``: whose gate and head; default the first).

    MoE weight traffic counts every expert (each active expert is fetched once per layer, and with
    ``tokens * top_k`` routings of ``experts`` experts they are all active in practice).
    """
    task = task or cfg.task_names[0]
    a, w, pix = cfg.format("activation"), cfg.format("weight"), cfg.format("pixel")
    pw, ab, bb, nb = cfg.format("patch_weight"), cfg.format("attn_bias"), cfg.format("bias"), cfg.format("norm")
    t, d, hd, e, eh, k = cfg.tokens, cfg.dim, cfg.head_dim, cfg.experts, cfg.expert_hidden, cfg.top_k
    ops: list[Operator] = []

    def linear(name, kind, rows, fan_in, fan_out, bias_fmt, engine="linear", weight_count=None):
        weights = _bytes(w, fan_in * fan_out if weight_count is None else weight_count)
        if bias_fmt is not None:
            weights += _bytes(bias_fmt, fan_out if weight_count is None else weight_count // fan_in)
        ops.append(Operator(name, kind, engine, rows * fan_in * fan_out, weights, _bytes(a, rows * fan_in),
                            _bytes(a, rows * fan_out), rows=rows, fan_in=fan_in, fan_out=fan_out))

    def layernorm(name, kind):
        ops.append(Operator(name, kind, "layernorm", 0, _bytes(nb, 2 * d), _bytes(a, t * d), _bytes(a, t * d),
                            elements=t * d))

    def add(name, kind):
        ops.append(Operator(name, kind, "add", 0, 0, _bytes(a, 2 * t * d), _bytes(a, t * d), elements=t * d))

    ops.append(Operator("patch_embed", "patch_embed", "patch_embed", cfg.patches * cfg.patch_inputs * d,
                        _bytes(pw, cfg.patch_inputs * d) + _bytes(bb, d) + _bytes(a, t * d),  # + pos, cls
                        _bytes(pix, cfg.channels * cfg.height * cfg.width), _bytes(a, t * d)))
    for layer in range(cfg.layers):
        p = f"layer{layer}."
        layernorm(p + "ln1", "ln1")
        linear(p + "qkv", "qkv", t, d, 3 * d, ab)
        ops.append(Operator(p + "qk", "qk", "attention", cfg.heads * t * t * hd, 0, _bytes(a, 2 * t * d),
                            _bytes(a, cfg.heads * t * t)))
        ops.append(Operator(p + "av", "av", "attention", cfg.heads * t * t * hd, 0,
                            _bytes(a, cfg.heads * t * t + t * d), _bytes(a, t * d)))
        linear(p + "proj", "proj", t, d, d, ab)
        add(p + "add1", "add1")
        layernorm(p + "ln2", "ln2")
        if cfg.is_moe(layer):
            linear(p + "gate", "gate", t, d, e, None, engine="gate")
            linear(p + "expert_fc1", "expert_fc1", t * k, d, eh, bb, weight_count=e * d * eh)
            linear(p + "expert_fc2", "expert_fc2", t * k, eh, d, bb, weight_count=e * eh * d)
        else:
            linear(p + "fc1", "fc1", t, d, cfg.hidden, bb)
            linear(p + "fc2", "fc2", t, cfg.hidden, d, bb)
        add(p + "add2", "add2")
    layernorm("norm", "norm")
    if include_heads:
        linear(f"head.{task}", "head", cfg.patches, d, cfg.task(task).outputs * cfg.patch ** 2, bb, engine="host")
    return ops


def _linear_side(hw: MoevitHwConfig) -> int:
    side = math.isqrt(hw.linear.macs)
    return side if side * side == hw.linear.macs else hw.linear.macs  # not square: one row of MACs


def edge_moe_cycles(op: Operator, cfg: MoevitConfig, hw: MoevitHwConfig) -> int:
    """Cycles of ``op`` in Edge-MoE's schedule (pipelined loops at II = 1) on ``hw``."""
    feature_block = max(1, hw.port_bits // cfg.format("activation").width)
    t, d = cfg.tokens, cfg.dim
    if op.engine == "patch_embed":  # per image row and channel: one port word of pixels per feature block
        pixels = max(1, hw.port_bits // cfg.format("pixel").width)
        return cfg.channels * cfg.height * math.ceil(cfg.width / pixels) * math.ceil(d / feature_block)
    if op.engine == "linear":
        side = _linear_side(hw)
        return op.rows * math.ceil(op.fan_out / (hw.linear.macs // side)) * math.ceil(op.fan_in / side)
    if op.engine == "attention":
        p = hw.attention_parallel
        per_step = max(1, hw.attention.macs // p)  # features of one key row per step
        limit = t + p - 1
        return (limit // p * t + limit % p) * math.ceil(d / per_step)
    if op.engine == "gate":
        return math.ceil(op.macs / hw.gate.macs)
    if op.engine == "layernorm":
        return math.ceil(op.elements / hw.layernorm_elements)
    if op.engine == "add":
        return math.ceil(op.elements / feature_block)
    return 0


def roofline_cycles(op: Operator, cfg: MoevitConfig, hw: MoevitHwConfig) -> tuple[float, float]:
    """(compute-bound, memory-bound) cycles of ``op``: MACs over its engine's MACs per cycle (elements over
    the unit's rate for LayerNorm, one port word of features per cycle for adds), bytes over the ports'
    bytes per cycle."""
    feature_block = max(1, hw.port_bits // cfg.format("activation").width)
    rate = {"linear": hw.linear.macs, "attention": hw.attention.macs, "gate": hw.gate.macs,
            "patch_embed": hw.patch_embed.macs, "host": hw.linear.macs}.get(op.engine)
    if rate is not None:
        compute = op.macs / rate
    elif op.engine == "layernorm":
        compute = op.elements / hw.layernorm_elements
    else:
        compute = op.elements / feature_block
    return compute, op.bytes / hw.bytes_per_cycle


#: Engines of the matmul units whose loop counts make up the reference's Edge-MoE estimate.
SCHEDULE_ENGINES = ("patch_embed", "linear", "attention")


def analyse(cfg: MoevitConfig, hw: MoevitHwConfig, task: str | None = None) -> dict:
    """The whole model: per operator and per operator kind (summed over layers), and totals."""
    rows = []
    for op in operators(cfg, task):
        compute, memory = roofline_cycles(op, cfg, hw)
        rows.append({**asdict(op), "bytes": op.bytes, "compute_cycles": compute, "memory_cycles": memory,
                     "roofline_cycles": max(compute, memory), "bound": "compute" if compute >= memory else "memory",
                     "edge_moe_cycles": edge_moe_cycles(op, cfg, hw)})
    kinds: dict[str, dict] = {}
    for row in rows:
        group = kinds.setdefault(row["kind"], {"kind": row["kind"], "engine": row["engine"], "count": 0, "macs": 0,
                                               "bytes": 0, "weight_bytes": 0, "compute_cycles": 0.0,
                                               "memory_cycles": 0.0, "roofline_cycles": 0.0, "edge_moe_cycles": 0})
        group["count"] += 1
        for key in ("macs", "bytes", "weight_bytes", "compute_cycles", "memory_cycles", "roofline_cycles",
                    "edge_moe_cycles"):
            group[key] += row[key]
    schedule = sum(r["edge_moe_cycles"] for r in rows if r["engine"] in SCHEDULE_ENGINES)
    other = sum(r["edge_moe_cycles"] for r in rows if r["engine"] not in SCHEDULE_ENGINES)
    layer_schedule = [sum(r["edge_moe_cycles"] for r in rows
                          if r["name"].startswith(f"layer{layer}.") and r["engine"] in SCHEDULE_ENGINES)
                      for layer in range(cfg.layers)]
    attention = sum(r["edge_moe_cycles"] for r in rows if r["engine"] == "attention")
    roofline = sum(r["roofline_cycles"] for r in rows)
    mhz = hw.clock_mhz
    totals = {
        "macs": sum(r["macs"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
        "weight_bytes": sum(r["weight_bytes"] for r in rows),
        "roofline_cycles": roofline,
        "roofline_ms": roofline / (mhz * 1e3),
        "edge_moe_cycles": schedule,
        "edge_moe_ms": schedule / (mhz * 1e3),
        "edge_moe_cycles_per_layer": sum(layer_schedule) / max(1, cfg.layers),
        "edge_moe_attention_share": attention / schedule if schedule else 0.0,
        "other_cycles": other,
        "mac_units": hw.linear.macs * hw.linear.count + hw.attention.macs * hw.attention.count
                     + hw.gate.macs * hw.gate.count,
    }
    return {"config": cfg.name, "hardware": hw.name, "task": task or cfg.task_names[0], "clock_mhz": mhz,
            "bytes_per_cycle": hw.bytes_per_cycle, "operators": rows, "by_kind": list(kinds.values()),
            "totals": totals}
