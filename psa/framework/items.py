"""The images a step covers: ids of one or more splits, each with where to load it from."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Recipe
from ..data import build_source
from ..data.base import SegmentationSource


@dataclass(frozen=True)
class Item:
    """One image of a step's list: its id and where to load it from."""

    image_id: str
    source: SegmentationSource
    index: int

    def load(self):
        return self.source.load_image(self.index)


def items_for(recipe: Recipe, splits: list[str]) -> list[Item]:
    """The images of several splits, each id once, in a stable order."""
    seen: dict[str, Item] = {}
    for split in splits:
        source = build_source(recipe.data, split)
        for index, image_id in enumerate(source.ids):
            seen.setdefault(image_id, Item(image_id, source, index))
    return list(seen.values())


def default_splits(recipe: Recipe, override: str) -> list[str]:
    """By default a per-image step covers the training images (the next step learns from
    them) and the evaluation images (their pseudo masks get scored)."""
    if override:
        return [override]
    return list(dict.fromkeys([recipe.data.train_split, recipe.data.eval_split]))
