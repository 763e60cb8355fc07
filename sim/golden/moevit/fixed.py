"""Bit-accurate fixed-point model of a ``kind: moevit`` network, operator by operator.

Every operator takes and returns integer codes (int64 arrays) of stated formats, so an
accelerator can be checked against each one alone, and :func:`forward` chains them. Every
quantisation goes through :mod:`hw.arith.fixed`; the nonlinear operators call the nonlinear
units' golden models (``sim/golden/{softmax,gelu,layernorm}.py``) with specs built from the
config's ``nonlinear`` section, or, with ``approx`` ``"exact"``, the exact function of the input
codes' values rounded once into the unit's output format.

Matmuls (:class:`MatmulSpec`, one per matmul of the network, :func:`matmul_specs`): the
accumulator starts at the bias (shifted to the accumulator's fraction bits); each product
``a * b`` is requantised to the accumulator's fraction bits with ``rounding`` (exact when the
accumulator has at least ``a.frac + b.frac`` fraction bits) and added; the finished sum is fitted to
the accumulator's width by ``overflow`` (for ``wrap`` the same as wrapping after every add); the
output is the accumulator requantised to ``out`` with ``rounding`` and ``overflow``. This is HLS
``ap_fixed`` ``acc += a * b`` with an accumulator of the ``accumulator`` format, Edge-MoE's
scheme. Conversions between formats (into a unit's input, out of its output) and residual adds
use the config's ``rounding`` and ``overflow``.
"""

from dataclasses import dataclass

import numpy as np

from gen.config.moevit import MatmulSpec, MoevitConfig, matmul_specs  # noqa: F401 -- re-exported
from gen.errors import ConfigError
from hw.arith.fixed import MAX_INTERMEDIATE_BITS, FixedFormat, Overflow, Rounding, fit, requantize, shift_round

from .. import gelu as gelu_golden
from .. import layernorm as layernorm_golden
from .. import softmax as softmax_golden
from ..intmath import magnitude, multiply
from .reference import patchify, unpatchify

#: The nonlinear functions ``approx`` chooses a method for, and each one's hardware method names.
FUNCTIONS = ("softmax", "gate", "gelu", "layernorm")
HARDWARE_METHODS = {"softmax": ("online",), "gate": ("online",), "gelu": ("table", "poly", "pwl"),
                    "layernorm": ("onepass",)}
EXACT = "exact"


# ------------------------------------------------------------------ matmuls

def _checked(codes, fmt: FixedFormat, what: str) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int64)
    if codes.size and (codes.min() < fmt.min_code or codes.max() > fmt.max_code):
        raise ValueError(f"{what}: codes outside {fmt.describe()} [{fmt.min_code}, {fmt.max_code}]")
    return codes


#: Integers below ``2**53`` in magnitude are exact in float64: a float matmul whose every product and
#: partial sum stays below it is exact in any summation order.
FLOAT_EXACT_BITS = 53


