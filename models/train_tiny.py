"""Train the tiny multi-task MoE-ViT on synthetic scenes (CPU) and export its weights.

    .venv/bin/pip install -e '.[train]'
    .venv/bin/python models/train_tiny.py              # about 13 minutes on 2 idle cores

Writes ``models/tiny_moevit.npz`` (the weights of ``configs/moevit/tiny.yaml``, float32, keys of
docs/moevit.md) and ``models/tiny_moevit.json`` (training facts and held-out metrics: the
multi-task model, the single-task baselines trained the same way, the trivial baseline and the
multi-task delta). Everything is seeded: the same torch build and thread count give the same
weights. See models/README.md.
"""

import argparse
import json
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.torch_moevit import Arch, MoEViT  # noqa: E402
from sim.moevit.data import HELD_OUT_SEED, TRAIN_SEED, VALIDATION_SEED, make_dataset  # noqa: E402
from sim.moevit.metrics import multitask_delta, task_metrics, trivial_outputs  # noqa: E402

HELD_OUT_IMAGES = 1000
DEPTH_WEIGHT = 0.5  # L1 depth loss (depth units) beside the cross-entropy
#: Cross-entropy weight of the background class (the shapes' classes weigh 1): the background covers
#: about 80% of the pixels, and mIoU weighs every class alike.
BACKGROUND_WEIGHT = 0.3
BALANCE_WEIGHT = 0.01  # Switch-Transformer load-balancing loss, per MoE call
#: Largest magnitude kept per parameter, so that every weight fits Edge-MoE's formats (the tiny
#: config's are at least as wide): patch embedding s0.16 (|w| < 0.5), other weights s2.14,
#: biases, LayerNorm parameters and embeddings s5.11 (|v| < 16). Checked by pattern, first match.
LIMITS = (("patch_embed.w", 0.5 - 2**-16), (".w", 2.0 - 2**-14), ("gate.", 2.0 - 2**-14),
          ("", 16.0 - 2**-11))


def limit_of(key: str) -> float:
    for pattern, bound in LIMITS:
        if pattern in key:
            return bound
    raise AssertionError(key)  # the empty pattern matches everything


def predict(model: MoEViT, images: np.ndarray, tasks, batch: int = 250) -> dict:
    """``{task: float32 output}`` of the model over ``images`` (no gradient)."""
    outputs = {task: [] for task in tasks}
    with torch.no_grad():
        for start in range(0, len(images), batch):
            result = model.forward_all(torch.from_numpy(images[start:start + batch]), list(tasks))
            for task in tasks:
                outputs[task].append(result[task].numpy())
            model.balance_loss()  # drop the records
    return {task: np.concatenate(parts) for task, parts in outputs.items()}


def evaluate(model: MoEViT, data, tasks, kinds: dict) -> dict:
    outputs = predict(model, data.images, tasks)
    return {task: task_metrics(kinds[task], outputs[task], data) for task in tasks}


def train(arch: Arch, kinds: dict, steps: int, batch: int, lr: float, seed: int, log) -> tuple:
    """Train one model on ``arch.tasks``; returns (model, seconds)."""
    tasks = [name for name, _ in arch.tasks]
    torch.manual_seed(seed)
    model = MoEViT(arch)
    with torch.no_grad():
        for task in tasks:
            if kinds[task] == "depth":
                model.head_b[task].fill_(10.0)  # about the mean depth of the scenes: no long first climb
    named = model.parameters_by_key()
    decay = [p for key, p in named.items() if p.ndim >= 2 and key not in ("pos",)]
    rest = [p for key, p in named.items() if not (p.ndim >= 2 and key not in ("pos",))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                                  lr=lr, betas=(0.9, 0.99))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    validation = make_dataset(256, VALIDATION_SEED)
    start = time.perf_counter()
    running = {}
    for step in range(steps):
        data = make_dataset(batch, TRAIN_SEED, first=step * batch)
        images = torch.from_numpy(data.images)
        outputs = model.forward_all(images, tasks)
        losses = {}
        for task, output in outputs.items():
            if kinds[task] == "segmentation":
                weight = torch.ones(output.shape[1])
                weight[0] = BACKGROUND_WEIGHT
                losses[task] = F.cross_entropy(output, torch.from_numpy(data.seg), weight=weight)
            else:
                losses[task] = DEPTH_WEIGHT * (output[:, 0] - torch.from_numpy(data.depth)).abs().mean()
        losses["balance"] = BALANCE_WEIGHT * model.balance_loss()
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            for key, p in named.items():
                bound = limit_of(key)
                p.clamp_(-bound, bound)
        for key, value in losses.items():
            running[key] = running.get(key, 0.0) + value.item()
        if (step + 1) % 100 == 0 or step + 1 == steps:
            parts = " ".join(f"{k} {v / 100:.4f}" for k, v in running.items())
            running = {}
            line = f"  step {step + 1}/{steps} {time.perf_counter() - start:6.0f}s loss {parts}"
            if (step + 1) % 500 == 0 or step + 1 == steps:
                line += " | val " + json.dumps(evaluate(model, validation, tasks, kinds))
            log(line)
    return model, time.perf_counter() - start


