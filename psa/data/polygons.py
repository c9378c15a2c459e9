"""Instance ground truth from YOLO-seg polygon files (Ultralytics' format, e.g. COCO128-seg and
the `coco_polygons/` of ../shared/data/coco_voc_mini): one line per instance,
`<class> x1 y1 x2 y2 ...`, coordinates normalised to 0–1.

The polygons are painted from the largest to the smallest, so a small object in front of a
larger one keeps its pixels: the rule coco_voc_mini's semantic masks were painted with. The
class of each instance is then read from the semantic mask (the majority under it), so the
polygon file's own class numbering (YOLO's 80 COCO classes) is never needed; instances the mask
calls background (objects outside the data set's classes) are dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..constants import MAX_INSTANCES
from ..errors import PsaError
from .base import InstanceMasks, instances_from_ids


def read_polygons(path: Path, height: int, width: int) -> list[np.ndarray]:
    """The polygons of one file as (N, 2) arrays of pixel (x, y)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise PsaError(f"cannot read polygon file {path}: {err}") from None
    polygons = []
    for number, line in enumerate(lines, 1):
        values = line.split()
        if not values:
            continue
        try:
            coords = np.asarray([float(v) for v in values[1:]], dtype=np.float64)
        except ValueError:
            raise PsaError(f"{path} line {number}: not a class followed by numbers") from None
        if len(coords) < 6 or len(coords) % 2:
            raise PsaError(f"{path} line {number}: a polygon needs at least 3 x y pairs, got {len(coords)} values")
        if coords.min() < 0 or coords.max() > 1:
            raise PsaError(f"{path} line {number}: coordinates must be normalised to 0..1")
        polygons.append(coords.reshape(-1, 2) * [width, height])
    return polygons


def polygon_area(points: np.ndarray) -> float:
    """Shoelace formula, pixels²."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def instance_ids(polygons: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """uint8 map: 0 where no polygon, k where the k-th largest polygon is the last painted."""
    if len(polygons) > MAX_INSTANCES:
        raise PsaError(f"{len(polygons)} polygons in one image; at most {MAX_INSTANCES} fit an instance map")
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for rank, points in enumerate(sorted(polygons, key=polygon_area, reverse=True), 1):
        draw.polygon([tuple(p) for p in points], fill=rank)
    return np.asarray(canvas)


def instances_from_polygons(path: Path, semantic: np.ndarray) -> InstanceMasks:
    """The instances of one image, each with the class the semantic mask gives it."""
    height, width = semantic.shape
    found = instances_from_ids(instance_ids(read_polygons(path, height, width), height, width), semantic)
    keep = found.labels > 0
    return InstanceMasks(found.masks[keep], found.labels[keep])
