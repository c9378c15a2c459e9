"""One COCO `instances_*.json`: read, checked, indexed by pycocotools, fingerprinted.

Every stage builds its sources anew (and the provenance check builds one per split), so an
index is kept per process for as long as the file's size and mtime are unchanged: the 450 MB
train2014 file is parsed and hashed once, not once per stage.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from PIL import Image
from pycocotools.coco import COCO

from ..errors import PsaError
from .base import check_id

_KEEP = 4  # indexes kept per process (train + val, and a changed file's successor)
_CACHE: dict[tuple[str, int, int], "CocoIndex"] = {}


@dataclass(frozen=True)
class CocoIndex:
    path: Path
    fingerprint: str  # sha256 of the file's bytes (16 hex digits)
    coco: COCO  # pycocotools' index: imgs, anns, imgToAnns, cats
    category_ids: tuple[int, ...]  # sorted: category_ids[k - 1] is class index k
    names: tuple[str, ...]  # category names in the same order
    by_name: dict[str, int]  # our image id (file_name without extension) -> COCO image id
    by_coco: dict[int, str]  # the reverse

    def annotations(self, coco_id: int) -> list[dict]:
        return self.coco.imgToAnns.get(coco_id, [])


def load_index(path: Path, key: str) -> CocoIndex:
    """The index of the annotation file at `path` (`key`: the recipe key that names it)."""
    try:
        stat = path.stat()
    except OSError:
        raise PsaError(f"COCO annotation file {path} not found (recipe key {key})") from None
    cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    index = _CACHE.get(cache_key)
    if index is None:
        index = _read(path)
        while len(_CACHE) >= _KEEP:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[cache_key] = index
    return index


def _read(path: Path) -> CocoIndex:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise PsaError(f"cannot read COCO annotation file {path}: {err.strerror}") from None
    try:
        dataset = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        where = (f"line {err.lineno} column {err.colno}: {err.msg}" if isinstance(err, json.JSONDecodeError)
                 else str(err).splitlines()[0])
        raise PsaError(f"COCO annotation file {path} is not valid JSON ({where})") from None
    categories, images = _check_dataset(dataset, path)
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco.createIndex()
    order = sorted(categories)
    return CocoIndex(path=path, fingerprint=hashlib.sha256(data).hexdigest()[:16], coco=coco,
                     category_ids=tuple(order), names=tuple(categories[c] for c in order), by_name=images,
                     by_coco={v: k for k, v in images.items()})


def _field(record: dict, name: str, kinds: tuple[type, ...], path: Path, what: str) -> Any:
    value = record.get(name) if isinstance(record, dict) else None
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise PsaError(f"COCO annotation file {path}: {what} has no valid '{name}' (got {value!r:.60})")
    return value


def _check_dataset(dataset: Any, path: Path) -> tuple[dict[int, str], dict[str, int]]:
    """The categories {id: name} and images {our id: COCO id}; every annotation checked, so a
    bad one stops the run at once, naming its id, not at its image's batch."""
    if not isinstance(dataset, dict):
        raise PsaError(f"COCO annotation file {path}: expected an object with images, annotations, categories")
    for name in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(name), list):
            raise PsaError(f"COCO annotation file {path}: no '{name}' list")
    categories: dict[int, str] = {}
    for number, cat in enumerate(dataset["categories"]):
        cat_id = _field(cat, "id", (int,), path, f"category #{number}")
        name = _field(cat, "name", (str,), path, f"category {cat_id}")
        if cat_id in categories:
            raise PsaError(f"COCO annotation file {path}: category id {cat_id} declared twice")
        categories[cat_id] = name.strip()
    if not categories:
        raise PsaError(f"COCO annotation file {path}: no categories")
    images: dict[str, int] = {}
    sizes: dict[int, tuple[int, int]] = {}
    for number, image in enumerate(dataset["images"]):
        coco_id = _field(image, "id", (int,), path, f"image #{number}")
        file_name = _field(image, "file_name", (str,), path, f"image {coco_id}")
        size = tuple(_field(image, k, (int,), path, f"image {coco_id}") for k in ("height", "width"))
        if min(size) < 1 or size[0] * size[1] > Image.MAX_IMAGE_PIXELS:
            raise PsaError(f"COCO annotation file {path}: image {coco_id} has a size of {size[1]}x{size[0]} "
                           f"(width x height), not a photo psa reads (at most {Image.MAX_IMAGE_PIXELS} pixels)")
        if coco_id in sizes:
            raise PsaError(f"COCO annotation file {path}: image id {coco_id} listed twice")
        ours = str(PurePosixPath(file_name).with_suffix(""))
        check_id(ours, f"COCO annotation file {path}, image {coco_id}")
        if ours in images:
            raise PsaError(f"COCO annotation file {path}: images {images[ours]} and {coco_id} share "
                           f"the file name {file_name!r}")
        images[ours], sizes[coco_id] = coco_id, size
    seen: set[int] = set()
    for number, ann in enumerate(dataset["annotations"]):
        ann_id = _field(ann, "id", (int,), path, f"annotation #{number}")
        what = f"annotation {ann_id}"
        if ann_id in seen:
            raise PsaError(f"COCO annotation file {path}: annotation id {ann_id} listed twice")
        seen.add(ann_id)
        image_id = _field(ann, "image_id", (int,), path, what)
        if image_id not in sizes:
            raise PsaError(f"COCO annotation file {path}: {what} refers to image id {image_id}, "
                           f"which is not among the file's images")
        cat_id = _field(ann, "category_id", (int,), path, what)
        if cat_id not in categories:
            raise PsaError(f"COCO annotation file {path}: {what} (image {image_id}) has category id "
                           f"{cat_id}, which is not among the file's categories")
        _check_segmentation(ann.get("segmentation"), sizes[image_id], path, f"{what} (image {image_id})")
    return categories, images