def _job(arch: Arch, kinds: dict, steps: int, batch: int, lr: float, seed: int, threads: int, label: str) -> dict:
    """One training run in a worker process: its weights, held-out metrics and times."""
    torch.set_num_threads(threads)
    log = lambda line: print(f"[{label}] {line}", flush=True)  # noqa: E731
    tasks = [name for name, _ in arch.tasks]
    log(f"tasks {tasks}, {steps} steps of {batch}")
    cpu = time.process_time()
    model, seconds = train(arch, kinds, steps, batch, lr, seed, log)
    cpu = time.process_time() - cpu
    metrics = evaluate(model, make_dataset(HELD_OUT_IMAGES, HELD_OUT_SEED), tasks, kinds)
    log(f"done in {seconds:.0f} s ({cpu:.0f} CPU s): {json.dumps(metrics)}")
    return {"weights": model.export(), "metrics": metrics, "seconds": seconds, "cpu_seconds": cpu}


def _baselines(arch: Arch, kinds: dict, *args) -> list:
    """The single-task baselines, one after the other."""
    return [_job(replace(arch, tasks=(task,)), kinds, *args, label=f"single-task {task[0]}") for task in arch.tasks]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "moevit" / "tiny.yaml")
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baselines", action="store_true", help="skip the single-task baselines")
    parser.add_argument("--out", type=Path, default=None, help="weights file (default: the config's weights)")
    parser.add_argument("--facts", type=Path, default=None, help="facts file (default: the weights' name, .json)")
    args = parser.parse_args(argv)
    from gen.config.moevit import load_moevit
    from sim.golden.moevit.params import check_params, save_params, weights_path

    cfg = load_moevit(args.config)
    arch = Arch.from_config(cfg)
    kinds = {task.name: task.type for task in cfg.tasks}
    out = args.out or weights_path(cfg)
    facts_path = args.facts or out.with_suffix(".json")
    tasks = list(kinds)
    # Two single-threaded workers (multi-task model | both baselines in turn): the two halves cost
    # about the same, and one thread per process wastes nothing on thread synchronisation.
    common = (args.steps, args.batch, args.lr, args.seed, 1)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1 if args.no_baselines else 2,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        multi = pool.submit(_job, arch, kinds, *common, label="multi-task")
        single = None if args.no_baselines else pool.submit(_baselines, arch, kinds, *common)
        multi = multi.result()
        single = [] if single is None else single.result()
    wall = time.perf_counter() - start

    check_params(cfg, multi["weights"], "trained weights")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_params(multi["weights"], out)
    held_out = make_dataset(HELD_OUT_IMAGES, HELD_OUT_SEED)
    train_set = make_dataset(2000, TRAIN_SEED)
    trivial = {task: task_metrics(kinds[task], trivial_outputs(kinds[task], train_set, len(held_out),
                                                               cfg.task(task).classes or 0), held_out)
               for task in tasks}
    facts = {
        "config": str(args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config),
        "arch": {key: value for key, value in vars(arch).items()},
        "parameters": int(sum(w.size for w in multi["weights"].values())),
        "training": {
            "steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
            "workers": "2 processes x 1 thread: multi-task | single-task baselines in turn",
            "optimizer": "AdamW (0.9, 0.99), weight decay 0.05 on matrices, 5% warmup, cosine to 0, grad clip 1",
            "losses": f"cross-entropy (background weight {BACKGROUND_WEIGHT}) + {DEPTH_WEIGHT} * L1(depth) "
                      f"+ {BALANCE_WEIGHT} * load balance",
            "weight_limits": {pattern or "other": bound for pattern, bound in LIMITS},
            "data": {"train_seed": TRAIN_SEED, "validation_seed": VALIDATION_SEED, "held_out_seed": HELD_OUT_SEED,
                     "held_out_images": HELD_OUT_IMAGES, "train_images": args.steps * args.batch},
            "torch": torch.__version__},
        "seconds": {"wall_total": round(wall, 1), "multi_task": round(multi["seconds"], 1),
                    "multi_task_cpu": round(multi["cpu_seconds"], 1)},
        "held_out": {"multi_task": multi["metrics"], "trivial": trivial},
    }
    if single:
        facts["held_out"]["single_task"] = {task: s["metrics"][task] for task, s in zip(tasks, single)}
        for task, s in zip(tasks, single):
            facts["seconds"][f"single_task_{task}"] = round(s["seconds"], 1)
            facts["seconds"][f"single_task_{task}_cpu"] = round(s["cpu_seconds"], 1)
        facts["held_out"]["multitask_delta_percent"] = multitask_delta(
            multi["metrics"], facts["held_out"]["single_task"], kinds)
    facts_path.write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts["held_out"], indent=2))
    print(f"wrote {out} ({out.stat().st_size:,} bytes) and {facts_path} in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
