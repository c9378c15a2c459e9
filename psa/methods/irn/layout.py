"""Where IRN keeps its files: <run.dir>/irn/."""

from __future__ import annotations

from pathlib import Path

from ...config import Recipe
from ...layout import RunLayout, StageFolder

SECTION = "irn"


def stage(recipe: Recipe) -> StageFolder:
    return RunLayout.of(recipe).stage(SECTION)


def relation_labels_folder(recipe: Recipe) -> Path:
    return stage(recipe) / "labels"


def walk_folders(recipe: Recipe, crf: bool = True) -> dict[str, Path]:
    """The boundary walk's per-image folders: pseudo masks, scores, boundary maps, and (with
    `crf`) refined masks."""
    folders = {"pseudo": stage(recipe) / "pseudo", "scores": stage(recipe) / "scores",
               "boundary": stage(recipe) / "boundary"}
    if crf:
        folders["pseudo_crf"] = stage(recipe) / "pseudo_crf"
    return folders


def instances_folder(recipe: Recipe) -> Path:
    """Instance masks: <id>.png (pixel = instance k, 0 background) and <id>.json."""
    return stage(recipe) / "instances"
