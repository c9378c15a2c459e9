"""Oxford-IIIT Pet layout.

```
<root>/images/<id>.jpg
<root>/annotations/trimaps/<id>.png     1 = pet, 2 = background, 3 = border (→ 255)
<root>/annotations/{trainval,test}.txt  "<id> <class 1..37> <species 1=cat 2=dog> <breed id>"
```

`label_mode="species"`: classes (background, cat, dog). `label_mode="breed"`: the background
plus the 37 breeds, named after the id prefix (`Abyssinian_100` → `Abyssinian`) and ordered by
class id. The breed table is read from every list file in `annotations/` so that all splits
agree on it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..config.loader import require
from ..constants import IGNORE_INDEX
from ..errors import PsaError
from .base import (
    FolderIndex,
    SegmentationSource,
    check_classes,
    check_id,
    check_root,
    content_identity,
    read_mask,
    read_text_lines,
    validate_ids,
)
from .kinds import DataKind, register_kind, root_identity
from .voc import resolve_list_file

LABEL_MODES = ("species", "breed")
SPECIES = ("background", "cat", "dog")
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3
STANDARD_LISTS = ("trainval.txt", "test.txt", "list.txt")


def _parse_pet_list(path: Path) -> list[tuple[str, int, int]]:
    rows = []
    for number, line in enumerate(read_text_lines(path, "list file"), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = stripped.split()
        if len(tokens) < 3:
            raise PsaError(f"{path}:{number}: expected '<id> <class id> <species> <breed id>', "
                           f"got {stripped!r}")
        try:
            class_id, species = int(tokens[1]), int(tokens[2])
        except ValueError:
            raise PsaError(f"{path}:{number}: class id and species must be integers, got "
                           f"{stripped!r}") from None
        check_id(tokens[0], f"{path}:{number}")
        if class_id < 1:
            raise PsaError(f"{path}:{number}: image {tokens[0]}: class id {class_id} out of range (>= 1)")
        if species not in (1, 2):
            raise PsaError(f"{path}:{number}: image {tokens[0]}: species {species} must be 1 (cat) or 2 (dog)")
        rows.append((tokens[0], class_id, species))
    return rows


class PetSource(SegmentationSource):
    def __init__(self, root: str | os.PathLike, split: str, label_mode: str = "species"):
        check_label_mode(label_mode)
        self.root = check_root(root, "Oxford-IIIT Pet")
        self.split = split
        self.label_mode = label_mode
        self.list_file = resolve_list_file(self.root, split, "annotations",
                                           "data.train_split / eval_split / val_split")
        rows = _parse_pet_list(self.list_file)
        self.ids = validate_ids([r[0] for r in rows], self.list_file)
        if label_mode == "species":
            self.classes = SPECIES
            self._labels = [r[2] for r in rows]
        else:
            self.classes = self._breed_classes(rows)
            self._labels = [r[1] for r in rows]
        self.classes_from = f"the Oxford-IIIT Pet layout (data.label_mode={label_mode})"
        self._has_masks = None

    def _breed_classes(self, rows: list[tuple[str, int, int]]) -> tuple[str, ...]:
        names: dict[int, str] = {}
        where: dict[int, str] = {}
        sources = [(self.list_file, rows)]
        for name in STANDARD_LISTS:
            path = self.root / "annotations" / name
            if path.is_file() and path.resolve() != self.list_file.resolve():
                sources.append((path, _parse_pet_list(path)))
        for path, table in sources:
            for image_id, class_id, _ in table:
                breed = image_id.rsplit("_", 1)[0]
                if class_id in names and names[class_id] != breed:
                    raise PsaError(f"{path}: image {image_id} gives class id {class_id} the breed "
                                   f"{breed!r}, but {where[class_id]} calls it {names[class_id]!r}")
                names.setdefault(class_id, breed)
                where.setdefault(class_id, str(path))
        count = max(names)
        return check_classes(["background"] + [names.get(k, f"breed_{k}") for k in range(1, count + 1)],
                             str(self.list_file))

    def image_path(self, index: int) -> Path:
        return self.root / "images" / f"{self.ids[index]}.jpg"

    def trimap_path(self, index: int) -> Path:
        return self.root / "annotations" / "trimaps" / f"{self.ids[index]}.png"

    @property
    def has_masks(self) -> bool:
        if self._has_masks is None:
            self._has_masks = all(self.trimap_path(i).is_file() for i in range(len(self.ids)))
        return self._has_masks

    def load_mask(self, index: int) -> np.ndarray:
        path = self.trimap_path(index)
        if not path.is_file():
            raise PsaError(f"no trimap for image {self.ids[index]}: {path} does not exist")
        trimap = read_mask(path, image_size=self.image_size(index))
        bad = (trimap < TRIMAP_PET) | (trimap > TRIMAP_BORDER)
        if bad.any():
            raise PsaError(f"trimap {path} has value {int(trimap[bad].min())}; expected 1 (pet), "
                           f"2 (background) or 3 (border)")
        lut = np.array([IGNORE_INDEX, self._labels[index], 0, IGNORE_INDEX] + [IGNORE_INDEX] * 252,
                       dtype=np.uint8)
        return lut[trimap]

    def image_labels(self, index: int) -> np.ndarray:
        return np.array([self._labels[index]], dtype=np.int64)

    def content_identity(self) -> dict[str, str]:
        """The list file's classes, the trimaps and the images by content."""
        trimaps, images = FolderIndex(self.root / "annotations" / "trimaps"), FolderIndex(self.root / "images")
        return content_identity(self.ids, [str(label) for label in self._labels],
                                [trimaps.find(f"{image_id}.png") for image_id in self.ids],
                                [images.find(f"{image_id}.jpg") for image_id in self.ids],
                                str(self.list_file.resolve()))


def check_label_mode(label_mode: str) -> None:
    require(label_mode in LABEL_MODES, "data.label_mode", f"must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}")


def _build(data: DataConfig, split: str) -> PetSource:
    source = PetSource(data.root, split, label_mode=data.label_mode)
    if data.classes is not None:
        if len(data.classes) != len(source.classes):
            raise PsaError(f"data.classes has {len(data.classes)} names but the pet layout "
                           f"(label_mode={data.label_mode}) has {len(source.classes)} classes")
        source.classes = check_classes(data.classes, "data.classes")
        source.classes_from = "recipe key data.classes"
    return source


register_kind(DataKind("pet", _build, check=lambda data: check_label_mode(data.label_mode),
                       identity=lambda data: {**root_identity(data), "data.label_mode": data.label_mode}))
