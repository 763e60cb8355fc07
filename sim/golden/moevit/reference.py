"""Float forward pass of a ``kind: moevit`` network (float64 numpy), and its MAC counts.

The network of docs/moevit.md: tokens = [cls] + patches (row-major), plus ``pos``; pre-norm
blocks ``h = x + attn(LN1(x))``, ``x = h + ffn(LN2(h))`` with ``ffn`` a MoE on MoE layers and a
dense MLP otherwise; final LayerNorm; per task a linear head on the patch tokens, pixel-shuffled
to ``(out, H, W)``. Each function below is one operator, usable on its own.
"""

import numpy as np
from scipy.special import erf

from gen.config.moevit import MoevitConfig

LN_EPS = 1e-6


def patchify(images: np.ndarray, patch: int) -> np.ndarray:
    """``(n, C, H, W)`` -> ``(n, patches, C*p*p)``: patches row-major, pixels in (channel, py, px) order."""
    n, c, h, w = images.shape
    gy, gx = h // patch, w // patch
    x = images.reshape(n, c, gy, patch, gx, patch).transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(n, gy * gx, c * patch * patch)


def unpatchify(tokens: np.ndarray, out: int, patch: int, grid: tuple[int, int]) -> np.ndarray:
    """Pixel shuffle ``(n, patches, out*p*p)`` -> ``(n, out, H, W)``: channel ``c*p*p + py*p + px`` of the
    token at ``(gy, gx)`` is pixel ``(c, gy*p + py, gx*p + px)``."""
    n = tokens.shape[0]
    gy, gx = grid
    x = tokens.reshape(n, gy, gx, out, patch, patch).transpose(0, 3, 1, 4, 2, 5)
    return x.reshape(n, out, gy * patch, gx * patch)


def layernorm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = LN_EPS) -> np.ndarray:
    """LayerNorm over the last axis (biased variance)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * g + b


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = x @ w
    return y if b is None else y + b


def attention(y: np.ndarray, qkv_w, qkv_b, proj_w, proj_b, heads: int) -> np.ndarray:
    """Multi-head self-attention of ``y`` (n, T, D): qkv columns q | k | v, heads contiguous."""
    n, t, d = y.shape
    hd = d // heads
    qkv = linear(y, qkv_w, qkv_b).reshape(n, t, 3, heads, hd).transpose(2, 0, 3, 1, 4)  # (3, n, h, T, hd)
    q, k, v = qkv
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd)
    out = softmax(scores) @ v  # (n, h, T, hd)
    return linear(out.transpose(0, 2, 1, 3).reshape(n, t, d), proj_w, proj_b)


def mlp(y: np.ndarray, fc1_w, fc1_b, fc2_w, fc2_b) -> np.ndarray:
    return linear(gelu(linear(y, fc1_w, fc1_b)), fc2_w, fc2_b)


def gate_top_k(logits: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over experts, then the ``top_k`` largest probabilities (no renormalisation, ties to the lower
    index): ``(indices, scores)``, each ``(..., top_k)``, best first."""
    p = softmax(logits)
    order = np.argsort(-p, axis=-1, kind="stable")[..., :top_k]
    return order, np.take_along_axis(p, order, axis=-1)


def moe(y: np.ndarray, gate_w, fc1_w, fc1_b, fc2_w, fc2_b, top_k: int) -> np.ndarray:
    """``sum over the chosen experts of score_e * expert_e(y)`` per token (``y``: (..., D))."""
    shape = y.shape
    tokens = y.reshape(-1, shape[-1])
    chosen, scores = gate_top_k(tokens @ gate_w, top_k)
    out = np.zeros_like(tokens)
    for e in range(fc1_w.shape[0]):
        rows, slot = np.nonzero(chosen == e)
        if rows.size:
            expert = mlp(tokens[rows], fc1_w[e], fc1_b[e], fc2_w[e], fc2_b[e])
            out[rows] += scores[rows, slot][:, None] * expert
    return out.reshape(shape)


