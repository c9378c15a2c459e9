"""The embedded default dataset: generated on the fly, no files needed.

It is built to show what PSA is for. Each object is a large solid *body* whose colour comes
from a palette shared by all classes (the body says "there is an object" but not which one),
carrying a small class-specific *emblem* (colour + shape) somewhere inside it. A classifier
only needs the emblem, so its CAM covers the emblem, a small part of the object; the
ground-truth mask covers the whole body. The affinity random walk has to spread the CAM from
the emblem to the body, whose colour is uniform and clearly distinct from the cluttered,
muted background.

Everything is a pure function of (seed, split, index): `np.random.default_rng([seed,
crc32(split), index])`, so any worker can regenerate any image.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import math
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..config import DataConfig
from ..config.loader import require
from ..errors import PsaError
from .base import InstanceMasks, SegmentationSource, check_classes, instances_from_ids
from .kinds import DataKind, register_kind

# name, RGB, shape. Colour and shape both identify the class.
EMBLEMS = (
    ("red_cross", (225, 30, 35), "cross"),
    ("blue_disc", (35, 70, 235), "disc"),
    ("yellow_triangle", (245, 215, 30), "triangle"),
    ("green_bars", (30, 165, 55), "bars"),
    ("magenta_ring", (220, 45, 215), "ring"),
    ("cyan_diamond", (40, 215, 225), "diamond"),
    ("white_star", (250, 250, 250), "star"),
    ("black_frame", (15, 15, 15), "frame"),
)
MAX_CLASSES = len(EMBLEMS)

# Body hues sit half-way between the emblem hues (0, 60, ..., 300 degrees) at half saturation,
# so every emblem stands out on every body, and no body colour hints at a class.
BODY_HUES = (30, 90, 150, 210, 270, 330)
BODY_SIZE = (0.25, 0.45)  # body extent as a fraction of the image side
EMBLEM_SIZE = (0.32, 0.45)  # emblem extent as a fraction of the body's (geometric mean) extent; large enough
# that a small CNN learns the classes from scratch in a few hundred CPU steps
MIN_EMBLEM_PX = 7.0  # below this the shape is unreadable
MAX_OVERLAP = 0.15  # a new body may cover at most this fraction of an earlier object (or itself)
PLACEMENT_TRIES = 12


@dataclass
class SyntheticSample:
    image: np.ndarray  # uint8 H×W×3
    mask: np.ndarray  # uint8 H×W, class id on the whole visible body, 0 elsewhere
    instances: np.ndarray  # uint8 H×W, k = k-th placed object (1-based), 0 = background
    emblems: np.ndarray  # bool H×W, visible emblem pixels
    classes: list  # class id of each placed object, in drawing order


def split_code(split: str) -> int:
    return zlib.crc32(str(split).encode("utf-8"))


# ----------------------------------------------------------------------------- geometry


def _circle(n: int = 28) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], 1)


def _rect(x0, y0, x1, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = np.arange(2 * points) * np.pi / points - np.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], 1)


_CIRCLE = _circle()
# Unit shapes in [-1, 1]^2 as (polygon, fill) operations; fill 0 cuts a hole.
EMBLEM_SHAPES = {
    "cross": [(_rect(-1, -0.32, 1, 0.32), 1), (_rect(-0.32, -1, 0.32, 1), 1)],
    "disc": [(_CIRCLE, 1)],
    "triangle": [(np.array([[0, -1], [0.95, 0.8], [-0.95, 0.8]], dtype=np.float64), 1)],
    "bars": [(_rect(-0.9, -1, -0.25, 1), 1), (_rect(0.25, -1, 0.9, 1), 1)],
    "ring": [(_CIRCLE, 1), (_CIRCLE * 0.5, 0)],
    "diamond": [(np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], dtype=np.float64), 1)],
    "star": [(_star(), 1)],
    "frame": [(_rect(-0.9, -0.9, 0.9, 0.9), 1), (_rect(-0.42, -0.42, 0.42, 0.42), 0)],
}


def _place(points: np.ndarray, center, scale, angle: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    xy = points * np.asarray(scale, dtype=np.float64)
    xy = xy @ np.array([[c, s], [-s, c]])
    xy = xy + np.asarray(center, dtype=np.float64)
    return [(float(x), float(y)) for x, y in xy]


def _raster(size: int, operations) -> np.ndarray:
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon, fill in operations:
        draw.polygon(polygon, fill=fill)
    return np.asarray(canvas).astype(bool)


@functools.lru_cache(maxsize=16)
def _smooth_weights(n: int, grid: int) -> np.ndarray:
    """(n, grid) smoothstep interpolation weights from `grid` control points to `n` pixels."""
    pos = np.linspace(0, grid - 1, n)
    lo = np.minimum(np.floor(pos).astype(int), grid - 2)
    frac = pos - lo
    frac = frac * frac * (3 - 2 * frac)
    weights = np.zeros((n, grid), dtype=np.float32)
    weights[np.arange(n), lo] = 1 - frac
    weights[np.arange(n), lo + 1] = frac
    weights.flags.writeable = False
    return weights


@functools.lru_cache(maxsize=8)
def _coordinates(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.flags.writeable = False
    xx.flags.writeable = False
    return yy, xx


def _smooth_field(rng: np.random.Generator, size: int, grid: int, channels: int) -> np.ndarray:
    """A low-frequency random field (size, size, channels), roughly unit variance."""
    coarse = rng.standard_normal((grid, grid, channels), dtype=np.float32)
    w = _smooth_weights(size, grid)
    rows = (w @ coarse.reshape(grid, grid * channels)).reshape(size, grid, channels)
    return np.matmul(w[None], rows)  # (size, size, channels)


# ----------------------------------------------------------------------------- rendering


def _background(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    level = rng.uniform(85, 165)
    tint = rng.normal(0, 7, 3).astype(np.float32)
    field = _smooth_field(rng, size, 4, 4)
    image = (level + tint) + 22 * field[..., :1] + 6 * field[..., 1:]
    # A few low-contrast blobs and stripes in muted colours.
    for _ in range(int(rng.integers(2, 5))):
        offset = (rng.normal(0, 4, 3) + rng.choice([-1.0, 1.0]) * rng.uniform(8, 16)).astype(np.float32)
        if rng.random() < 0.5:
            center = rng.uniform(0, size, 2)
            radii = rng.uniform(0.06, 0.2, 2) * size
            region = _raster(size, [(_place(_CIRCLE, center, radii, rng.uniform(0, np.pi)), 1)])
        else:
            angle = rng.uniform(0, np.pi)
            dist = xx * math.cos(angle) + yy * math.sin(angle)
            center = rng.uniform(dist.min(), dist.max())
            region = np.abs(dist - center) < rng.uniform(0.02, 0.06) * size
        image[region] += offset
    return image


def _body_colour(rng: np.random.Generator) -> np.ndarray:
    hue = BODY_HUES[int(rng.integers(len(BODY_HUES)))] + rng.uniform(-8, 8)
    rgb = colorsys.hsv_to_rgb((hue % 360) / 360, rng.uniform(0.45, 0.6), rng.uniform(0.55, 0.75))
    return np.array(rgb, dtype=np.float32) * 255


def _body_operations(rng: np.random.Generator, size: int):
    dx, dy = rng.uniform(*BODY_SIZE, 2) * size
    radius = max(dx, dy) / 2
    center = rng.uniform(radius, size - radius, 2)
    kind = int(rng.integers(3))
    if kind == 0:  # ellipse
        shape, angle = _CIRCLE, rng.uniform(0, np.pi)
    elif kind == 1:  # rectangle
        shape, angle = _rect(-1, -1, 1, 1) * 0.9, rng.uniform(-0.5, 0.5)
    else:  # irregular convex-ish polygon
        count = int(rng.integers(5, 9))
        t = (np.arange(count) + rng.uniform(-0.3, 0.3, count)) * 2 * np.pi / count
        r = rng.uniform(0.85, 1.0, count)
        shape, angle = np.stack([r * np.cos(t), r * np.sin(t)], 1), rng.uniform(0, np.pi)
    return [(_place(shape, center, (dx / 2, dy / 2), angle), 1)], (dx, dy)


def _emblem_mask(rng: np.random.Generator, size: int, body: np.ndarray, extent, shape: str):
    dx, dy = extent
    diameter = rng.uniform(*EMBLEM_SIZE) * math.sqrt(dx * dy)
    diameter = min(max(diameter, MIN_EMBLEM_PX), 0.45 * min(dx, dy))
    r = diameter / 2 + 1.0
    ys, xs = np.nonzero(body)
    probe = _circle(8) * r
    center = np.array([xs.mean(), ys.mean()])
    for _ in range(PLACEMENT_TRIES):
        k = int(rng.integers(len(xs)))
        candidate = np.array([xs[k], ys[k]], dtype=np.float64)
        points = np.rint(candidate + probe).astype(int)
        if (points >= 0).all() and (points < size).all() and body[points[:, 1], points[:, 0]].all():
            center = candidate
            break
    angle = rng.uniform(-0.26, 0.26)
    operations = [(_place(poly, center, diameter / 2, angle), fill) for poly, fill in EMBLEM_SHAPES[shape]]
    return _raster(size, operations) & body


def render(seed: int, split: str, index: int, size: int, num_classes: int,
           max_objects: int) -> SyntheticSample:
    """One image; a pure function of its arguments."""
    rng = np.random.default_rng([int(seed), split_code(split), int(index)])
    yy, xx = _coordinates(size)
    image = _background(rng, size, yy, xx)
    shade = _smooth_field(rng, size, 6, 1)[..., 0]

    instances = np.zeros((size, size), dtype=np.uint8)
    emblems = np.zeros((size, size), dtype=bool)
    classes: list[int] = []
    wanted = int(rng.integers(1, max_objects + 1))
    for _ in range(wanted):
        class_id = int(rng.integers(1, num_classes + 1))
        placed = None
        for _ in range(PLACEMENT_TRIES):
            operations, extent = _body_operations(rng, size)
            body = _raster(size, operations)
            area = int(body.sum())
            if area < 16:
                continue
            if classes:
                covered = body & (instances > 0)
                if covered.sum() > MAX_OVERLAP * area or (body & emblems).any():
                    continue
                hit = np.bincount(instances[covered], minlength=len(classes) + 1)[1:]
                sizes = np.bincount(instances.ravel(), minlength=len(classes) + 1)[1:]
                if (hit > MAX_OVERLAP * sizes).any():
                    continue
            placed = (body, extent)
            break
        if placed is None:
            continue
        body, extent = placed
        name, emblem_rgb, shape = EMBLEMS[class_id - 1]
        emblem = _emblem_mask(rng, size, body, extent, shape)
        colour = _body_colour(rng)
        image[body] = colour * (1 + 0.07 * shade[body, None]) + rng.normal(0, 3, 3)
        image[emblem] = np.asarray(emblem_rgb, dtype=np.float32) + rng.normal(0, 6, 3)
        classes.append(class_id)
        instances[body] = len(classes)
        emblems[body] = False
        emblems |= emblem

    image += 4.0 * rng.standard_normal(image.shape, dtype=np.float32)
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    lut = np.array([0] + classes + [0] * (255 - len(classes)), dtype=np.uint8)
    mask = lut[instances]
    return SyntheticSample(image=image, mask=mask, instances=instances, emblems=emblems, classes=classes)


# ----------------------------------------------------------------------------- source


def check_generator(num_classes: int, image_size: int, max_objects: int, seed: int) -> None:
    """The generator's limits, for the recipe's keys and for a source built directly."""
    require(1 <= num_classes <= MAX_CLASSES, "data.synthetic.num_classes", f"must be in 1..{MAX_CLASSES}, got {num_classes}")
    require(image_size >= 32, "data.synthetic.image_size", f"must be >= 32, got {image_size}")
    require(max_objects >= 1, "data.synthetic.max_objects", f"must be >= 1, got {max_objects}")
    require(seed >= 0, "data.synthetic.seed", f"must be >= 0, got {seed}")


class SyntheticSource(SegmentationSource):
    def __init__(self, split: str, num_images: int = 60, image_size: int = 112, num_classes: int = 4,
                 max_objects: int = 3, seed: int = 0, classes: Optional[Sequence[str]] = None):
        check_generator(num_classes, image_size, max_objects, seed)
        if num_images < 1:
            raise PsaError(f"data.synthetic: split {split!r} needs at least 1 image, got {num_images}")
        self.split = str(split)
        self.num_images = int(num_images)
        self.size = int(image_size)
        self.max_objects = int(max_objects)
        self.seed = int(seed)
        default = ("background",) + tuple(e[0] for e in EMBLEMS[:num_classes])
        if classes is not None:
            if len(classes) != len(default):
                raise PsaError(f"data.classes has {len(classes)} names but the synthetic data set has "
                               f"{len(default)} classes (background + {num_classes})")
            self.classes = check_classes(classes, "data.classes")
            self.classes_from = "recipe key data.classes"
        else:
            self.classes = default
            self.classes_from = f"the synthetic generator (data.synthetic.num_classes={num_classes})"
        tag = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.split)
        self.ids = [f"syn_{tag}_{i:05d}" for i in range(self.num_images)]
        self._last: Optional[tuple[int, SyntheticSample]] = None

    @property
    def has_masks(self) -> bool:
        return True

    def sample(self, index: int) -> SyntheticSample:
        """The full generated record of image `index` (image, mask, instances, emblems)."""
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        sample = render(self.seed, self.split, index, self.size, self.num_classes - 1, self.max_objects)
        self._last = (index, sample)
        return sample

    def load_image(self, index: int) -> np.ndarray:
        return self.sample(index).image.copy()

    def load_mask(self, index: int) -> np.ndarray:
        return self.sample(index).mask.copy()

    def image_labels(self, index: int) -> np.ndarray:
        return np.unique(np.asarray(self.sample(index).classes, dtype=np.int64))

    @property
    def has_instances(self) -> bool:
        return True

    def load_instances(self, index: int) -> InstanceMasks:
        sample = self.sample(index)
        return instances_from_ids(sample.instances, sample.mask)

    def image_size(self, index: int) -> tuple[int, int]:
        return self.size, self.size


def _check(data: DataConfig) -> None:
    syn = data.synthetic
    check_generator(syn.num_classes, syn.image_size, syn.max_objects, syn.seed)
    require(syn.num_train >= 1 and syn.num_val >= 1, "data.synthetic.num_train", "and num_val must be >= 1")


def _build(data: DataConfig, split: str) -> SyntheticSource:
    """Split "train" has `num_train` images, every other split name `num_val`; the content
    depends on the split name, so splits never share images."""
    syn = data.synthetic
    count = syn.num_train if split == "train" else syn.num_val
    return SyntheticSource(split, num_images=count, image_size=syn.image_size, num_classes=syn.num_classes,
                           max_objects=syn.max_objects, seed=syn.seed, classes=data.classes)


register_kind(DataKind("synthetic", _build, check=_check,
                       identity=lambda data: {f"data.synthetic.{k}": v
                                              for k, v in dataclasses.asdict(data.synthetic).items()}))
