"""MS COCO from its own annotation files (`data.kind: coco`, recipe section `data.coco`).

```
<root>/annotations/instances_train2014.json     data.coco.train_annotations
<root>/train2014/<file_name>                    data.coco.train_images
<root>/annotations/instances_val2014.json       data.coco.val_annotations
<root>/val2014/<file_name>                      data.coco.val_images
```

- Split "train" / "val": every image of that annotation file; any other split name is an id
  list file (relative to the root, or absolute), one id a line, looked up in the train file,
  then the val one. An id is the image's `file_name` without its extension
  (`COCO_train2014_000000000009`) or its numeric COCO id (`9`).
- Classes: the file's categories in sorted id order are class indices 1..K, background 0
  (`category_ids[k]` is the COCO id of class k; `class_map()` writes the table).
- Image labels: the categories of all the image's annotations, crowd regions included.
  Images without any annotation are left out of the split (the usual 2014 protocol, e.g. 82,081
  train images); one log line on the `psa` logger says how many, `dropped` holds the count.
- Masks: painted from the instances on first use (psa/data/coco_masks.py: larger instances
  first, so smaller ones stay on top; crowd void) and cached as PNGs under `data.coco.cache_dir`
  in a folder named by the annotation file's content, never all held in memory.
  `load_instances` gives the per-instance masks (for instance evaluation).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..config import CocoConfig, DataConfig
from ..errors import PsaError
from .base import SegmentationSource, check_classes, check_id, check_root, read_text_lines, validate_ids
from .coco_index import CocoIndex, load_index
from .coco_masks import Instances, MaskCache, instance_masks, paint_semantic
from .kinds import DataKind, register_kind, root_identity

logger = logging.getLogger("psa")
SETS = ("train", "val")
_REPORTED: set[tuple[str, str]] = set()  # (fingerprint, split): the dropped-images line once per process


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "psa" / "coco"


class CocoSource(SegmentationSource):
    def __init__(self, root: str | os.PathLike, split: str, config: Optional[CocoConfig] = None,
                 classes: Optional[Sequence[str]] = None):
        self.root = check_root(root, "COCO")
        self.split = split
        self.config = config or CocoConfig()
        self._indexes: dict[str, CocoIndex] = {}
        self.list_file: Optional[Path] = None  # the id list file of a split other than train / val
        entries = self._entries(split)
        if not entries:
            raise PsaError(f"{self._where()}: no image ids")
        first = self._indexes[entries[0][0]]
        for index in self._indexes.values():
            if index.category_ids != first.category_ids or index.names != first.names:
                raise PsaError(f"COCO annotation files {first.path} and {index.path} declare other "
                               f"categories; split {split!r} uses both")
        self.category_ids: tuple[int, ...] = (0, *first.category_ids)  # [k] = COCO id of class k
        self._class_of = {cat: k for k, cat in enumerate(first.category_ids, start=1)}
        names, where = ("background", *first.names), str(first.path)
        if classes is not None:  # other names for the same classes (the count must match)
            if len(classes) != len(names):
                raise PsaError(f"data.classes has {len(classes)} names but {first.path} declares "
                               f"{len(names) - 1} categories (+ background)")
            names, where = tuple(classes), "data.classes"
        self.classes = check_classes(names, where)
        kept = [(s, c) for s, c in entries if self._indexes[s].annotations(c)]
        self.dropped = len(entries) - len(kept)
        self._report_dropped(len(entries))
        if not kept:
            raise PsaError(f"{self._where()}: none of the {len(entries)} images of split {split!r} "
                           f"has an annotation")
        self._entries_kept = kept
        self.ids = validate_ids([self._indexes[s].by_coco[c] for s, c in kept], self._where())

    # ------------------------------------------------------------------ split

    def _index(self, name: str) -> CocoIndex:
        if name not in self._indexes:
            key = f"data.coco.{name}_annotations"
            self._indexes[name] = load_index(self.root / getattr(self.config, f"{name}_annotations"), key)
        return self._indexes[name]

    def _entries(self, split: str) -> list[tuple[str, int]]:
        """(annotation set, COCO image id) of each image of the split, in file / list order."""
        if not split or not str(split).strip():
            raise PsaError("empty split name (recipe key data.train_split / eval_split / val_split)")
        if split in SETS:
            return [(split, coco_id) for coco_id in self._index(split).by_name.values()]
        path = self.root / Path(split).expanduser()
        if not path.is_file():
            raise PsaError(f"split {split!r} is neither train nor val and no id list file {path} exists "
                           f"(recipe key data.train_split / eval_split / val_split)")
        self.list_file = path
        entries = []
        for number, line in enumerate(read_text_lines(path, "id list file"), start=1):
            token = line.strip()
            if token and not token.startswith("#"):
                check_id(token, f"{path}:{number}")
                entries.append(self._find(token, f"{path}:{number}"))
        return entries

    def _find(self, token: str, where: str) -> tuple[str, int]:
        searched = []
        for name in SETS:
            path = self.root / getattr(self.config, f"{name}_annotations")
            if name != SETS[0] and not path.is_file() and name not in self._indexes:
                continue  # a list of train images needs no val file
            index = self._index(name)
            searched.append(str(index.path))
            if token in index.by_name:
                return name, index.by_name[token]
            if token.isdigit() and int(token) in index.by_coco:
                return name, int(token)
        raise PsaError(f"{where}: image id {token} is not in {' nor '.join(searched)}")

    def _where(self) -> str:
        return str(self.list_file or self._indexes[self.split].path)

    def _report_dropped(self, total: int) -> None:
        tag = (",".join(i.fingerprint for i in self._indexes.values()), str(self.split))
        if self.dropped and tag not in _REPORTED:
            _REPORTED.add(tag)
            logger.info("coco: %d of %d images of split %r have no annotation and are left out (%s)",
                        self.dropped, total, self.split, self._where())

    # ------------------------------------------------------------------ per image

    def _record(self, index: int) -> tuple[CocoIndex, dict]:
        name, coco_id = self._entries_kept[index]
        coco_index = self._indexes[name]
        return coco_index, coco_index.coco.imgs[coco_id]

    def image_path(self, index: int) -> Path:
        name, _ = self._entries_kept[index]
        coco_index, image = self._record(index)
        key = f"data.coco.{name}_images"
        path = self.root / getattr(self.config, f"{name}_images") / image["file_name"]
        if not path.is_file():
            raise PsaError(f"image {self.ids[index]} (id {image['id']} in {coco_index.path}): no file {path} "
                           f"(recipe key {key})")
        return path

    @property
    def has_masks(self) -> bool:
        return True

    def image_labels(self, index: int) -> np.ndarray:
        coco_index, image = self._record(index)
        labels = [self._class_of[a["category_id"]] for a in coco_index.annotations(image["id"])]
        return np.unique(np.asarray(labels, np.int64))

    def _checked(self, index: int) -> tuple[CocoIndex, dict, list[dict]]:
        coco_index, image = self._record(index)
        size = self.image_size(index)
        if size != (image["height"], image["width"]):
            raise PsaError(f"image {self.ids[index]}: {coco_index.path} says {image['height']}x{image['width']} "
                           f"(HxW), the file {self.image_path(index)} is {size[0]}x{size[1]}")
        return coco_index, image, coco_index.annotations(image["id"])

    def load_mask(self, index: int) -> np.ndarray:
        """uint8 H×W class indices, 255 on crowd regions (the painting rule: psa/data/coco_masks.py)."""
        coco_index, image, anns = self._checked(index)
        cfg = self.config
        return self.mask_cache(coco_index).get(self.ids[index], lambda: paint_semantic(
            coco_index.coco, anns, image["height"], image["width"], self._class_of, cfg.order, cfg.crowd,
            str(coco_index.path)))

    def load_instances(self, index: int) -> Instances:
        """Every annotation of the image as its own mask, in the file's order (not cached)."""
        coco_index, image, anns = self._checked(index)
        return instance_masks(coco_index.coco, anns, image["height"], image["width"], self._class_of,
                              str(coco_index.path))

    def mask_cache(self, coco_index: CocoIndex) -> MaskCache:
        base = Path(self.config.cache_dir).expanduser() if self.config.cache_dir else default_cache_dir()
        name = f"{coco_index.path.stem}-{coco_index.fingerprint}-{self.config.order}-{self.config.crowd}"
        return MaskCache(base / name)

    # ------------------------------------------------------------------ what the run records

    def identity(self) -> dict:
        """The annotation files' content fingerprints and image folders this split reads (the
        provenance data identity: a changed file reruns every stage that read it)."""
        return {name: {"annotations": f"{index.path.name} sha256 {index.fingerprint}",
                       "images": str((self.root / getattr(self.config, f"{name}_images")).resolve())}
                for name, index in sorted(self._indexes.items())}

    def class_map(self) -> dict:
        """Class index ↔ COCO category id ↔ name, as written to <run.dir>/data/coco_classes.json."""
        return {"annotations": {n: str(i.path) for n, i in sorted(self._indexes.items())},
                "classes": [{"index": k, "category_id": self.category_ids[k] if k else None, "name": name}
                            for k, name in enumerate(self.classes)]}


def _identity(data: DataConfig) -> dict:
    """The root and the painting rule; the cache folder changes no mask."""
    return {**root_identity(data), **{f"data.coco.{k}": v for k, v in dataclasses.asdict(data.coco).items()
                                      if k != "cache_dir"}}


register_kind(DataKind("coco", lambda data, split: CocoSource(data.root, split, data.coco, classes=data.classes),
                       identity=_identity))
