"""Task-level resilience of a MoE-ViT: mIoU and RMSE under random bit flips, with and without clipping.

``npuforge resilience`` runs the fixed-point golden model (``sim.golden.moevit.fixed``, the
config's hardware units) on held-out scenes with bits flipped at a *bit error rate*: every bit
of the targeted codes flips independently with probability ``ber``, in

* ``weights``: the weight codes of the layer type (drawn once per trial, used for every image);
* ``activations``: the operator outputs of the layer type (a fresh draw at every operator call),
  through the golden's ``hook`` (``fixed.forward_codes(..., hook=)``).

Layer types: ``attention`` (qkv and projection), ``mlp`` (dense MLP layers), ``experts`` (MoE
expert MLPs), ``gate`` (gate logits), ``layernorm`` (every LayerNorm output), or ``all``.

Protection by activation clipping, applied at every hooked operator output (after the flips):
``ranger`` clips each operator output to the per-layer ``[min, max]`` it took on calibration
scenes (Ranger, DSN 2021: layer-wise bounds); ``proact`` to per-channel bounds (ProAct, 2024:
channel-wise thresholds). Calibration scenes come from the training stream, not the held-out one.
The fault-free metrics of each protection are measured too, so that any cost of clipping shows.
"""

from dataclasses import dataclass

import numpy as np

from gen.config.moevit import MoevitConfig
from gen.errors import ConfigError

from .data import HELD_OUT_SEED, TRAIN_SEED, make_dataset
from .metrics import PRIMARY, task_metrics

LAYER_TYPES = ("attention", "mlp", "experts", "gate", "layernorm")
TARGETS = ("weights", "activations")
CLIPS = ("none", "ranger", "proact")


def weight_type(key: str) -> str | None:
    """The layer type weight ``key`` belongs to (None: embedding, heads)."""
    if ".attn." in key:
        return "attention"
    if ".mlp." in key:
        return "mlp"
    if ".moe.gate." in key:
        return "gate"
    if ".moe.fc" in key:
        return "experts"
    if ".ln1." in key or ".ln2." in key or key.startswith("norm."):
        return "layernorm"
    return None


