"""The tiny multi-task MoE-ViT in PyTorch: the network of ``sim/golden/moevit/reference.py``, trainable.

Used only by ``models/train_tiny.py`` (training) and ``tests/test_moevit_trained.py`` (the numpy
float model must agree with it). Parameters are stored in the layout of the weights file
(``x @ w + b``, ``w`` of shape (in, out)), so :meth:`MoEViT.export` is a rename-free copy and
:meth:`MoEViT.load` its inverse. The network (see docs/moevit.md):

- tokens = [cls] + patches (row-major over the patch grid), plus ``pos``; a patch is flattened in
  (channel, py, px) order;
- block ``l``: ``h = x + attn(LN1(x))``; ``x = h + ffn(LN2(h))``; ``ffn`` is an MoE on the layers
  in ``moe_layers`` (Edge-MoE: the odd ones), else a dense MLP; LayerNorm eps 1e-6, biased variance;
  GELU in its exact erf form;
- MoE for task ``t``: ``p = softmax(y @ gate[t])`` over all experts, the top-k of ``p`` without
  renormalisation, output ``sum_e p_e * expert_e(y)``;
- final LayerNorm, then per-task linear heads on the patch tokens, pixel-shuffled to (out, H, W).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-6


@dataclass(frozen=True)
class Arch:
    """The network's sizes; ``tasks`` is ``((name, outputs), ...)`` (segmentation: classes; depth: 1)."""

    height: int = 32
    width: int = 32
    channels: int = 3
    patch: int = 4
    dim: int = 64
    heads: int = 4
    layers: int = 4
    mlp_hidden: int = 256
    moe_layers: tuple = (1, 3)
    experts: int = 8
    top_k: int = 2
    expert_hidden: int = 128
    tasks: tuple = (("seg", 5), ("depth", 1))

    @classmethod
    def from_config(cls, cfg) -> "Arch":
        """The sizes of a ``kind: moevit`` config (``gen.config.moevit.MoevitConfig``)."""
        return cls(height=cfg.height, width=cfg.width, channels=cfg.channels, patch=cfg.patch, dim=cfg.dim,
                   heads=cfg.heads, layers=cfg.layers, mlp_hidden=cfg.hidden,
                   moe_layers=tuple(l for l in range(cfg.layers) if cfg.is_moe(l)), experts=cfg.experts,
                   top_k=cfg.top_k, expert_hidden=cfg.expert_hidden,
                   tasks=tuple((task.name, task.outputs) for task in cfg.tasks))

    @property
    def grid(self) -> tuple:
        return self.height // self.patch, self.width // self.patch

    @property
    def tokens(self) -> int:
        gh, gw = self.grid
        return gh * gw + 1


def _param(*shape, std=0.02):
    return nn.Parameter(torch.randn(*shape) * std if std else torch.zeros(*shape))


def layer_norm(x, g, b):
    return F.layer_norm(x, (x.shape[-1],), g, b, eps=LN_EPS)


