"""PASCAL VOC 2012 layout (and anything written in it, e.g. coco_voc_mini or materialize_voc).

```
<root>/JPEGImages/<id>.jpg
<root>/SegmentationClass/<id>.png      (else SegmentationClassAug/<id>.png)  palette indices
<root>/Annotations/<id>.xml            optional: image labels from the object names
<root>/image_labels.txt                optional: "<id> <cls> [<cls> ...]": class indices (1-based)
                                       or class names
<root>/classes.txt                     optional: line k = name of class k (else the VOC 21)
<root>/ImageSets/Segmentation/<split>.txt
```

Image labels come from the XML (all objects, "difficult" ones included, as the reference's
`make_cls_labels.py`), else from `image_labels.txt`, else from the mask.
"""

from __future__ import annotations

import difflib
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ..constants import VOC_CLASSES
from ..errors import PsaError
from ..io import atomic_write_text, atomic_write_with, save_label_png
from .base import (
    IMAGE_EXTENSIONS,
    FolderIndex,
    InstanceMasks,
    SegmentationSource,
    check_classes,
    check_id,
    check_root,
    content_identity,
    file_digest,
    finish_labels,
    instances_from_ids,
    labels_from_mask,
    read_classes_file,
    read_mask,
    read_text_lines,
    validate_ids,
)
from .kinds import DataKind, register_kind, root_identity
from .polygons import instances_from_polygons

MASK_FOLDERS = ("SegmentationClass", "SegmentationClassAug")
INSTANCE_FOLDER = "SegmentationObject"  # pixel = instance k of the image, 0 background, 255 void
POLYGON_FOLDER = "coco_polygons"  # else: YOLO-seg polygon files <id>.txt (psa/data/polygons.py)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")  # in the order image_path tries them


def resolve_list_file(root: Path, split: str, folder: str, key: str) -> Path:
    """`split` as a name (`<root>/<folder>/<split>.txt`) or a list file path (absolute or
    relative to the root)."""
    if not split or not str(split).strip():
        raise PsaError(f"empty split name (recipe key {key})")
    named = root / folder / f"{split}.txt"
    as_path = root / Path(split).expanduser()  # an absolute path stays absolute
    for candidate in (named, as_path):
        try:
            if candidate.is_file():
                return candidate
            if candidate.exists():  # a FIFO or a device would block or never end
                raise PsaError(f"cannot read the list file of split {split!r} {candidate}: not a regular file")
        except OSError as err:  # a folder on the way that cannot be entered
            raise PsaError(f"cannot read the list file of split {split!r} ({candidate}): "
                           f"{err.strerror} (recipe key {key})") from None
    raise PsaError(f"split {split!r} not found: no list file {named} (recipe key {key}; "
                   f"a list file path also works)")