def flip_bits(codes: np.ndarray, width: int, signed: bool, ber: float, rng: np.random.Generator) -> np.ndarray:
    """``codes`` (``width``-bit two's complement or unsigned values) with each bit flipped with probability ``ber``."""
    codes = np.asarray(codes, dtype=np.int64)
    bits = codes.size * width
    count = rng.binomial(bits, ber) if bits else 0
    if not count:
        return codes
    where = rng.integers(0, bits, count)
    flat = codes.reshape(-1).copy() & ((1 << width) - 1)
    np.bitwise_xor.at(flat, where // width, np.left_shift(np.int64(1), where % width))
    if signed:
        flat = np.where(flat >> (width - 1) & 1, flat - (1 << width), flat)
    return flat.reshape(codes.shape)


@dataclass(frozen=True)
class Bounds:
    """Per operator output name: the layer's ``[lo, hi]`` and per-channel (last axis) ``[lo, hi]``."""

    layer: dict
    channel: dict

    def clip(self, mode: str, name: str, codes: np.ndarray) -> np.ndarray:
        if mode == "ranger" and name in self.layer:
            return np.clip(codes, *self.layer[name])
        if mode == "proact" and name in self.channel:
            lo, hi = self.channel[name]
            return np.clip(codes, lo, hi)
        return codes


def calibrate(cfg: MoevitConfig, codes: dict, pixels: np.ndarray, task: str) -> Bounds:
    """Bounds of every hooked operator output over fault-free runs of ``task`` on ``pixels``."""
    from sim.golden.moevit import fixed

    layer, channel = {}, {}

    def record(name, kind, values):
        flat = values.reshape(-1, values.shape[-1])
        lo, hi = flat.min(axis=0), flat.max(axis=0)
        if name in channel:
            lo, hi = np.minimum(lo, channel[name][0]), np.maximum(hi, channel[name][1])
        channel[name] = (lo, hi)
        layer[name] = (int(lo.min()), int(hi.max()))
        return values
    fixed.forward_codes(codes, pixels, task, cfg, hook=record)
    return Bounds(layer=layer, channel=channel)


def _activation_format(cfg: MoevitConfig):
    fmt = cfg.format("activation")
    return fmt.width, fmt.signed


def run_point(cfg: MoevitConfig, codes: dict, pixels: np.ndarray, data, task: str, *, target: str, layer: str,
              ber: float, clip: str, bounds: Bounds, rng: np.random.Generator) -> dict:
    """Task metrics of one faulty run (``ber`` 0: fault-free with the protection)."""
    from sim.golden.moevit import fixed

    width, signed = _activation_format(cfg)
    chosen = (lambda kind: True) if layer == "all" else (lambda kind: kind == layer)
    run_codes = codes
    if target == "weights" and ber > 0:
        run_codes = dict(codes)
        for key, value in codes.items():
            kind = weight_type(key)
            if kind is not None and chosen(kind):
                fmt = fixed.param_format(key, cfg)
                run_codes[key] = flip_bits(value, fmt.width, fmt.signed, ber, rng)

    def hook(name, kind, values):
        if target == "activations" and ber > 0 and chosen(kind):
            values = flip_bits(values, width, signed, ber, rng)
        return bounds.clip(clip, name, values)
    out = fixed.forward_codes(run_codes, pixels, task, cfg, hook=hook)
    kind = cfg.task(task).type
    return task_metrics(kind, cfg.format("activation").to_float(out), data)


def _checked(name: str, values: list[str], allowed: tuple) -> list[str]:
    for value in values:
        if value not in allowed:
            raise ConfigError(f"{name}: got {value!r}; allowed: {', '.join(allowed)}")
    if not values:
        raise ConfigError(f"{name}: got nothing; allowed: one or more of {', '.join(allowed)}")
    return values


def check_choices(targets: list[str], clips: list[str], layers: list[str]) -> None:
    """One-line ``ConfigError`` naming the flag for a target, protection or layer type that does not exist."""
    _checked("--targets", targets, TARGETS)
    _checked("--clip", clips, CLIPS)
    _checked("--layers", layers, LAYER_TYPES + ("all",))


def sweep(cfg: MoevitConfig, params: dict, *, bers: list[float], targets: list[str], clips: list[str],
          layers: list[str], images: int = 4, calibration: int = 8, trials: int = 1, seed: int = 1,
          on_point=lambda done, total: None) -> dict:
    """The resilience report (JSON-ready): per task, target, layer type, protection and bit error rate the
    task metrics averaged over ``trials`` draws, and the fault-free metrics of each protection."""
    from sim.golden.moevit import fixed

    check_choices(targets, clips, layers)
    for ber in bers:
        if not 0 < ber < 1:
            raise ConfigError(f"--ber: got {ber!r}; allowed: numbers above 0 and below 1, e.g. 1e-6,1e-5")
    classes = next((t.classes for t in cfg.tasks if t.type == "segmentation"), 5)
    scene = {"height": cfg.height, "width": cfg.width, "classes": classes}
    data = make_dataset(images, HELD_OUT_SEED, **scene)
    calib = make_dataset(calibration, TRAIN_SEED, **scene)
    pixel = cfg.format("pixel")
    pixels, calib_pixels = fixed.quantize(data.images, pixel), fixed.quantize(calib.images, pixel)
    codes = fixed.quantize_params(params, cfg)
    tasks = [t.name for t in cfg.tasks]
    total = len(tasks) * len(clips) * (1 + len(targets) * len(layers) * len(bers) * trials)
    done, rows, clean = 0, [], {}
    for t_index, task in enumerate(tasks):
        kind = cfg.task(task).type
        metric = PRIMARY[kind][0]
        bounds = calibrate(cfg, codes, calib_pixels, task)
        for clip in clips:
            clean.setdefault(task, {})[clip] = run_point(cfg, codes, pixels, data, task, target="weights",
                                                         layer="all", ber=0, clip=clip, bounds=bounds, rng=None)
            done += 1
            on_point(done, total)
            for target in targets:
                for layer in layers:
                    for ber in bers:
                        values = []
                        for trial in range(trials):
                            # The same draws for every protection: clipping is compared on equal faults.
                            rng = np.random.default_rng([seed, t_index, TARGETS.index(target),
                                                         (LAYER_TYPES + ("all",)).index(layer),
                                                         bers.index(ber), trial])
                            values.append(run_point(cfg, codes, pixels, data, task, target=target, layer=layer,
                                                    ber=ber, clip=clip, bounds=bounds, rng=rng)[metric])
                            done += 1
                            on_point(done, total)
                        rows.append({"task": task, "metric": metric, "target": target, "layer": layer, "clip": clip,
                                     "ber": ber, "mean": float(np.mean(values)), "trials": values})
    return {"config": cfg.name, "images": images, "calibration_images": calibration, "trials": trials,
            "seed": seed, "bers": bers, "targets": targets, "clips": clips, "layers": layers,
            "fault_free": clean, "points": rows}


def plot(report: dict, path) -> None:
    """Metric against bit error rate, one panel per task and target x layer type, one curve per protection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({p["task"] for p in report["points"]})
    panels = [(t, layer) for t in report["targets"] for layer in report["layers"]]
    fig, axes = plt.subplots(len(tasks), len(panels), figsize=(3.2 * len(panels), 2.8 * len(tasks)), squeeze=False)
    for r, task in enumerate(tasks):
        for c, (target, layer) in enumerate(panels):
            ax = axes[r][c]
            for clip in report["clips"]:
                points = sorted((p["ber"], p["mean"]) for p in report["points"]
                                if (p["task"], p["target"], p["layer"], p["clip"]) == (task, target, layer, clip))
                if points:
                    ax.plot(*zip(*points), marker="o", label=clip)
                    metric = next(p["metric"] for p in report["points"] if p["task"] == task)
            ax.set_xscale("log")
            ax.set_title(f"{task}: {target}, {layer}", fontsize=8)
            ax.set_xlabel("bit error rate", fontsize=7)
            ax.set_ylabel(metric, fontsize=7)
            ax.tick_params(labelsize=6)
            if (r, c) == (0, 0):
                ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
