"""Masks from COCO annotations: semantic label maps painted from the instances (polygons or
RLE, decoded by pycocotools), per-instance masks, and the PNG cache of the painted maps.

Painting rule of a semantic map (`order`):
- crowd regions first, as void (255) with `crowd="ignore"` (not painted with "skip"), so a
  single instance inside a crowd keeps its class and only the rest of the crowd is void;
- then the other instances: "area" paints them from the largest pixel area to the smallest
  (ties in file order), so a smaller object in front of a larger one stays visible; "file"
  paints them in the file's order, a later one over an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ..constants import IGNORE_INDEX
from ..errors import PsaError
from ..io import save_label_png
from .base import read_raw_mask


@dataclass(frozen=True)
class Instances:
    """The instances of one image, in the file's order."""

    masks: np.ndarray  # bool N×H×W
    labels: np.ndarray  # int64 N: class index (1..K) of each
    crowd: np.ndarray  # bool N: a crowd region, not one object
    annotation_ids: np.ndarray  # int64 N: the COCO annotation ids


def _rle(coco: COCO, ann: dict, where: str) -> dict:
    try:
        return coco.annToRLE(ann)
    except Exception as err:  # pycocotools raises bare TypeError/ValueError on broken input
        raise PsaError(f"{where}: cannot decode the segmentation of annotation {ann['id']} "
                       f"(image {ann['image_id']}): {err}") from None


def paint_semantic(coco: COCO, anns: list[dict], height: int, width: int, class_of: dict[int, int],
                   order: str = "area", crowd: str = "ignore", where: str = "") -> np.ndarray:
    """uint8 H×W: class index of the instance on top, 0 where none, 255 for crowd (see above)."""
    label = np.zeros((height, width), np.uint8)
    crowds = [a for a in anns if a.get("iscrowd", 0)]
    singles = [a for a in anns if not a.get("iscrowd", 0)]
    if crowd == "ignore":
        for ann in crowds:
            label[mask_utils.decode(_rle(coco, ann, where)).astype(bool)] = IGNORE_INDEX
    rles = [_rle(coco, ann, where) for ann in singles]
    ranking = range(len(singles))
    if order == "area":
        areas = [float(mask_utils.area(rle)) for rle in rles]
        ranking = sorted(ranking, key=lambda i: (-areas[i], i))
    for i in ranking:
        label[mask_utils.decode(rles[i]).astype(bool)] = class_of[singles[i]["category_id"]]
    return label


def instance_masks(coco: COCO, anns: list[dict], height: int, width: int, class_of: dict[int, int],
                   where: str = "") -> Instances:
    masks = np.zeros((len(anns), height, width), bool)
    for i, ann in enumerate(anns):
        masks[i] = mask_utils.decode(_rle(coco, ann, where)).astype(bool)
    return Instances(masks=masks,
                     labels=np.array([class_of[a["category_id"]] for a in anns], np.int64),
                     crowd=np.array([bool(a.get("iscrowd", 0)) for a in anns], bool),
                     annotation_ids=np.array([a["id"] for a in anns], np.int64))


class MaskCache:
    """Painted maps as `<folder>/<image id>.png`, written atomically; the folder is named by
    the annotation file's content and the painting rule, so a changed file paints afresh."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, image_id: str) -> Path:
        return self.folder / f"{image_id}.png"

    def get(self, image_id: str, paint: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.path(image_id)
        cached = self._read(path)
        if cached is not None:
            return cached
        mask = paint()
        try:
            save_label_png(path, mask)
        except OSError:
            pass  # a read-only cache still gives the mask, just painted each time
        return mask

    @staticmethod
    def _read(path: Path) -> Optional[np.ndarray]:
        if not path.is_file():
            return None
        try:
            return read_raw_mask(path)
        except PsaError:  # damaged by something other than our atomic writes: paint it again
            return None
