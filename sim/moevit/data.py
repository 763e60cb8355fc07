"""Synthetic segmentation + depth scenes: a miniature of the Cityscapes pair that M3ViT and Edge-MoE run.

Each image is a camera looking at a textured floor plane (near at the bottom, far at the top)
with a few flat shapes standing in front of it. The per-pixel class map says which shape (or the
background, class 0) is visible; the depth map is the distance along the view axis of what is
visible. Depth is recoverable from three cues, as in real scenes: apparent size (a shape's radius
is inversely proportional to its depth), the perspective scale of the floor's checker texture, and
fog (colours fade towards a grey with distance). Shapes are vivid and the floor is a greyish,
low-contrast checker, so what is a shape is visible pixel by pixel; which class it is can be told
only from its outline: the colours are random, so the network cannot classify by colour.

Image ``i`` of ``make_dataset(n, seed)`` is drawn from its own generator seeded with
``(seed, i)``: a dataset is the prefix of every larger one with the same seed, and any image can be
regenerated alone (:func:`make_image`).
"""

from typing import NamedTuple

import numpy as np

#: Shape drawn for class ``c`` (``c >= 1``) is ``SHAPES[c - 1]``; class 0 is the background.
SHAPES = ("disk", "square", "triangle", "cross", "ring", "diamond")
#: Depth range of the shapes, in floor units; the floor spans ``FLOOR_NEAR`` to ``FLOOR_FAR``.
SHAPE_DEPTH = (2.5, 9.0)
FLOOR_NEAR = (5.0, 8.0)
FLOOR_FAR = (13.0, 18.0)
#: A shape at depth ``d`` has radius ``SIZE_AT_UNIT_DEPTH * s / d`` pixels at 32 pixels of image
#: height, s ~ U(0.8, 1.25).
SIZE_AT_UNIT_DEPTH = 36.0
#: Brightness step between the floor checker's two colours, and the largest tint of its grey.
FLOOR_CONTRAST = 0.12
FLOOR_TINT = 0.06
#: Fog: a fraction ``exp(-depth / FOG_LENGTH)`` of a surface's colour survives.
FOG_LENGTH = 22.0
MAX_SHAPES = 3
NOISE_SIGMA = 0.02
#: The three disjoint image streams: training, validation during training, and held-out evaluation
#: (models/train_tiny.py, ``npuforge eval`` and tests/test_moevit_trained.py).
TRAIN_SEED, VALIDATION_SEED, HELD_OUT_SEED = 1, 2, 3


class Dataset(NamedTuple):
    """``images`` float32 (n, 3, H, W) in [0, 1]; ``seg`` int64 (n, H, W) in [0, classes);
    ``depth`` float32 (n, H, W) > 0."""

    images: np.ndarray
    seg: np.ndarray
    depth: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, start: int, stop: int) -> "Dataset":
        """Images ``start`` to ``stop - 1``."""
        return Dataset(self.images[start:stop], self.seg[start:stop], self.depth[start:stop])


def _check(n: int, height: int, width: int, classes: int) -> None:
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n = {n!r}: the number of images must be an integer >= 0")
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < 8:
            raise ValueError(f"{name} = {value!r}: must be an integer >= 8")
    if not isinstance(classes, (int, np.integer)) or not 2 <= classes <= len(SHAPES) + 1:
        raise ValueError(f"classes = {classes!r}: must be an integer in 2..{len(SHAPES) + 1} "
                         f"(background plus up to {len(SHAPES)} shapes: {', '.join(SHAPES)})")


def shape_mask(shape: str, dy: np.ndarray, dx: np.ndarray, radius: float) -> np.ndarray:
    """Pixels inside ``shape`` of ``radius`` whose offsets from its centre are ``(dy, dx)`` (boolean)."""
    ady, adx = np.abs(dy), np.abs(dx)
    if shape == "disk":
        return dy * dy + dx * dx <= radius * radius
    if shape == "square":
        return np.maximum(ady, adx) <= 0.8 * radius
    if shape == "triangle":  # apex up, base at +0.7 r
        rows = (dy >= -radius) & (dy <= 0.7 * radius)
        return rows & (adx <= 0.95 * radius * (dy + radius) / (1.7 * radius))
    if shape == "cross":
        arm = radius / 3
        return ((adx <= arm) & (ady <= radius)) | ((ady <= arm) & (adx <= radius))
    if shape == "ring":
        dist2 = dy * dy + dx * dx
        return (dist2 <= radius * radius) & (dist2 >= (0.55 * radius) ** 2)
    if shape == "diamond":
        return ady + adx <= radius
    raise ValueError(f"shape = {shape!r}: allowed: {', '.join(SHAPES)}")


def _fog(color: np.ndarray, depth: np.ndarray, fog_color: np.ndarray) -> np.ndarray:
    keep = np.exp(-depth / FOG_LENGTH)
    return color * keep + fog_color[:, None, None] * (1.0 - keep)


class Shape(NamedTuple):
    """One shape of a scene: its class (>= 1), depth, centre (pixels, y then x) and radius (pixels)."""

    cls: int
    depth: float
    center_y: float
    center_x: float
    radius: float


def _pixel_centres(height: int, width: int):
    return np.arange(height, dtype=np.float64)[:, None] + 0.5, np.arange(width, dtype=np.float64)[None, :] + 0.5


def _floor_colors(rng) -> np.ndarray:
    """The checker's two colours: a greyish colour and a slightly lighter or darker one (a low-contrast texture)."""
    base = rng.uniform(0.3, 0.7) + rng.uniform(-FLOOR_TINT, FLOOR_TINT, size=3)
    return np.stack([base, np.clip(base + rng.choice([-1.0, 1.0]) * FLOOR_CONTRAST, 0.0, 1.0)])


