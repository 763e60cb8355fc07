"""Task metrics of the MoE-ViT: segmentation mIoU, depth RMSE and absolute relative error, multi-task delta.

Conventions (those of the multi-task dense-prediction papers M3ViT builds on):

- **mIoU**: per class ``TP / (TP + FP + FN)`` accumulated over the whole set (one confusion
  matrix, not per image), averaged over the classes that occur in the labels or the predictions;
  a fraction in [0, 1] (reports print it in points, x100).
- **RMSE** ``sqrt(mean((pred - gt)^2))`` and **abs-rel** ``mean(|pred - gt| / gt)`` over every pixel.
- **multi-task delta** ``mean_i (-1)^{l_i} (M_i - B_i) / B_i`` over the tasks' primary metrics
  (segmentation: mIoU, higher is better; depth: RMSE, lower is better, ``l_i = 1``), where ``M``
  is the multi-task model and ``B`` the single-task baseline: positive means multi-task is better.
"""

import numpy as np

#: Primary metric per task type, and whether higher is better.
PRIMARY = {"segmentation": ("miou", True), "depth": ("rmse", False)}


def confusion(pred: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts, row = label, column = prediction."""
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if pred.shape != labels.shape:
        raise ValueError(f"{pred.size} predictions for {labels.size} labels")
    for name, values in (("prediction", pred), ("label", labels)):
        if values.size and (values.min() < 0 or values.max() >= classes):
            raise ValueError(f"a {name} is outside 0..{classes - 1}")
    return np.bincount(labels * classes + pred, minlength=classes * classes).reshape(classes, classes)


def iou_per_class(matrix: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix; NaN where the class occurs nowhere."""
    tp = np.diag(matrix).astype(np.float64)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def miou(pred: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """Mean IoU of class predictions ``pred`` (any shape) against ``labels`` (same shape)."""
    return float(np.nanmean(iou_per_class(confusion(pred, labels, classes))))


def segmentation_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
    """``{"miou", "pixel_accuracy"}`` of logits (n, classes, H, W) against labels (n, H, W)."""
    logits = np.asarray(logits)
    pred = np.argmax(logits, axis=1)
    return {"miou": miou(pred, labels, logits.shape[1]),
            "pixel_accuracy": float(np.mean(pred == np.asarray(labels)))}


def depth_metrics(pred: np.ndarray, gt: np.ndarray) -> dict:
    """``{"rmse", "abs_rel"}`` of depths ``pred`` against ``gt`` (> 0); ``pred`` may carry a channel axis of 1."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim == gt.ndim + 1 and pred.shape[1] == 1:
        pred = pred[:, 0]
    if pred.shape != gt.shape:
        raise ValueError(f"depth prediction of shape {pred.shape} for ground truth of shape {gt.shape}")
    if np.any(gt <= 0):
        raise ValueError("ground-truth depth must be > 0")
    error = pred - gt
    return {"rmse": float(np.sqrt(np.mean(error * error))), "abs_rel": float(np.mean(np.abs(error) / gt))}


def task_metrics(kind: str, output: np.ndarray, dataset) -> dict:
    """Metrics of one task's network output (n, out, H, W) on ``dataset`` (``sim.moevit.data.Dataset``)."""
    if kind == "segmentation":
        return segmentation_metrics(output, dataset.seg)
    if kind == "depth":
        return depth_metrics(output, dataset.depth)
    raise ValueError(f"task type = {kind!r}: allowed: {', '.join(PRIMARY)}")


def trivial_outputs(kind: str, train, n: int, classes: int = 0) -> np.ndarray:
    """The trivial baseline's output for ``n`` images: the majority class / the mean depth of ``train``."""
    height, width = train.seg.shape[1:]
    if kind == "segmentation":
        majority = int(np.argmax(np.bincount(train.seg.reshape(-1), minlength=classes)))
        logits = np.zeros((n, max(classes, majority + 1), height, width), dtype=np.float32)
        logits[:, majority] = 1.0
        return logits
    if kind == "depth":
        return np.full((n, 1, height, width), float(np.mean(train.depth)), dtype=np.float32)
    raise ValueError(f"task type = {kind!r}: allowed: {', '.join(PRIMARY)}")


def multitask_delta(multi: dict, single: dict, kinds: dict) -> float:
    """Multi-task delta in percent: ``multi``/``single`` map task -> metrics dict, ``kinds`` task -> task type."""
    terms = []
    for task, kind in kinds.items():
        metric, higher_better = PRIMARY[kind]
        base = single[task][metric]
        sign = 1.0 if higher_better else -1.0
        terms.append(sign * (multi[task][metric] - base) / base)
    return 100.0 * float(np.mean(terms))
