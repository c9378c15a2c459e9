"""What the inference stages share: image lists, trained models, output folders."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..config import Recipe
from ..data import build_source
from ..data.base import SegmentationSource
from ..engine.checkpoints import load_weights
from ..errors import PsaError
from ..io import ensure_free_space, remove_stale_temp_files
from ..layout import RunLayout


@dataclass(frozen=True)
class Item:
    """One image of a stage's list: its id and where to load it from."""

    image_id: str
    source: SegmentationSource
    index: int

    def load(self):
        return self.source.load_image(self.index)


# The keys a mask-refining CRF reads: both sections, one of them unused (Recipe.refining_crf)
REFINING_CRF_READS = ("crf", "mask_crf")


def refining_crf_unused(recipe: Recipe) -> tuple[str, ...]:
    """The CRF section a mask-refining step leaves unread: with `mask_crf` unset, its records
    hold `crf` (and stay those they were before the key existed)."""
    return ("crf",) if recipe.mask_crf is not None else ("mask_crf",)


def items_for(recipe: Recipe, splits: list[str]) -> list[Item]:
    """The images of several splits, each id once, in a stable order."""
    seen: dict[str, Item] = {}
    for split in splits:
        source = build_source(recipe.data, split)
        for index, image_id in enumerate(source.ids):
            seen.setdefault(image_id, Item(image_id, source, index))
    return list(seen.values())


def default_splits(recipe: Recipe, override: str) -> list[str]:
    """By default a stage covers the training images (the next stage learns from them) and
    the evaluation images (their pseudo masks get scored)."""
    if override:
        return [override]
    return list(dict.fromkeys([recipe.data.train_split, recipe.data.eval_split]))


def load_trained(recipe: Recipe, stage: str, build: Callable[[dict], torch.nn.Module],
                 classes: Sequence[str] | None = None, fits: dict[str, tuple[str, Any]] | None = None
                 ) -> torch.nn.Module:
    """A stage's trained network in eval mode: the checkpoint is read once, its metadata (class
    list, ...) tells `build(meta)` the model's shape, then the weights go in. A checkpoint made
    for other classes than `classes`, or whose metadata differs from what `fits` asks
    ({recipe key: (metadata key, the recipe's value)}, e.g. the radius or head), is refused in
    one line (also for weights without a provenance record)."""
    path = RunLayout.of(recipe).stage(stage).weights
    state, meta = load_weights(path, stage, recipe.model.backbone)
    asked = {"data.classes": ("classes", list(classes) if classes is not None else None), **(fits or {})}
    for key, (meta_key, value) in asked.items():
        old = meta.get(meta_key)
        if value is None or old is None:
            continue
        if (list(old) if isinstance(old, (list, tuple)) else old) != value:
            raise PsaError(f"checkpoint {path} was trained with {key}={old!r}, the recipe says {key}={value!r}")
    model = build(meta)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise PsaError(f"checkpoint {path} does not fit this model: {str(err).splitlines()[0]}") from None
    model.class_names = list(meta.get("classes") or [])  # for a prediction's legend and per-image classes
    return model.eval()


def output_dirs(recipe: Recipe, *folders: Path) -> None:
    ensure_free_space(recipe.run.dir, recipe.run.min_free_mb)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(folder)

