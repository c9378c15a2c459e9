"""Datasets: one `SegmentationSource` interface over the layouts (VOC, Oxford-IIIT Pet, COCO,
the synthetic set), each registered as a data kind by its module (kinds.py); `build_source`
builds the split a recipe's `data` section names."""

from __future__ import annotations

from ..config import DataConfig
from ..config.sections import register_check
from .base import SegmentationSource, read_mask, read_rgb, validate_ids
from .coco import CocoSource  # each layout's module registers its kind
from .kinds import KINDS, check_data, data_identity, kind_of
from .pet import PetSource
from .resized import ResizedSource
from .synthetic import SyntheticSource
from .voc import VocSource, materialize_voc

register_check(check_data)

__all__ = ["SegmentationSource", "VocSource", "PetSource", "CocoSource", "SyntheticSource", "KINDS", "build_source",
           "class_list", "data_identity", "materialize_voc", "read_rgb", "read_mask", "validate_ids"]


def build_source(data: DataConfig, split: str) -> SegmentationSource:
    """The `split` of the data set described by the recipe's `data` section."""
    source = _layout_source(data, split)
    return ResizedSource(source, data.max_size) if data.max_size > 0 else source


def class_list(data: DataConfig, split: str) -> tuple[tuple[str, ...], str]:
    """The class names the recipe's data section resolves to (index 0: the background) and
    where they come from (the recipe, classes.txt, the layout's default)."""
    source = _layout_source(data, split)
    return tuple(source.classes), source.classes_from


def _layout_source(data: DataConfig, split: str) -> SegmentationSource:
    return kind_of(data).build(data, split)
