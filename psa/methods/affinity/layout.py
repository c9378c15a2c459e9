"""Where AffinityNet and its walk keep their files: <run.dir>/affinity/."""

from __future__ import annotations

from pathlib import Path

from ...config import Recipe
from ...layout import RunLayout, StageFolder

SECTION = "affinity"
WALK = "random_walk"


def stage(recipe: Recipe) -> StageFolder:
    return RunLayout.of(recipe).stage(SECTION)


def walk_folders(recipe: Recipe, crf: bool = True) -> dict[str, Path]:
    """The walk's per-image folders: pseudo masks, scores, and (with `crf`) refined masks."""
    folders = {"pseudo": stage(recipe) / "pseudo", "scores": stage(recipe) / "rw_scores"}
    if crf:
        folders["pseudo_crf"] = stage(recipe) / "pseudo_crf"
    return folders


def walk_done(recipe: Recipe) -> Path:
    return stage(recipe).done(WALK)
