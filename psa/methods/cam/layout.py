"""Where the CAM stage's files live: <run.dir>/cam/."""

from __future__ import annotations

from pathlib import Path

from ...config import Recipe
from ...layout import RunLayout, StageFolder

SECTION = "cam"


def stage(recipe: Recipe) -> StageFolder:
    return RunLayout.of(recipe).stage(SECTION)


def export_folders(recipe: Recipe) -> dict[str, Path]:
    """The export's per-image folders: CAM files, CAM predictions, confident labels."""
    return {"cams": stage(recipe) / "cams", "pred": stage(recipe) / "pred", "labels": stage(recipe) / "labels"}


def export_record(recipe: Recipe) -> Path:
    return stage(recipe) / "export.provenance.json"


def export_done(recipe: Recipe) -> Path:
    return stage(recipe) / "export_done.json"