class VocSource(SegmentationSource):
    def __init__(self, root: str | os.PathLike, split: str,
                 classes: Optional[Sequence[str]] = None):
        self.root = check_root(root, "VOC")
        self.split = split
        self.list_file = resolve_list_file(self.root, split, "ImageSets/Segmentation",
                                           "data.train_split / eval_split / val_split")
        if classes is not None:
            self.classes, self.classes_from = check_classes(classes, "data.classes"), "recipe key data.classes"
        elif (self.root / "classes.txt").is_file():
            self.classes = read_classes_file(self.root / "classes.txt")
            self.classes_from = str(self.root / "classes.txt")
        else:
            self.classes, self.classes_from = VOC_CLASSES, f"the 21 VOC classes (no {self.root / 'classes.txt'})"
        self._class_index = {name: k for k, name in enumerate(self.classes)}
        self.ids, self._explicit_masks = self._read_list(self.list_file)
        self._label_cache: dict[int, np.ndarray] = {}
        self._label_file: Optional[dict[str, tuple[int, ...]]] = None
        self._has_masks: Optional[bool] = None

    # ------------------------------------------------------------------ list file

    def _read_list(self, path: Path) -> tuple[list[str], dict[str, Path]]:
        ids: list[str] = []
        masks: dict[str, Path] = {}
        for number, line in enumerate(read_text_lines(path, "list file"), start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) > 2:
                raise PsaError(f"{path}:{number}: expected '<id>' or '<image path> <mask path>', "
                               f"got {len(tokens)} fields")
            first = tokens[0]
            if Path(first).suffix.lower() in IMAGE_EXTENSIONS:
                check_id(first.lstrip("/"), f"{path}:{number}")
                image_id = Path(first).stem
            else:
                image_id = first
            check_id(image_id, f"{path}:{number}")
            if len(tokens) == 2:
                relative = tokens[1].lstrip("/")
                check_id(relative, f"{path}:{number}")
                masks[image_id] = self.root / relative
            ids.append(image_id)
        return validate_ids(ids, path), masks

    # ------------------------------------------------------------------ paths

    def image_path(self, index: int) -> Path:
        image_id = self.ids[index]
        path = self.root / "JPEGImages" / f"{image_id}.jpg"
        if path.is_file():
            return path
        for ext in IMAGE_SUFFIXES[1:]:
            other = path.with_name(image_id + ext)
            if other.is_file():
                return other
        return path  # read_rgb then names the missing .jpg

    def mask_path(self, index: int) -> Optional[Path]:
        """The mask file of image `index`, or None if there is none."""
        image_id = self.ids[index]
        explicit = self._explicit_masks.get(image_id)
        if explicit is not None and explicit.is_file():
            return explicit
        for folder in MASK_FOLDERS:
            path = self.root / folder / f"{image_id}.png"
            if path.is_file():
                return path
        return None

    @property
    def has_masks(self) -> bool:
        """True when every image of the split has a mask file."""
        if self._has_masks is None:
            self._has_masks = all(self.mask_path(i) is not None for i in range(len(self.ids)))
        return self._has_masks

    def content_identity(self) -> dict[str, str]:
        """The labels as image labels are read (an annotation by its content, an image_labels.txt
        line by its resolved classes), the masks and the images by content; each
        file found as image_path / mask_path find it, from one listing per folder."""
        table = self._labels_table()
        annotations = FolderIndex(self.root / "Annotations")
        mask_folders = [FolderIndex(self.root / folder) for folder in MASK_FOLDERS]
        photos = FolderIndex(self.root / "JPEGImages")
        labels, masks, images, sources = [], [], [], set()
        for image_id in self.ids:
            xml = annotations.find(f"{image_id}.xml")
            if xml is not None:
                labels.append(f"xml {file_digest(xml)}")
                sources.add(str((self.root / "Annotations").resolve()))
            elif image_id in table:
                labels.append(" ".join(map(str, sorted(set(table[image_id])))))
                sources.add(str((self.root / "image_labels.txt").resolve()))
            else:
                labels.append(None)  # from its mask, hashed with the masks
            explicit = self._explicit_masks.get(image_id)
            if explicit is not None and explicit.is_file():
                masks.append(str(explicit))
            else:
                masks.append(next((m for f in mask_folders if (m := f.find(f"{image_id}.png")) is not None), None))
            images.append(next((p for ext in IMAGE_SUFFIXES if (p := photos.find(image_id + ext)) is not None), None))
        return content_identity(self.ids, labels, masks, images, " + ".join(sorted(sources)))

    # ------------------------------------------------------------------ loaders

    def load_mask(self, index: int) -> np.ndarray:
        path = self.mask_path(index)
        if path is None:
            image_id = self.ids[index]
            raise PsaError(f"no mask for image {image_id}: none of "
                           + ", ".join(f"{f}/{image_id}.png" for f in MASK_FOLDERS)
                           + f" exists in {self.root}")
        return read_mask(path, self.num_classes, self.image_size(index))

    def _instance_file(self, image_id: str) -> Optional[Path]:
        for path in (self.root / INSTANCE_FOLDER / f"{image_id}.png", self.root / POLYGON_FOLDER / f"{image_id}.txt"):
            if path.is_file():
                return path
        return None

    @property
    def has_instances(self) -> bool:
        """True when every image has a mask and instances: an instance map
        (SegmentationObject/<id>.png) or a polygon file (coco_polygons/<id>.txt)."""
        return self.has_masks and all(self._instance_file(i) is not None for i in self.ids)

    def load_instances(self, index: int) -> InstanceMasks:
        image_id = self.ids[index]
        path = self._instance_file(image_id)
        if path is None:
            raise PsaError(f"no instances for image {image_id}: neither {INSTANCE_FOLDER}/{image_id}.png nor "
                           f"{POLYGON_FOLDER}/{image_id}.txt exists in {self.root}")
        if path.suffix == ".txt":
            return instances_from_polygons(path, self.load_mask(index))
        return instances_from_ids(read_mask(path, None, self.image_size(index)), self.load_mask(index))

    def image_labels(self, index: int) -> np.ndarray:
        cached = self._label_cache.get(index)
        if cached is None:
            cached = self._compute_labels(index)
            self._label_cache[index] = cached
        return cached.copy()

    def _compute_labels(self, index: int) -> np.ndarray:
        image_id = self.ids[index]
        xml = self.root / "Annotations" / f"{image_id}.xml"
        if xml.is_file():
            return finish_labels(self._xml_labels(xml), self.num_classes, image_id, str(xml))
        table = self._labels_table()
        if image_id in table:
            return finish_labels(table[image_id], self.num_classes, image_id,
                                 str(self.root / "image_labels.txt"))
        if self.mask_path(index) is not None:
            return finish_labels(labels_from_mask(self.load_mask(index)), self.num_classes,
                                 image_id, f"mask {self.mask_path(index)}")
        raise PsaError(f"no image labels for image {image_id}: no Annotations/{image_id}.xml, "
                       f"no line in image_labels.txt and no mask under {self.root}")

    def _xml_labels(self, path: Path) -> list[int]:
        try:
            tree = ET.parse(path)
        except (ET.ParseError, OSError) as err:
            raise PsaError(f"cannot read annotation {path}: {err}") from None
        labels = []
        for obj in tree.getroot().iter("object"):
            node = obj.find("name")
            name = (node.text or "").strip() if node is not None else ""
            if name not in self._class_index or self._class_index[name] == 0:
                raise PsaError(f"annotation {path}: unknown class name {name!r}")
            labels.append(self._class_index[name])
        return labels

    def _labels_table(self) -> dict[str, tuple[int, ...]]:
        if self._label_file is None:
            path = self.root / "image_labels.txt"
            table: dict[str, tuple[int, ...]] = {}
            if path.is_file():
                for number, line in enumerate(read_text_lines(path, "label file"), start=1):
                    tokens = line.split()
                    if not tokens or tokens[0].startswith("#"):
                        continue
                    if tokens[0] in table:
                        raise PsaError(f"{path}:{number}: duplicate image id {tokens[0]!r}")
                    table[tokens[0]] = tuple(self._label_value(t, f"{path}:{number}") for t in tokens[1:])
            self._label_file = table
        return self._label_file

    def _label_value(self, token: str, where: str) -> int:
        """A class of image_labels.txt: its index (1..K-1) or its name in the class list."""
        try:
            return int(token)
        except ValueError:
            pass
        index = self._class_index.get(token)
        if index == 0:
            raise PsaError(f"{where}: {token!r} is the background (line 0 of the class list), "
                           "not an image label")
        if index is None:
            close = difflib.get_close_matches(token, self.classes[1:], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PsaError(f"{where}: unknown class name {token!r} (classes from {self.classes_from}){hint}")
        return index


# ----------------------------------------------------------------------------- writing the layout


def materialize_voc(source: SegmentationSource, root: str | os.PathLike,
                    split: Optional[str] = None) -> Path:
    """Write `source` in VOC layout under `root` (JPEG q95 images, palette-PNG masks,
    `ImageSets/Segmentation/<split>.txt`, `classes.txt`); returns the list file path.
    `VocSource(root, split)` then reads the same ids, classes, masks and labels."""
    root = Path(root)
    split = split if split is not None else getattr(source, "split", None)
    if not split:
        raise PsaError("materialize_voc: no split name given")
    for index, image_id in enumerate(source.ids):
        image = Image.fromarray(source.load_image(index))
        atomic_write_with(root / "JPEGImages" / f"{image_id}.jpg",
                          lambda buf, im=image: im.save(buf, format="JPEG", quality=95, subsampling=0))
        if source.has_masks:
            save_label_png(root / "SegmentationClass" / f"{image_id}.png", source.load_mask(index))
        if source.has_instances:  # VOC's instance layout: pixel = instance k (1-based), 0 background
            instances = source.load_instances(index)
            ids = np.zeros(instances.masks.shape[1:], dtype=np.uint8)
            for k, mask in enumerate(instances.masks, 1):
                ids[mask] = k
            save_label_png(root / "SegmentationObject" / f"{image_id}.png", ids)
    atomic_write_text(root / "classes.txt", "\n".join(source.classes) + "\n")
    _merge_label_file(root / "image_labels.txt",
                      {image_id: source.image_labels(i) for i, image_id in enumerate(source.ids)})
    list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    atomic_write_text(list_file, "\n".join(source.ids) + "\n")
    return list_file


def _merge_label_file(path: Path, labels: dict) -> None:
    """Add/replace this split's lines in `image_labels.txt`, keeping other splits' lines."""
    table: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            tokens = line.split()
            if tokens:
                table[tokens[0]] = " ".join(tokens[1:])
    for image_id, values in labels.items():
        table[image_id] = " ".join(str(int(v)) for v in values)
    atomic_write_text(path, "".join(f"{k} {v}\n" for k, v in sorted(table.items())))


register_kind(DataKind("voc", lambda data, split: VocSource(data.root, split, classes=data.classes),
                       identity=root_identity))