class MoE(nn.Module):
    """Task-gated top-k mixture of GELU-MLP experts; records the load-balancing loss of its last call."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.top_k = arch.top_k
        self.gate = nn.ParameterDict({name: _param(arch.dim, arch.experts) for name, _ in arch.tasks})
        self.fc1_w = _param(arch.experts, arch.dim, arch.expert_hidden)
        self.fc1_b = _param(arch.experts, arch.expert_hidden, std=0)
        self.fc2_w = _param(arch.experts, arch.expert_hidden, arch.dim)
        self.fc2_b = _param(arch.experts, arch.dim, std=0)
        #: One load-balancing loss per call since the model's last ``balance_loss()``.
        self.balance_losses = []

    def forward(self, y, task):
        shape = y.shape
        y = y.reshape(-1, shape[-1])
        experts = self.fc1_w.shape[0]
        p = torch.softmax(y @ self.gate[task], dim=-1)
        # Ties (measure zero on trained weights) would go to the lower index in the numpy model.
        score, chosen = torch.topk(p, self.top_k, dim=-1)
        out = torch.zeros_like(y)
        for e in range(experts):
            rows, slot = torch.nonzero(chosen == e, as_tuple=True)
            if rows.numel() == 0:
                continue
            hidden = F.gelu(y[rows] @ self.fc1_w[e] + self.fc1_b[e])
            out = out.index_add(0, rows, score[rows, slot, None] * (hidden @ self.fc2_w[e] + self.fc2_b[e]))
        # Switch-Transformer balance: experts * sum_e (share of routed slots) * (mean gate probability).
        share = torch.bincount(chosen.reshape(-1), minlength=experts).to(p.dtype) / chosen.numel()
        self.balance_losses.append(experts * torch.sum(share * p.mean(dim=0)))
        return out.reshape(shape)


class Block(nn.Module):
    def __init__(self, arch: Arch, moe: bool):
        super().__init__()
        dim = arch.dim
        self.heads = arch.heads
        self.ln1_g, self.ln1_b = nn.Parameter(torch.ones(dim)), _param(dim, std=0)
        self.qkv_w, self.qkv_b = _param(dim, 3 * dim), _param(3 * dim, std=0)
        self.proj_w, self.proj_b = _param(dim, dim), _param(dim, std=0)
        self.ln2_g, self.ln2_b = nn.Parameter(torch.ones(dim)), _param(dim, std=0)
        if moe:
            self.moe = MoE(arch)
        else:
            self.moe = None
            self.fc1_w, self.fc1_b = _param(dim, arch.mlp_hidden), _param(arch.mlp_hidden, std=0)
            self.fc2_w, self.fc2_b = _param(arch.mlp_hidden, dim), _param(dim, std=0)

    def attention(self, y):
        n, t, dim = y.shape
        hd = dim // self.heads
        qkv = (y @ self.qkv_w + self.qkv_b).reshape(n, t, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd)), dim=-1)
        out = (a @ v).transpose(1, 2).reshape(n, t, dim)
        return out @ self.proj_w + self.proj_b

    def forward(self, x, task):
        h = x + self.attention(layer_norm(x, self.ln1_g, self.ln1_b))
        y = layer_norm(h, self.ln2_g, self.ln2_b)
        if self.moe is not None:
            return h + self.moe(y, task)
        return h + (F.gelu(y @ self.fc1_w + self.fc1_b) @ self.fc2_w + self.fc2_b)


class MoEViT(nn.Module):
    """``forward(images, task)`` -> (n, out, H, W); ``forward_all`` shares the blocks before the first MoE."""

    def __init__(self, arch: Arch = Arch()):
        super().__init__()
        self.arch = arch
        a = arch
        self.patch_w = _param(a.channels * a.patch * a.patch, a.dim)
        self.patch_b = _param(a.dim, std=0)
        self.cls = _param(a.dim)
        self.pos = _param(a.tokens, a.dim)
        self.blocks = nn.ModuleList(Block(a, l in a.moe_layers) for l in range(a.layers))
        self.norm_g, self.norm_b = nn.Parameter(torch.ones(a.dim)), _param(a.dim, std=0)
        self.head_w = nn.ParameterDict({name: _param(a.dim, out * a.patch ** 2) for name, out in a.tasks})
        self.head_b = nn.ParameterDict({name: _param(out * a.patch ** 2, std=0) for name, out in a.tasks})

    def embed(self, images):
        a = self.arch
        n = images.shape[0]
        gh, gw = a.grid
        patches = images.reshape(n, a.channels, gh, a.patch, gw, a.patch).permute(0, 2, 4, 1, 3, 5)
        x = patches.reshape(n, gh * gw, -1) @ self.patch_w + self.patch_b
        return torch.cat([self.cls.expand(n, 1, -1), x], dim=1) + self.pos

    def head(self, x, task):
        a = self.arch
        n = x.shape[0]
        gh, gw = a.grid
        y = layer_norm(x, self.norm_g, self.norm_b)[:, 1:] @ self.head_w[task] + self.head_b[task]
        out = y.shape[-1] // a.patch ** 2
        y = y.reshape(n, gh, gw, out, a.patch, a.patch).permute(0, 3, 1, 4, 2, 5)
        return y.reshape(n, out, a.height, a.width)

    def forward(self, images, task):
        x = self.embed(images)
        for block in self.blocks:
            x = block(x, task)
        return self.head(x, task)

    def forward_all(self, images, tasks=None):
        """``{task: output}``; the blocks before the first MoE layer run once for all tasks."""
        tasks = tasks or [name for name, _ in self.arch.tasks]
        first = min(self.arch.moe_layers, default=self.arch.layers)
        x = self.embed(images)
        for block in self.blocks[:first]:
            x = block(x, None)
        outputs = {}
        for task in tasks:
            y = x
            for block in self.blocks[first:]:
                y = block(y, task)
            outputs[task] = self.head(y, task)
        return outputs

    def balance_loss(self):
        """Mean load-balancing loss of the MoE calls since the last call (1 when balanced); clears them."""
        losses = [loss for b in self.blocks if b.moe is not None for loss in b.moe.balance_losses]
        for b in self.blocks:
            if b.moe is not None:
                b.moe.balance_losses = []
        return torch.stack(losses).mean() if losses else torch.zeros(())

    # -- the weights file ------------------------------------------------------------------------
    def parameters_by_key(self) -> dict:
        """npz key -> parameter."""
        named = {"patch_embed.w": self.patch_w, "patch_embed.b": self.patch_b, "cls": self.cls, "pos": self.pos,
                 "norm.g": self.norm_g, "norm.b": self.norm_b}
        for l, block in enumerate(self.blocks):
            p = f"blocks.{l}."
            named.update({p + "ln1.g": block.ln1_g, p + "ln1.b": block.ln1_b,
                          p + "attn.qkv.w": block.qkv_w, p + "attn.qkv.b": block.qkv_b,
                          p + "attn.proj.w": block.proj_w, p + "attn.proj.b": block.proj_b,
                          p + "ln2.g": block.ln2_g, p + "ln2.b": block.ln2_b})
            if block.moe is None:
                named.update({p + "mlp.fc1.w": block.fc1_w, p + "mlp.fc1.b": block.fc1_b,
                              p + "mlp.fc2.w": block.fc2_w, p + "mlp.fc2.b": block.fc2_b})
            else:
                moe = block.moe
                named.update({p + f"moe.gate.{task}": gate for task, gate in moe.gate.items()})
                named.update({p + "moe.fc1.w": moe.fc1_w, p + "moe.fc1.b": moe.fc1_b,
                              p + "moe.fc2.w": moe.fc2_w, p + "moe.fc2.b": moe.fc2_b})
        for task in self.head_w:
            named[f"heads.{task}.w"] = self.head_w[task]
            named[f"heads.{task}.b"] = self.head_b[task]
        return named

    def export(self) -> dict:
        """The weights file's dict: key -> float32 array."""
        return {key: p.detach().cpu().numpy().astype(np.float32) for key, p in self.parameters_by_key().items()}

    def load(self, weights: dict) -> "MoEViT":
        """Copy ``weights`` (the export's keys and shapes) into the parameters."""
        named = self.parameters_by_key()
        missing = sorted(set(named) - set(weights))
        if missing:
            raise KeyError(f"weights lack {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        with torch.no_grad():
            for key, p in named.items():
                value = torch.as_tensor(np.asarray(weights[key]), dtype=p.dtype)
                if value.shape != p.shape:
                    raise ValueError(f"{key}: shape {tuple(value.shape)}, the network needs {tuple(p.shape)}")
                p.copy_(value)
        return self
