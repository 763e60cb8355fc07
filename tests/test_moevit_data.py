"""Synthetic MoE-ViT scenes (sim/moevit/data.py) and the task metrics (sim/moevit/metrics.py)."""

import numpy as np
import pytest

from sim.moevit.data import SHAPE_DEPTH, SHAPES, make_dataset, make_image, scene_shapes, shape_mask
from sim.moevit.metrics import (confusion, depth_metrics, iou_per_class, miou, multitask_delta,
                                segmentation_metrics, trivial_outputs)


@pytest.fixture(scope="module")
def scenes():
    return make_dataset(64, seed=5)


def test_shapes_dtypes_and_ranges(scenes):
    assert scenes.images.shape == (64, 3, 32, 32) and scenes.images.dtype == np.float32
    assert scenes.seg.shape == (64, 32, 32) and scenes.seg.dtype == np.int64
    assert scenes.depth.shape == (64, 32, 32) and scenes.depth.dtype == np.float32
    assert scenes.images.min() >= 0.0 and scenes.images.max() <= 1.0
    assert scenes.seg.min() >= 0 and scenes.seg.max() < 5
    assert scenes.depth.min() > 0
    # every shape class occurs, and the background still covers most pixels
    assert set(np.unique(scenes.seg)) == set(range(5))
    assert 0.5 < np.mean(scenes.seg == 0) < 0.95


def test_deterministic_and_prefix_stable(scenes):
    again = make_dataset(64, seed=5)
    for a, b in zip(scenes, again):
        np.testing.assert_array_equal(a, b)
    part = make_dataset(8, seed=5, first=20)
    np.testing.assert_array_equal(part.images, scenes.images[20:28])
    np.testing.assert_array_equal(part.seg, scenes.seg[20:28])
    image, seg, depth = make_image(5, 63)
    np.testing.assert_array_equal(image, scenes.images[63])
    np.testing.assert_array_equal(depth, scenes.depth[63])
    other = make_dataset(8, seed=6)
    assert not np.array_equal(other.images, scenes.images[:8])


def test_labels_agree_with_depth(scenes):
    shapes = scenes.seg > 0
    # shapes stand at the shape depths; the floor is farther than the nearest shape ever is
    assert np.all(scenes.depth[shapes] >= SHAPE_DEPTH[0]) and np.all(scenes.depth[shapes] <= SHAPE_DEPTH[1])
    assert np.all(scenes.depth[~shapes] > SHAPE_DEPTH[0])
    # the floor recedes upwards: its top row is farther than its bottom row in every image
    floor_top = np.where(~shapes[:, 0], scenes.depth[:, 0], np.nan)
    floor_bottom = np.where(~shapes[:, -1], scenes.depth[:, -1], np.nan)
    both = ~np.isnan(np.nanmean(floor_top, axis=1)) & ~np.isnan(np.nanmean(floor_bottom, axis=1))
    assert np.all(np.nanmean(floor_top, axis=1)[both] > np.nanmean(floor_bottom, axis=1)[both])


def test_occlusion_nearest_visible_shape_wins():
    # re-derive every label from the scene's shapes: a pixel shows the nearest shape covering it that
    # stands in front of the floor, else the floor (class 0)
    y, x = np.mgrid[0:32, 0:32] + 0.5
    seen_overlap = False
    for index in range(40):
        _, seg, depth = make_image(9, index)
        floor = np.where(seg == 0, depth, np.nan)
        expect_cls = np.zeros((32, 32), dtype=np.int64)
        expect_depth = np.full((32, 32), np.inf)
        covered = np.zeros((32, 32), dtype=int)
        for shape in scene_shapes(9, index):
            mask = shape_mask(SHAPES[shape.cls - 1], y - shape.center_y, x - shape.center_x, shape.radius)
            covered += mask
            nearer = mask & (shape.depth < expect_depth)
            expect_cls[nearer] = shape.cls
            expect_depth[nearer] = shape.depth
        seen_overlap |= bool((covered > 1).any())
        # where a shape is labelled it is the nearest covering one, at its own depth
        shown = seg > 0
        np.testing.assert_array_equal(seg[shown], expect_cls[shown])
        np.testing.assert_allclose(depth[shown], expect_depth[shown], rtol=1e-6)
        # where the floor shows, any covering shape lies behind the floor
        hidden = ~shown & np.isfinite(expect_depth)
        assert np.all(expect_depth[hidden] >= floor[hidden] - 1e-5)
    assert seen_overlap  # the check above met real occlusions


