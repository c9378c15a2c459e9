"""Datasets: one `SegmentationSource` interface over the VOC, Oxford-IIIT Pet, COCO and
synthetic layouts; `build_source` picks the layout a recipe's `data` section names."""

from __future__ import annotations

from ..config import DataConfig
from ..errors import PsaError
from .base import SegmentationSource, check_classes, read_mask, read_rgb, validate_ids
from .coco import CocoSource
from .pet import PetSource
from .resized import ResizedSource
from .synthetic import SyntheticSource, materialize_voc
from .voc import VocSource

__all__ = ["SegmentationSource", "VocSource", "PetSource", "CocoSource", "SyntheticSource", "build_source",
           "class_list", "materialize_voc", "read_rgb", "read_mask", "validate_ids"]


def build_source(data: DataConfig, split: str) -> SegmentationSource:
    """The `split` of the data set described by the recipe's `data` section.

    synthetic: split "train" has `num_train` images, every other split name `num_val`; the
    content depends on the split name, so splits never share images."""
    source = _layout_source(data, split)
    return ResizedSource(source, data.max_size) if data.max_size > 0 else source


def class_list(data: DataConfig, split: str) -> tuple[tuple[str, ...], str]:
    """The class names the recipe's data section resolves to (index 0: the background) and
    where they come from (the recipe, classes.txt, the layout's default)."""
    source = _layout_source(data, split)
    return tuple(source.classes), source.classes_from


def _layout_source(data: DataConfig, split: str) -> SegmentationSource:
    kind = data.kind
    if kind == "voc":
        return VocSource(data.root, split, classes=data.classes)
    if kind == "pet":
        source = PetSource(data.root, split, label_mode=data.label_mode)
        if data.classes is not None:
            if len(data.classes) != len(source.classes):
                raise PsaError(f"data.classes has {len(data.classes)} names but the pet layout "
                               f"(label_mode={data.label_mode}) has {len(source.classes)} classes")
            source.classes = check_classes(data.classes, "data.classes")
            source.classes_from = "recipe key data.classes"
        return source
    if kind == "coco":
        return CocoSource(data.root, split, data.coco, classes=data.classes)
    if kind == "synthetic":
        syn = data.synthetic
        count = syn.num_train if split == "train" else syn.num_val
        return SyntheticSource(split, num_images=count, image_size=syn.image_size,
                               num_classes=syn.num_classes, max_objects=syn.max_objects,
                               seed=syn.seed, classes=data.classes)
    raise PsaError(f"data.kind must be voc, pet, coco or synthetic, got {kind!r}")
