"""The weights of a ``kind: moevit`` network: names, shapes, random init, npz load and save.

Keys (float32 arrays; ``l`` a block index, ``t`` a task name):
``patch_embed.w`` (C*p*p, dim), ``patch_embed.b`` (dim), ``cls`` (dim), ``pos`` (tokens, dim),
``blocks.l.ln1.g/.b``, ``blocks.l.attn.qkv.w`` (dim, 3 dim) / ``.b``, ``blocks.l.attn.proj.w`` /
``.b``, ``blocks.l.ln2.g/.b``; dense blocks ``blocks.l.mlp.fc1.w`` (dim, hidden) / ``.b``,
``blocks.l.mlp.fc2.w`` / ``.b``; MoE blocks ``blocks.l.moe.gate.t`` (dim, experts),
``blocks.l.moe.fc1.w`` (E, dim, eh), ``.fc1.b`` (E, eh), ``blocks.l.moe.fc2.w`` (E, eh, dim),
``.fc2.b`` (E, dim); ``norm.g/.b``; ``heads.t.w`` (dim, out*p*p) / ``heads.t.b``.
"""

from pathlib import Path

import numpy as np

from gen.config.moevit import MoevitConfig, weights_path
from gen.errors import ConfigError


def shapes(cfg: MoevitConfig) -> dict[str, tuple[int, ...]]:
    """Every key of the weights dict and its shape, in a fixed order."""
    d, e, eh, pp = cfg.dim, cfg.experts, cfg.expert_hidden, cfg.patch * cfg.patch
    out = {"patch_embed.w": (cfg.patch_inputs, d), "patch_embed.b": (d,), "cls": (d,), "pos": (cfg.tokens, d)}
    for layer in range(cfg.layers):
        b = f"blocks.{layer}."
        out |= {b + "ln1.g": (d,), b + "ln1.b": (d,), b + "attn.qkv.w": (d, 3 * d), b + "attn.qkv.b": (3 * d,),
                b + "attn.proj.w": (d, d), b + "attn.proj.b": (d,), b + "ln2.g": (d,), b + "ln2.b": (d,)}
        if cfg.is_moe(layer):
            out |= {b + f"moe.gate.{t}": (d, e) for t in cfg.task_names}
            out |= {b + "moe.fc1.w": (e, d, eh), b + "moe.fc1.b": (e, eh),
                    b + "moe.fc2.w": (e, eh, d), b + "moe.fc2.b": (e, d)}
        else:
            out |= {b + "mlp.fc1.w": (d, cfg.hidden), b + "mlp.fc1.b": (cfg.hidden,),
                    b + "mlp.fc2.w": (cfg.hidden, d), b + "mlp.fc2.b": (d,)}
    out |= {"norm.g": (d,), "norm.b": (d,)}
    for task in cfg.tasks:
        out |= {f"heads.{task.name}.w": (d, task.outputs * pp), f"heads.{task.name}.b": (task.outputs * pp,)}
    return out


def init_params(cfg: MoevitConfig, seed: int = 0, std: float = 0.02) -> dict[str, np.ndarray]:
    """Random weights (float32): matrices and embeddings normal with ``std``, biases 0, LayerNorm
    gamma 1 and beta 0. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    params = {}
    for key, shape in shapes(cfg).items():
        if key.endswith(".g"):
            value = np.ones(shape)
        elif key.endswith(".b"):
            value = np.zeros(shape)
        else:
            value = rng.normal(0.0, std, size=shape)
        params[key] = value.astype(np.float32)
    return params


def seeded_params(cfg: MoevitConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """The config's weights, or, for a config without a weights file, seeded random ones that exercise the
    formats: matrices normal with std 0.3, biases normal with std 0.5, LayerNorm gains 1 +- 0.2."""
    if cfg.weights is not None:
        return load_params(cfg)
    rng = np.random.default_rng([seed, 1])
    params = init_params(cfg, seed=seed, std=0.3)
    for key, value in params.items():
        if key.endswith(".b"):
            params[key] = rng.normal(0.0, 0.5, size=value.shape).astype(np.float32)
        elif key.endswith(".g"):
            params[key] = (1.0 + rng.normal(0.0, 0.2, size=value.shape)).astype(np.float32)
    return params


def check_params(cfg: MoevitConfig, params: dict, source: str = "weights") -> None:
    """:class:`ConfigError` (one line) if a key is missing or extra or a shape is wrong."""
    wanted = shapes(cfg)
    missing = [k for k in wanted if k not in params]
    if missing:
        raise ConfigError(f"{source}: missing key '{missing[0]}' ({len(missing)} missing); allowed: the keys "
                          f"of docs/moevit.md for config {cfg.name}")
    extra = sorted(set(params) - set(wanted))
    if extra:
        raise ConfigError(f"{source}: unknown key '{extra[0]}'; allowed: the keys of docs/moevit.md")
    for key, shape in wanted.items():
        if tuple(params[key].shape) != shape:
            raise ConfigError(f"{source}: {key}: shape {tuple(params[key].shape)}; allowed: {shape}")


def load_params(cfg: MoevitConfig, path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The weights of ``cfg`` (``path``, or the config's ``weights`` file), checked against its shapes."""
    path = Path(path) if path is not None else weights_path(cfg)
    if path is None:
        raise ConfigError(f"{cfg.source_name}: weights: null; allowed: a .npz file (this config has no weights)")
    try:
        with np.load(path, allow_pickle=False) as data:
            params = {key: np.asarray(data[key], dtype=np.float32) for key in data.files}
    except FileNotFoundError:
        raise ConfigError(f"{cfg.source_name}: weights: '{path}' does not exist; allowed: a .npz file") from None
    except (OSError, ValueError) as error:
        raise ConfigError(f"{cfg.source_name}: weights: cannot read '{path}': {error}") from None
    check_params(cfg, params, str(path))
    return params


def save_params(params: dict[str, np.ndarray], path: str | Path) -> None:
    """Write ``params`` as a compressed npz of float32 arrays (keys sorted, so the file is reproducible)."""
    arrays = {key: np.asarray(params[key], dtype=np.float32) for key in sorted(params)}
    np.savez_compressed(path, **arrays)