def embed(params: dict, images: np.ndarray, cfg: MoevitConfig) -> np.ndarray:
    """Patch embedding, cls token and position embedding: ``(n, tokens, dim)``."""
    patches = linear(patchify(np.asarray(images, dtype=np.float64), cfg.patch), params["patch_embed.w"],
                     params["patch_embed.b"])
    cls = np.broadcast_to(params["cls"], (patches.shape[0], 1, cfg.dim))
    return np.concatenate([cls, patches], axis=1) + params["pos"]


def block(params: dict, x: np.ndarray, layer: int, task: str, cfg: MoevitConfig) -> np.ndarray:
    """Transformer block ``layer`` (``task`` picks the MoE gate)."""
    p = f"blocks.{layer}."
    h = x + attention(layernorm(x, params[p + "ln1.g"], params[p + "ln1.b"]), params[p + "attn.qkv.w"],
                      params[p + "attn.qkv.b"], params[p + "attn.proj.w"], params[p + "attn.proj.b"], cfg.heads)
    y = layernorm(h, params[p + "ln2.g"], params[p + "ln2.b"])
    if cfg.is_moe(layer):
        f = moe(y, params[p + f"moe.gate.{task}"], params[p + "moe.fc1.w"], params[p + "moe.fc1.b"],
                params[p + "moe.fc2.w"], params[p + "moe.fc2.b"], cfg.top_k)
    else:
        f = mlp(y, params[p + "mlp.fc1.w"], params[p + "mlp.fc1.b"], params[p + "mlp.fc2.w"], params[p + "mlp.fc2.b"])
    return h + f


def head(params: dict, x: np.ndarray, task: str, cfg: MoevitConfig) -> np.ndarray:
    """Task head on the final-normed patch tokens (cls dropped): ``(n, out, H, W)``."""
    out = linear(x[:, 1:], params[f"heads.{task}.w"], params[f"heads.{task}.b"])
    return unpatchify(out, cfg.task(task).outputs, cfg.patch, cfg.grid)


def features(params: dict, images: np.ndarray, task: str, cfg: MoevitConfig) -> np.ndarray:
    """Tokens after the final LayerNorm (the MoE layers use ``task``'s gate)."""
    x = embed(params, images, cfg)
    for layer in range(cfg.layers):
        x = block(params, x, layer, task, cfg)
    return layernorm(x, params["norm.g"], params["norm.b"])


def forward(params: dict, images: np.ndarray, task: str, cfg: MoevitConfig) -> np.ndarray:
    """Outputs of ``task`` for ``images`` (n, C, H, W) in [0, 1]: ``(n, out, H, W)`` float64."""
    cfg.task(task)  # KeyError for an unknown task
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    return head(p, features(p, images, task, cfg), task, cfg)


def forward_all(params: dict, images: np.ndarray, cfg: MoevitConfig) -> dict[str, np.ndarray]:
    """:func:`forward` of every task."""
    return {task: forward(params, images, task, cfg) for task in cfg.task_names}


def activated_macs(cfg: MoevitConfig) -> dict:
    """MACs per image, per task, of the MoE network against dense ViTs of the same size.

    ``moe``: what the network computes for one task (top-k experts, the task's gate and head);
    ``dense_mlp``: the same ViT with a dense MLP (hidden ``mlp_ratio * dim``) in every block;
    ``all_experts``: the MoE network with every expert active (a dense model with the same
    parameters). Ratios are ``moe / dense``.
    """
    from sim.perf.moevit import operators

    result = {}
    for task in cfg.task_names:
        ops = operators(cfg, task=task, include_heads=True)
        moe_macs = sum(op.macs for op in ops)
        expert_macs = sum(op.macs for op in ops if op.name.endswith((".expert_fc1", ".expert_fc2")))
        gate_macs = sum(op.macs for op in ops if op.name.endswith(".gate"))
        moe_layers = sum(cfg.is_moe(layer) for layer in range(cfg.layers))
        dense_ffn = 2 * cfg.tokens * cfg.dim * cfg.hidden * moe_layers
        dense = moe_macs - expert_macs - gate_macs + dense_ffn
        all_experts = moe_macs - expert_macs + expert_macs * cfg.experts // cfg.top_k
        result[task] = {"moe": moe_macs, "dense_mlp": dense, "all_experts": all_experts,
                        "ratio_dense_mlp": moe_macs / dense, "ratio_all_experts": moe_macs / all_experts}
    return result