def test_other_sizes_and_classes():
    data = make_dataset(4, seed=1, height=16, width=48, classes=7)
    assert data.images.shape == (4, 3, 16, 48) and data.seg.max() < 7
    with pytest.raises(ValueError, match="classes"):
        make_dataset(1, seed=0, classes=len(SHAPES) + 2)
    with pytest.raises(ValueError, match="height"):
        make_dataset(1, seed=0, height=4)
    with pytest.raises(ValueError, match="n = -1"):
        make_dataset(-1, seed=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_masks_are_centred_and_bounded(shape):
    y, x = np.mgrid[-20:21, -20:21].astype(float)
    mask = shape_mask(shape, y, x, 10.0)
    assert mask.any() and not mask[np.hypot(y, x) > 10.0 * np.sqrt(2) + 1e-9].any()
    assert mask[np.abs(x) == 0].any()
    with pytest.raises(ValueError, match="shape"):
        shape_mask("hexagon", y, x, 1.0)


def test_miou_hand_computed():
    labels = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    # class 0: tp 1, fp 1, fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2
    assert miou(pred, labels, 3) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    matrix = confusion(pred, labels, 4)
    assert matrix.sum() == 6 and np.isnan(iou_per_class(matrix)[3])  # class 3 absent: left out
    assert miou(labels, labels, 3) == 1.0
    with pytest.raises(ValueError):
        confusion(np.array([3]), np.array([0]), 3)


def test_segmentation_and_depth_metrics():
    labels = np.array([[[0, 1], [1, 1]]])
    logits = np.zeros((1, 2, 2, 2))
    logits[0, 1] = [[0, 1], [1, -1]]  # predicts 0, 1, 1, 0
    result = segmentation_metrics(logits, labels)
    assert result["pixel_accuracy"] == 0.75
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    gt = np.array([[[1.0, 2.0], [4.0, 4.0]]])
    pred = gt[:, None] + np.array([[[1.0, 0.0], [0.0, -2.0]]])[:, None]
    metrics = depth_metrics(pred, gt)
    assert metrics["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert metrics["abs_rel"] == pytest.approx((1 + 0.5) / 4)
    with pytest.raises(ValueError):
        depth_metrics(pred, -gt)


def test_trivial_baseline_and_delta(scenes):
    seg = trivial_outputs("segmentation", scenes, 3, classes=5)
    assert seg.shape == (3, 5, 32, 32) and np.all(np.argmax(seg, axis=1) == 0)
    depth = trivial_outputs("depth", scenes, 3)
    assert depth.shape == (3, 1, 32, 32) and depth[0, 0, 0, 0] == pytest.approx(scenes.depth.mean())
    kinds = {"seg": "segmentation", "depth": "depth"}
    base = {"seg": {"miou": 0.5}, "depth": {"rmse": 2.0}}
    assert multitask_delta(base, base, kinds) == 0.0
    # +10% mIoU and +10% RMSE (worse) cancel; both better gives +10%
    assert multitask_delta({"seg": {"miou": 0.55}, "depth": {"rmse": 2.2}}, base, kinds) == pytest.approx(0.0)
    assert multitask_delta({"seg": {"miou": 0.55}, "depth": {"rmse": 1.8}}, base, kinds) == pytest.approx(10.0)
