"""``npuforge eval``: task metrics of a ``kind: moevit`` model in float and in fixed point.

On freshly generated held-out scenes (:mod:`sim.moevit.data`, seed :data:`HELD_OUT_SEED`, never
used in training) it runs the float model (``sim.golden.moevit.reference``) and the fixed-point
model (``sim.golden.moevit.fixed``) once per variant of ``fixed.VARIANTS(cfg)``: every nonlinear
function exact, the config's hardware units, and each hardware approximation alone. For each it
reports the task metrics (:mod:`sim.moevit.metrics`), the cost against float (mIoU points,
relative RMSE) and the multi-task delta against the single-task baselines recorded by
``models/train_tiny.py`` in the JSON beside the weights; plus the trivial baseline and the MACs
each task activates against a dense ViT of the same size.
"""

import json
from pathlib import Path

import numpy as np

from gen.config.moevit import MoevitConfig, weights_path
from gen.errors import ConfigError

from .data import HELD_OUT_SEED, TRAIN_SEED, make_dataset
from .metrics import PRIMARY, multitask_delta, task_metrics, trivial_outputs

#: Images of the training stream the trivial baseline's majority class and mean depth come from.
TRIVIAL_TRAIN_IMAGES = 500
FLOAT = "float"


def facts_path(cfg: MoevitConfig) -> Path | None:
    """The training facts file beside the config's weights (``.json``), or None."""
    weights = weights_path(cfg)
    return None if weights is None else weights.with_suffix(".json")


def load_facts(cfg: MoevitConfig) -> dict | None:
    """The training facts of the config's weights (``models/train_tiny.py``), or None if there are none."""
    path = facts_path(cfg)
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"{path}: cannot read the training facts: {error}") from None


def variants(cfg: MoevitConfig, names: list[str] | None = None) -> dict:
    """``{name: approx}``: ``float`` (approx None) first, then ``fixed.VARIANTS(cfg)``; ``names`` picks some."""
    from sim.golden.moevit import fixed

    table = {FLOAT: None, **fixed.VARIANTS(cfg)}
    if names is None:
        return table
    unknown = [name for name in names if name not in table]
    if unknown:
        raise ConfigError(f"variant: {unknown[0]!r}; allowed: {', '.join(table)}")
    return {name: table[name] for name in names}


def run_variant(cfg: MoevitConfig, params: dict, images: np.ndarray, task: str, approx, batch: int = 8,
                on_batch=lambda count: None) -> np.ndarray:
    """Outputs of ``task`` on ``images``: float if ``approx`` is None, else the fixed-point model."""
    from sim.golden.moevit import fixed, reference

    outputs = []
    for start in range(0, len(images), batch):
        part = images[start:start + batch]
        if approx is None:
            outputs.append(reference.forward(params, part, task, cfg))
        else:
            outputs.append(fixed.forward(params, part, task, cfg, approx=approx))
        on_batch(len(part))
    return np.concatenate(outputs)


#: The variant name of the accelerator's outputs (``npuforge eval --backend rtl``).
RTL = "rtl"


def rtl_outputs(accel, params: dict, images: np.ndarray, task: str, *, build_root: Path,
                on_image=lambda count: None) -> tuple[np.ndarray, list[str]]:
    """Outputs of ``task`` on float ``images`` (n, C, H, W) from the accelerator ``accel`` (a
    ``kind: moevit_accel`` config): per image the whole network as one descriptor list
    (:func:`sim.moevit.compiler.network_program`) in the fast harness, the head's codes read back from
    its memory and decoded as :func:`sim.golden.moevit.fixed.forward` decodes the golden's. Also every
    image's first difference from the golden (empty when every image is bit-exact)."""
    from sim.golden.moevit.fixed import quantize, quantize_params, unpatchify

    from .accel_run import compare, prepare, run_program
    from .compiler import Target, network_program

    model = accel.network
    prepared = prepare(accel, build_root)
    codes, target = quantize_params(params, model), Target.from_config(accel)
    outputs, problems = [], []
    for index, image in enumerate(images):
        pixels = quantize(image, model.format("pixel"))
        program = network_program(target, model, codes, pixels, task)
        result = run_program(prepared.harness, prepared.manifest, program, per_op=False)
        [report] = compare(program, result)
        if not report.ok:
            problems.append(f"image {index}, task {task}: {report.mismatch}")
        head = result.outputs[f"head.{task}"]
        outputs.append(unpatchify(head[None], model.task(task).outputs, model.patch, model.grid))
        on_image(1)
    return model.format("activation").to_float(np.concatenate(outputs)), problems