def _saturated_colors(rng, count: int) -> np.ndarray:
    """``count`` vivid RGB colours (random hue, saturation and value 0.6 to 1)."""
    hue = rng.uniform(0.0, 6.0, size=count)
    saturation = rng.uniform(0.6, 1.0, size=count)
    value = rng.uniform(0.6, 1.0, size=count)
    # HSV -> RGB: each channel's distance round the hue circle from its own primary
    k = (np.array([5.0, 3.0, 1.0])[None, :] + hue[:, None]) % 6.0
    ramp = np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return value[:, None] * (1.0 - saturation[:, None] * ramp)


def _draw_scene(rng, height: int, width: int, classes: int) -> dict:
    """Every random choice of one scene, in a fixed order (the floor, then the shapes, then the noise)."""
    scene = {"near": rng.uniform(*FLOOR_NEAR), "far": rng.uniform(*FLOOR_FAR), "tilt": rng.uniform(-1.0, 1.0),
             "cell": rng.uniform(1.5, 3.0), "floor_colors": _floor_colors(rng),
             "floor_grain": rng.random((1, height, width)), "fog_color": 0.7 + rng.uniform(-0.05, 0.05, size=3)}
    count = rng.integers(1, MAX_SHAPES + 1)
    shape_class = rng.integers(1, classes, size=count)
    shape_depth = rng.uniform(*SHAPE_DEPTH, size=count)
    size = rng.uniform(0.8, 1.25, size=count)
    center = rng.uniform(0.0, 1.0, size=(count, 2)) * [height, width]
    radius = SIZE_AT_UNIT_DEPTH * (height / 32.0) * size / shape_depth  # sizes are stated for 32 rows
    scene["shapes"] = [Shape(int(shape_class[k]), float(shape_depth[k]), float(center[k, 0]), float(center[k, 1]),
                             float(radius[k])) for k in range(count)]
    scene["shape_colors"] = _saturated_colors(rng, count)
    scene["stripes"] = rng.uniform(0.5, 2.0, size=count)
    scene["noise"] = rng.normal(0.0, NOISE_SIGMA, size=(3, height, width))
    return scene


def floor_depth(scene: dict, height: int, width: int) -> np.ndarray:
    """The floor's depth at every pixel: linear in the row (far at the top) with a small sideways tilt."""
    y, x = _pixel_centres(height, width)
    return scene["far"] + (scene["near"] - scene["far"]) * (y / height) + scene["tilt"] * (x / width - 0.5)


def scene_shapes(seed: int, index: int, height: int = 32, width: int = 32, classes: int = 5) -> list:
    """The shapes (:class:`Shape`) of image ``index`` of the dataset with ``seed``, in drawing-choice order."""
    _check(0, height, width, classes)
    return _draw_scene(np.random.default_rng([seed, index]), height, width, classes)["shapes"]


def make_image(seed: int, index: int, height: int = 32, width: int = 32, classes: int = 5):
    """Image ``index`` of the dataset with ``seed``: ``(image (3, H, W), seg (H, W), depth (H, W))``."""
    _check(0, height, width, classes)
    scene = _draw_scene(np.random.default_rng([seed, index]), height, width, classes)
    y, x = _pixel_centres(height, width)
    scale = height / 32.0
    depth = floor_depth(scene, height, width)
    # Checker in floor coordinates: its cells shrink on screen with distance.
    lateral = (x - width / 2) / (height / 2) * depth  # ground coordinate across the view
    checker = (np.floor(lateral / scene["cell"]) + np.floor(depth / scene["cell"])) % 2
    colors = scene["floor_colors"]
    image = np.where(checker[None] > 0, colors[0][:, None, None], colors[1][:, None, None])
    image = _fog(image * (0.9 + 0.1 * scene["floor_grain"]), depth, scene["fog_color"])
    seg = np.zeros((height, width), dtype=np.int64)

    # Shapes, drawn far to near so that nearer ones occlude.
    shapes = scene["shapes"]
    for k in sorted(range(len(shapes)), key=lambda k: -shapes[k].depth):
        shape = shapes[k]
        mask = shape_mask(SHAPES[shape.cls - 1], y - shape.center_y, x - shape.center_x, shape.radius)
        mask &= shape.depth < depth  # a shape never pokes through the floor
        if not mask.any():
            continue
        shade = 0.9 + 0.1 * np.sin((x + y) * scene["stripes"][k] / scale)  # a surface texture, not a class cue
        color = _fog(scene["shape_colors"][k][:, None, None] * shade[None], np.full_like(depth, shape.depth),
                     scene["fog_color"])
        image = np.where(mask[None], color, image)
        depth = np.where(mask, shape.depth, depth)
        seg = np.where(mask, shape.cls, seg)

    image = image + scene["noise"]
    return np.clip(image, 0.0, 1.0).astype(np.float32), seg, depth.astype(np.float32)


def make_dataset(n: int, seed: int, height: int = 32, width: int = 32, classes: int = 5, first: int = 0) -> Dataset:
    """``n`` scenes of ``classes`` classes (background + ``classes - 1`` shapes), deterministic in ``seed``.

    The scenes are images ``first`` .. ``first + n - 1`` of the seed's endless sequence (training
    draws fresh batches by moving ``first``).
    """
    _check(n, height, width, classes)
    if not isinstance(first, (int, np.integer)) or first < 0:
        raise ValueError(f"first = {first!r}: must be an integer >= 0")
    images = np.empty((n, 3, height, width), dtype=np.float32)
    seg = np.empty((n, height, width), dtype=np.int64)
    depth = np.empty((n, height, width), dtype=np.float32)
    for i in range(n):
        images[i], seg[i], depth[i] = make_image(seed, first + i, height, width, classes)
    return Dataset(images, seg, depth)
