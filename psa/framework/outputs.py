"""Output folders: made, checked for free space, cleared of a killed run's temporary files."""

from __future__ import annotations

from pathlib import Path

from ..config import Recipe
from ..io import ensure_free_space, remove_stale_temp_files


def prepare_folders(recipe: Recipe, *folders: Path) -> None:
    ensure_free_space(recipe.run.dir, recipe.run.min_free_mb)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(folder)
