"""Stage 1's task: the CAM classifier the recipe's `cam.method` and `cam.labeled` ask for."""

from __future__ import annotations

from ..config import LabeledConfig, Recipe
from ..data import build_source
from ..engine.trainer import TaskSpec
from .cam import build_supervised_cam_task
from .cam_semi import build_semi_cam_task


def is_partially_labeled(labeled: LabeledConfig) -> bool:
    return bool(labeled.list_file) or labeled.fraction < 1.0


def build_cam_task(recipe: Recipe) -> TaskSpec:
    """Supervised on every image, or semi-supervised (FixMatch, MixMatch, or the labelled
    subset alone) when only some images carry labels."""
    source = build_source(recipe.data, recipe.data.train_split)
    if recipe.cam.method != "supervised" or is_partially_labeled(recipe.cam.labeled):
        return build_semi_cam_task(recipe, source)
    return build_supervised_cam_task(recipe, source)