def cost_against(result: dict, base: dict, kinds: dict) -> dict:
    """Per task the loss of the primary metric against ``base``: mIoU points, RMSE in percent."""
    cost = {}
    for task, kind in kinds.items():
        metric, higher_better = PRIMARY[kind]
        if kind == "segmentation":
            cost[task] = {"miou_points": 100.0 * (base[task][metric] - result[task][metric])}
        else:
            cost[task] = {"rmse_percent": 100.0 * (result[task][metric] - base[task][metric]) / base[task][metric]}
    return cost


def evaluate(cfg: MoevitConfig, images: int = 32, names: list[str] | None = None, params: dict | None = None,
             seed: int = HELD_OUT_SEED, on_start=lambda total: None, on_batch=lambda count: None,
             accel=None, build_root: Path | None = None) -> dict:
    """The evaluation report (a JSON-ready dict) of ``cfg``'s weights (or ``params``) on ``images`` scenes.

    ``accel`` (a ``kind: moevit_accel`` config running ``cfg``'s network): also the variant ``rtl``, the
    accelerator's outputs (:func:`rtl_outputs`, built under ``build_root``), and ``rtl_mismatches``, each
    image and task whose outputs differ from the golden's (empty when the accelerator is bit-exact).
    ``on_start(total)`` is called once with the number of image-passes to come, ``on_batch(count)``
    after each batch (the progress bar)."""
    from sim.golden.moevit import params as params_module
    from sim.golden.moevit import reference

    if params is None:
        params = params_module.load_params(cfg)
    kinds = {task.name: task.type for task in cfg.tasks}
    classes = {task.name: task.classes for task in cfg.tasks if task.type == "segmentation"}
    if len(set(classes.values())) > 1:
        raise ConfigError(f"{cfg.source_name}: tasks: segmentation tasks with different classes "
                          f"{sorted(set(classes.values()))}; allowed: one class count (the scenes have one label map)")
    scene = {"height": cfg.height, "width": cfg.width, "classes": next(iter(classes.values()), 5)}
    try:
        data = make_dataset(images, seed, **scene)
    except ValueError as error:  # e.g. more classes than the scenes have shapes
        raise ConfigError(f"{cfg.source_name}: the synthetic scenes cannot serve this config: {error}") from None
    chosen = variants(cfg, names)
    on_start((len(chosen) + (accel is not None)) * len(kinds) * images)

    results = {}
    for name, approx in chosen.items():
        results[name] = {task: task_metrics(kinds[task], run_variant(cfg, params, data.images, task, approx,
                                                                     on_batch=on_batch), data)
                         for task in kinds}
    mismatches: list[str] = []
    if accel is not None:
        from sim.runner import DEFAULT_BUILD_ROOT

        results[RTL] = {}
        for task in kinds:
            outputs, problems = rtl_outputs(accel, params, data.images, task, build_root=build_root or DEFAULT_BUILD_ROOT,
                                            on_image=on_batch)
            results[RTL][task] = task_metrics(kinds[task], outputs, data)
            mismatches += problems
    train = make_dataset(TRIVIAL_TRAIN_IMAGES, TRAIN_SEED, **scene)
    trivial = {task: task_metrics(kinds[task], trivial_outputs(kinds[task], train, images, classes.get(task, 0)),
                                  data) for task in kinds}

    report = {"config": cfg.name, "data": {"seed": seed, "images": images}, "variants": results,
              "trivial": trivial, "macs": reference.activated_macs(cfg)}
    if accel is not None:
        report["accelerator"] = {"config": accel.name, "hash": accel.config_hash()}
        report["rtl_mismatches"] = mismatches
    if FLOAT in results:
        report["cost_vs_float"] = {name: cost_against(result, results[FLOAT], kinds)
                                   for name, result in results.items() if name != FLOAT}
    facts = load_facts(cfg)
    single = (facts or {}).get("held_out", {}).get("single_task")
    if single and set(single) >= set(kinds):
        report["single_task"] = {"metrics": single, "source": str(facts_path(cfg).name),
                                 "images": facts["training"]["data"]["held_out_images"],
                                 "seed": facts["training"]["data"]["held_out_seed"]}
        report["multitask_delta_percent"] = {name: multitask_delta(result, single, kinds)
                                             for name, result in results.items()}
    return report