def product_sum(a: np.ndarray, b: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """``sum_k round(a[..., i, k] * b[..., k, j] * 2**-shift)`` exactly (int64, or Python ints when wider).

    The arithmetic is chosen from the operands' actual magnitudes, which bound every product and sum: exact products
    (``shift <= 0``) are one matmul, in float64 when every partial sum stays below ``2**53`` (exact;
    numpy's einsum loops, twice as fast as an int64 matmul, and unlike BLAS they start no threads to
    fight over a loaded machine's cores), else in int64; rounded products are summed over ``k`` in
    int64 chunks; Python integers where int64 could overflow (two 32-bit features at full scale).
    """
    k = a.shape[-1]
    bound = magnitude(a) * magnitude(b) * max(1, k)  # |any partial sum of products| <= bound
    if shift <= 0:
        if bound < (1 << FLOAT_EXACT_BITS):
            exact = np.einsum("...ik,...kj->...ij", a.astype(np.float64), b.astype(np.float64))
            return exact.astype(np.int64) << -shift
        if bound << -shift < (1 << MAX_INTERMEDIATE_BITS):
            return np.matmul(a, b) << -shift
    elif bound < (1 << MAX_INTERMEDIATE_BITS):
        return _rounded_product_sum(a, b, shift, rounding)
    return _rounded_product_sum(a.astype(object), b.astype(object), shift, rounding)


#: Elements of one chunk of ``a[..., :, chunk, None] * b[..., None, chunk, :]`` (bounds its memory).
CHUNK_ELEMENTS = 1 << 21


def _rounded_product_sum(a: np.ndarray, b: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """``sum_k shift_round(a[..., i, k] * b[..., k, j], shift)``, ``k`` summed a chunk at a time."""
    k = a.shape[-1]
    per_k = max(1, int(np.prod(np.broadcast_shapes(a.shape[:-1], b.shape[:-2] + (1,)))) * b.shape[-1])
    step = max(1, min(k, CHUNK_ELEMENTS // per_k))
    total = None
    for start in range(0, k, step):
        chunk = slice(start, start + step)
        terms = shift_round(a[..., :, chunk, None] * b[..., None, chunk, :], shift, rounding)
        term = terms.sum(axis=-2)
        total = term if total is None else total + term
    return total


def accumulate(spec: MatmulSpec, a, b, bias=None) -> np.ndarray:
    """The finished accumulator codes (``spec.acc``) of ``a @ b + bias``: ``a`` (..., n, k), ``b`` (..., k, m)."""
    a = _checked(a, spec.a, f"{spec.name}: a")
    b = _checked(b, spec.b, f"{spec.name}: b")
    total = product_sum(a, b, spec.product_shift, spec.rounding)
    if bias is not None:
        bias = _checked(bias, spec.bias, f"{spec.name}: bias")
        total = total + shift_round(bias, spec.bias.frac - spec.acc.frac, spec.rounding)
    return fit(total, spec.acc, spec.overflow)


def matmul(spec: MatmulSpec, a, b, bias=None) -> np.ndarray:
    """Output codes (``spec.out``) of ``a @ b + bias`` (integer codes in, integer codes out)."""
    return np.asarray(requantize(accumulate(spec, a, b, bias), spec.acc.frac, spec.out, spec.rounding,
                                 spec.overflow), dtype=np.int64)


# --------------------------------------------------------- element-wise steps

def convert(codes, src: FixedFormat, dst: FixedFormat, cfg: MoevitConfig) -> np.ndarray:
    """Codes of ``src`` expressed in ``dst`` with the config's rounding and overflow."""
    return np.asarray(requantize(np.asarray(codes, dtype=np.int64), src.frac, dst, Rounding(cfg.rounding),
                                 Overflow(cfg.overflow)), dtype=np.int64)


def add(x, y, cfg: MoevitConfig) -> np.ndarray:
    """Residual add of two feature tensors (exact sum, fitted by the config's overflow)."""
    act = cfg.format("activation")
    return np.asarray(fit(np.asarray(x, dtype=np.int64) + np.asarray(y, dtype=np.int64), act,
                          Overflow(cfg.overflow)), dtype=np.int64)


def quantize(values, fmt: FixedFormat) -> np.ndarray:
    """Host-side conversion of real values (images, weights): round half to even, saturate."""
    return np.asarray(fmt.from_float(np.asarray(values, dtype=np.float64)), dtype=np.int64)


# ------------------------------------------------------------ nonlinear units

@dataclass(frozen=True)
class Units:
    """The unit specs and methods one forward pass uses (see :func:`units`)."""

    softmax: object  # SoftmaxSpec
    gate: object  # SoftmaxSpec (gate)
    gelu: object  # GeluSpec
    layernorm: object  # LayerNormSpec
    eps: float
    methods: dict


def _check_approx(approx: dict | None) -> dict:
    approx = dict(approx or {})
    for function, method in approx.items():
        if function not in FUNCTIONS:
            raise ConfigError(f"approx: {function!r}; allowed: {', '.join(FUNCTIONS)}")
        allowed = (EXACT,) + HARDWARE_METHODS[function]
        if method not in allowed:
            raise ConfigError(f"approx.{function}: {method!r}; allowed: {', '.join(allowed)}")
    return approx


def units(cfg: MoevitConfig, approx: dict | None = None) -> Units:
    """Specs of the nonlinear units with the methods of ``approx`` (default: the config's hardware methods)."""
    approx = _check_approx(approx)
    return _units(cfg, tuple(sorted(approx.items())))


def _units(cfg: MoevitConfig, items: tuple) -> Units:
    """:class:`Units` of ``approx`` items, built once per config (unit specs precompute tables)."""
    from gen.kinds import gelu as gelu_kind
    from gen.kinds import layernorm as layernorm_kind
    from gen.kinds import softmax as softmax_kind

    cache = cfg.cache.setdefault("units", {})
    if items not in cache:
        approx = dict(items)
        configured = cfg.units["gelu"].method
        methods = {"softmax": approx.get("softmax", "online"), "gate": approx.get("gate", "online"),
                   "gelu": approx.get("gelu", configured), "layernorm": approx.get("layernorm", "onepass")}
        gelu_method = methods["gelu"] if methods["gelu"] != EXACT else configured
        cache[items] = Units(softmax=softmax_kind.spec(cfg.units["softmax"]), gate=softmax_kind.spec(cfg.units["gate"]),
                             gelu=gelu_kind.spec(cfg.gelu_unit(gelu_method)),
                             layernorm=layernorm_kind.spec(cfg.units["layernorm"]), eps=cfg.units["layernorm"].eps,
                             methods=methods)
    return cache[items]


def _exact_out(values: np.ndarray, spec) -> np.ndarray:
    """Real ``values`` rounded once into the unit's output format with its rounding and overflow."""
    return np.asarray(spec.output.from_float(values, spec.rounding, spec.overflow), dtype=np.int64)


def _exact_softmax(spec, rows: np.ndarray) -> np.ndarray:
    """The exact softmax of each row's input values, rounded once into the unit's output format."""
    values = spec.input.to_float(rows)
    e = np.exp(values - values.max(axis=-1, keepdims=True))
    return _exact_out(e / e.sum(axis=-1, keepdims=True), spec)


def softmax(codes, u: Units, method: str | None = None) -> np.ndarray:
    """Softmax over the last axis of codes of the softmax unit's input; codes of its output."""
    spec, method = u.softmax, method or u.methods["softmax"]
    x = _checked(codes, spec.input, "softmax")
    if method == EXACT:
        return _exact_softmax(spec, x)
    return softmax_golden.softmax(spec, x)


def gate(codes, u: Units, top_k: int, method: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MoE gate of logits (codes of the gate unit's input, last axis the experts):
    ``(experts, scores)``, each ``(..., top_k)``, best first; scores are codes of the gate's output."""
    spec, method = u.gate, method or u.methods["gate"]
    x = _checked(codes, spec.input, "gate")
    if method == EXACT:
        pairs = softmax_golden.top_k_pairs(_exact_softmax(spec, x), top_k)
    else:
        pairs = softmax_golden.gate(spec, top_k, x)
    return pairs[..., 0], pairs[..., 1]


def gelu(codes, u: Units, method: str | None = None) -> np.ndarray:
    """GELU of codes of the GELU unit's input; codes of its output."""
    spec, method = u.gelu, method or u.methods["gelu"]
    x = _checked(codes, spec.input, "gelu")
    if method == EXACT:
        return _exact_out(gelu_golden.gelu_float(spec, x.ravel()), spec).reshape(x.shape)
    return gelu_golden.gelu(spec, x.ravel()).reshape(x.shape)


def layernorm(codes, gamma, beta, u: Units, method: str | None = None) -> np.ndarray:
    """LayerNorm over the last axis of codes of the LayerNorm unit's input, ``gamma``/``beta`` codes of
    its parameter formats; codes of its output."""
    spec, method = u.layernorm, method or u.methods["layernorm"]
    x = _checked(codes, spec.input, "layernorm")
    gamma = _checked(gamma, spec.gamma, "layernorm gamma")
    beta = _checked(beta, spec.beta, "layernorm beta")
    if method == EXACT:
        values = spec.input.to_float(x)
        mean = values.mean(axis=-1, keepdims=True)
        var = ((values - mean) ** 2).mean(axis=-1, keepdims=True)
        exact = (values - mean) / np.sqrt(var + u.eps) * spec.gamma.to_float(gamma) + spec.beta.to_float(beta)
        return _exact_out(exact, spec)
    return layernorm_golden.layernorm(spec, x, gamma, beta)


# ------------------------------------------------- operators on feature codes

def feature_layernorm(x, gamma, beta, cfg: MoevitConfig, u: Units) -> np.ndarray:
    """LayerNorm of features: into the unit's input format, the unit, back to features."""
    spec, act = u.layernorm, cfg.format("activation")
    return convert(layernorm(convert(x, act, spec.input, cfg), gamma, beta, u), spec.output, act, cfg)


def feature_softmax(x, cfg: MoevitConfig, u: Units) -> np.ndarray:
    """Softmax of feature rows (attention scores): into the unit's input format, the unit; the probabilities
    stay codes of the unit's output format."""
    return softmax(convert(x, cfg.format("activation"), u.softmax.input, cfg), u)


def feature_gelu(x, cfg: MoevitConfig, u: Units) -> np.ndarray:
    """GELU of features: into the unit's input format, the unit, back to features."""
    spec, act = u.gelu, cfg.format("activation")
    return convert(gelu(convert(x, act, spec.input, cfg), u), spec.output, act, cfg)


def score_scale(cfg: MoevitConfig) -> tuple[int, FixedFormat]:
    """The attention scale ``1/sqrt(head_dim)`` as a code of the weight format (:meth:`MoevitConfig.score_scale`)."""
    return cfg.score_scale()


def scale_scores(raw, cfg: MoevitConfig, code: int | None = None) -> np.ndarray:
    """Scaled attention scores (features) from the ``qk`` accumulator codes: ``raw * scale`` requantised
    (``code``: the scale as a weight-format code; default :func:`score_scale`)."""
    acc, act = cfg.format("accumulator"), cfg.format("activation")
    default, fmt = score_scale(cfg)
    code = default if code is None else code
    product = multiply(raw, code)  # int64 when the scores' magnitudes allow it, else Python ints
    return np.asarray(requantize(product, acc.frac + fmt.frac, act, Rounding(cfg.rounding), Overflow(cfg.overflow)),
                      dtype=np.int64)


def attention_scores(q, k, cfg: MoevitConfig, specs: dict, scale: int | None = None) -> np.ndarray:
    """Scaled scores ``q k^T / sqrt(hd)`` (features) of per-head q, k codes ``(..., T, hd)`` (``scale``: another
    scale code than :func:`score_scale`)."""
    return scale_scores(accumulate(specs["qk"], q, np.swapaxes(k, -1, -2)), cfg, scale)


def head_attention(q, k, v, cfg: MoevitConfig, u: Units, specs: dict,
                   scale: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One head (or a batch of heads) of per-head q, k, v codes ``(..., T, hd)``: ``(scores, probabilities, out)``
    -- the scaled scores (features), the softmax of each score row converted to the unit's input (the unit's
    output codes) and ``probabilities @ v`` (features). What one ``ATTENTION`` descriptor computes (``scale``:
    its scale code, default :func:`score_scale`)."""
    scores = attention_scores(q, k, cfg, specs, scale)
    probabilities = feature_softmax(scores, cfg, u)
    return scores, probabilities, matmul(specs["av"], probabilities, v)


def attention(y, qkv_w, qkv_b, proj_w, proj_b, cfg: MoevitConfig, u: Units, specs: dict,
              trace: dict | None = None, prefix: str = "", hook=None) -> np.ndarray:
    """Multi-head self-attention of normalised features ``y`` (n, T, D): codes in, codes out."""
    n, t, d = y.shape
    h, hd = cfg.heads, cfg.head_dim
    qkv_out = _hooked(hook, prefix + "attn.qkv", "attention", matmul(specs["qkv"], y, qkv_w, qkv_b))
    q, k, v = qkv_out.reshape(n, t, 3, h, hd).transpose(2, 0, 3, 1, 4)  # each (n, h, T, hd)
    scores, probabilities, out = head_attention(q, k, v, cfg, u, specs)
    heads = out.transpose(0, 2, 1, 3).reshape(n, t, d)
    out = _hooked(hook, prefix + "attn.proj", "attention", matmul(specs["proj"], heads, proj_w, proj_b))
    _record(trace, prefix, qkv=qkv_out, scores=scores, probabilities=probabilities, heads=heads, proj=out)
    return out


def mlp(y, fc1_w, fc1_b, fc2_w, fc2_b, cfg: MoevitConfig, u: Units, specs: dict, trace: dict | None = None,
        prefix: str = "", hook=None, kind: str = "mlp") -> np.ndarray:
    """Dense MLP ``fc2(GELU(fc1(y)))`` of features (``kind`` names it to ``hook``: ``mlp`` or ``experts``)."""
    hidden = _hooked(hook, prefix + "fc1", kind, feature_gelu(matmul(specs["fc1"], y, fc1_w, fc1_b), cfg, u))
    out = _hooked(hook, prefix + "fc2", kind, matmul(specs["fc2"], hidden, fc2_w, fc2_b))
    _record(trace, prefix, fc1=hidden, fc2=out)
    return out


def route(y, gate_w, cfg: MoevitConfig, u: Units, specs: dict, hook=None,
          prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Gate of features ``y`` (tokens, D): ``(experts, scores)`` per token, each ``(tokens, top_k)``."""
    logits = _hooked(hook, prefix + "gate", "gate", matmul(specs["gate"], y, gate_w))
    return gate(convert(logits, cfg.format("activation"), u.gate.input, cfg), u, cfg.top_k)


def moe(y, gate_w, fc1_w, fc1_b, fc2_w, fc2_b, cfg: MoevitConfig, u: Units, specs: dict, hook=None,
        prefix: str = "") -> np.ndarray:
    """MoE of features ``y`` (..., D): expert by expert in index order (Edge-MoE's order), each expert's
    output (second bias included) times its score, requantised to features and accumulated."""
    shape = y.shape
    tokens = y.reshape(-1, shape[-1])
    chosen, scores = route(tokens, gate_w, cfg, u, specs, hook, prefix)
    act, score_fmt = cfg.format("activation"), u.gate.output
    out = np.zeros_like(tokens)
    for e in range(cfg.experts):
        rows, slot = np.nonzero(chosen == e)
        if rows.size == 0:
            continue
        expert = mlp(tokens[rows], fc1_w[e], fc1_b[e], fc2_w[e], fc2_b[e], cfg, u, specs, prefix=f"{prefix}expert{e}.",
                     hook=hook, kind="experts")
        weighted = requantize(expert * scores[rows, slot][:, None], act.frac + score_fmt.frac, act,
                              Rounding(cfg.rounding), Overflow(cfg.overflow))
        out[rows] = add(out[rows], weighted, cfg)
    return out.reshape(shape)


# ------------------------------------------------------------------ network

def _hooked(hook, name: str, kind: str, codes: np.ndarray) -> np.ndarray:
    """``hook(name, kind, codes)`` if a caller passed one (``sim/moevit/resilience.py`` flips and clips
    operator outputs there), else ``codes``. ``kind`` is the layer type: attention, mlp, experts, gate,
    layernorm."""
    return codes if hook is None else hook(name, kind, codes)


def _record(trace: dict | None, prefix: str, **tensors) -> None:
    """Keep named intermediate tensors when the caller asked for a trace."""
    if trace is not None:
        trace.update({prefix + name: value for name, value in tensors.items()})


def param_format(key: str, cfg: MoevitConfig) -> FixedFormat:
    """The format weight ``key`` is stored in on the accelerator (its tensor class of ``formats``)."""
    if key.startswith("patch_embed.w"):
        return cfg.format("patch_weight")
    if key in ("cls", "pos"):
        return cfg.format("embedding")
    if ".ln1." in key or ".ln2." in key or key.startswith("norm."):
        return cfg.format("norm")
    if ".attn." in key and key.endswith(".b"):
        return cfg.format("attn_bias")
    if key.endswith(".b"):
        return cfg.format("bias")
    return cfg.format("weight")


def quantize_params(params: dict, cfg: MoevitConfig) -> dict[str, np.ndarray]:
    """Every weight as codes of its format (:func:`param_format`)."""
    return {key: quantize(value, param_format(key, cfg)) for key, value in params.items()}


def embed(codes: dict, pixels, cfg: MoevitConfig, specs: dict, trace: dict | None = None) -> np.ndarray:
    """Patch embedding of pixel codes (n, C, H, W), cls token and position embedding: features (n, T, D)."""
    gathered = patchify(np.asarray(pixels, dtype=np.int64), cfg.patch)
    patches = matmul(specs["patch_embed"], gathered, codes["patch_embed.w"], codes["patch_embed.b"])
    emb, act = cfg.format("embedding"), cfg.format("activation")
    cls = np.broadcast_to(convert(codes["cls"], emb, act, cfg), (patches.shape[0], 1, cfg.dim))
    tokens = np.concatenate([cls, patches], axis=1)
    out = add(tokens, convert(codes["pos"], emb, act, cfg), cfg)
    _record(trace, "embed.", patches=gathered, tokens=tokens, out=out)
    return out


def block(codes: dict, x, layer: int, task: str, cfg: MoevitConfig, u: Units, specs: dict,
          trace: dict | None = None, hook=None) -> np.ndarray:
    """Transformer block ``layer`` on features."""
    p = f"blocks.{layer}."
    y = _hooked(hook, p + "ln1", "layernorm", feature_layernorm(x, codes[p + "ln1.g"], codes[p + "ln1.b"], cfg, u))
    h = add(x, attention(y, codes[p + "attn.qkv.w"], codes[p + "attn.qkv.b"], codes[p + "attn.proj.w"],
                         codes[p + "attn.proj.b"], cfg, u, specs, trace, p, hook), cfg)
    y2 = _hooked(hook, p + "ln2", "layernorm", feature_layernorm(h, codes[p + "ln2.g"], codes[p + "ln2.b"], cfg, u))
    if cfg.is_moe(layer):
        f = moe(y2, codes[p + f"moe.gate.{task}"], codes[p + "moe.fc1.w"], codes[p + "moe.fc1.b"],
                codes[p + "moe.fc2.w"], codes[p + "moe.fc2.b"], cfg, u, specs, hook, p + "moe.")
    else:
        f = mlp(y2, codes[p + "mlp.fc1.w"], codes[p + "mlp.fc1.b"], codes[p + "mlp.fc2.w"], codes[p + "mlp.fc2.b"],
                cfg, u, specs, trace, p, hook)
    out = add(h, f, cfg)
    _record(trace, p, input=x, ln1=y, attn=h, ln2=y2, ffn=f, out=out)
    return out


def forward_codes(codes: dict, pixels, task: str, cfg: MoevitConfig, approx: dict | None = None,
                  trace: dict | None = None, hook=None) -> np.ndarray:
    """Head output codes (features) of ``task``, ``(n, out, H, W)``, from weight codes and pixel codes.

    ``trace``, a dict, receives every operator's output by name (:func:`_record`): ``embed.patches``,
    ``embed.tokens``, ``embed.out``, per block ``blocks.<l>.`` + ``input``, ``ln1``, ``qkv``, ``scores``,
    ``probabilities``, ``heads``, ``proj``, ``attn``, ``ln2``, ``fc1``, ``fc2`` (dense), ``ffn``, ``out``;
    then ``norm`` and ``head`` (the head's token rows, before the pixel shuffle). The accelerator's
    checks compare against these. ``hook(name, kind, codes)``, if given, sees each operator output named
    by its weights (``blocks.<l>.attn.qkv``, ``.attn.proj``, ``.ln1``, ``.ln2``, ``.fc1``, ``.fc2`` (dense MLP),
    ``.moe.gate``, ``.moe.expert<e>.fc1``/``fc2``, ``norm``) and returns the codes used from there on.
    """
    cfg.task(task)
    u, specs = units(cfg, approx), matmul_specs(cfg)
    x = embed(codes, pixels, cfg, specs, trace)
    for layer in range(cfg.layers):
        x = block(codes, x, layer, task, cfg, u, specs, trace, hook)
    x = _hooked(hook, "norm", "layernorm", feature_layernorm(x, codes["norm.g"], codes["norm.b"], cfg, u))
    out = matmul(specs["head"], x[:, 1:], codes[f"heads.{task}.w"], codes[f"heads.{task}.b"])
    _record(trace, "", norm=x, head=out)
    return unpatchify(out, cfg.task(task).outputs, cfg.patch, cfg.grid)


def forward(params: dict, images, task: str, cfg: MoevitConfig, approx: dict | None = None) -> np.ndarray:
    """Outputs of ``task`` for float ``images`` (n, C, H, W) in [0, 1], ``(n, out, H, W)`` float64 decoded
    from the feature format. ``approx`` picks a method per nonlinear function (``softmax``, ``gate``,
    ``gelu``, ``layernorm``): ``"exact"`` or a hardware method (:data:`HARDWARE_METHODS`); the default
    is the config's units."""
    pixels = quantize(images, cfg.format("pixel"))
    out = forward_codes(quantize_params(params, cfg), pixels, task, cfg, approx)
    return cfg.format("activation").to_float(out)


def VARIANTS(cfg: MoevitConfig) -> dict[str, dict[str, str]]:  # noqa: N802 -- the name the contract gives
    """The ``approx`` settings ``npuforge eval`` reports, by name: every function exact, the config's
    hardware units, and each hardware approximation alone (the other functions exact)."""
    exact = {f: EXACT for f in FUNCTIONS}
    variants = {"fixed-exact": exact,
                "fixed-hw": {"softmax": "online", "gate": "online", "gelu": cfg.units["gelu"].method,
                             "layernorm": "onepass"}}
    for function in FUNCTIONS:
        for method in HARDWARE_METHODS[function]:
            name = f"fixed-{function}" if len(HARDWARE_METHODS[function]) == 1 else f"fixed-{function}-{method}"
            variants[name] = {**exact, function: method}
    return variants