def _check_segmentation(segm: Any, size: tuple[int, int], path: Path, what: str) -> None:
    """Polygons (lists of at least 3 x, y pairs of finite numbers near the image) or an RLE
    {size, counts} of the image's size whose counts cover it exactly: pycocotools crashes the
    process, or fills the memory, on anything else."""
    height, width = size
    if isinstance(segm, list):
        for polygon in segm:
            if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
                raise PsaError(f"COCO annotation file {path}: {what} has a polygon that is not "
                               f"a list of at least 3 x, y pairs")
            for x, y in zip(polygon[::2], polygon[1::2]):
                if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in (x, y)):
                    raise PsaError(f"COCO annotation file {path}: {what} has a polygon point ({x!r}, {y!r}) "
                                   "that is not two finite numbers")
                if not (-width <= x <= 2 * width and -height <= y <= 2 * height):
                    raise PsaError(f"COCO annotation file {path}: {what} has a polygon point ({x:g}, {y:g}) "
                                   f"far outside its {width}x{height} image")
        return
    if isinstance(segm, dict) and isinstance(segm.get("counts"), (list, str)):
        if list(segm.get("size") or []) != list(size):
            raise PsaError(f"COCO annotation file {path}: {what} has an RLE of size {segm.get('size')}, "
                           f"its image is {list(size)} (height, width)")
        counts = segm["counts"]
        runs = _compressed_counts(counts) if isinstance(counts, str) else counts
        if runs is None or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in runs) \
                or sum(runs) != height * width:
            raise PsaError(f"COCO annotation file {path}: {what} has RLE counts that do not cover its "
                           f"{width}x{height} image (garbled or of another image)")
        return
    raise PsaError(f"COCO annotation file {path}: {what} has no valid 'segmentation' "
                   f"(polygons or an RLE with size and counts)")


def _compressed_counts(text: str) -> Optional[list[int]]:
    """The run lengths of a compressed RLE string (pycocotools' rleFrString, in Python: 5 bits
    a character from '0', continuation 0x20, sign 0x10, each run after the second a delta of
    the run two before), or None where the C code would read past the string's end."""
    runs: list[int] = []
    position = 0
    while position < len(text):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(text):
                return None
            code = ord(text[position]) - 48
            if not 0 <= code < 64:
                return None
            value |= (code & 0x1F) << (5 * shift)
            more = bool(code & 0x20)
            position += 1
            shift += 1
            if not more and code & 0x10:
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs
