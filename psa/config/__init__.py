"""YAML recipes: typed sections, `_base_` inheritance, `key=value` overrides.

A recipe describes one experiment. Every stage writes under `run.dir`:
`<dir>/cam/`, `<dir>/affinity/`, `<dir>/seg/`. `task` says which stage
`tools/train.py` trains; the other tools read whichever stages they need.

Defaults are the reference's constants (shared/reference/psa.md), so a recipe only names
what it changes. The sections and their checks are in schema.py; reading, merging, typing
and checking, which know nothing of them, in loader.py.
"""

from __future__ import annotations

import os

from . import loader
from .schema import (
    CAM_METHODS, SEMI_METHODS, TEACHERS, AffinityConfig, CamConfig, CocoConfig, CpsConfig, CrfConfig, DataConfig,
    EvalConfig, FixMatchConfig, IrnConfig, LabelCrfConfig, LabeledConfig, MixMatchConfig, ModelConfig,
    PipelineConfig, RandomWalkConfig,
    Recipe, RunConfig, SegConfig, SyntheticConfig, TrainConfig,
)

__all__ = [
    "CAM_METHODS", "SEMI_METHODS", "TEACHERS",
    "AffinityConfig", "CamConfig", "CocoConfig", "CpsConfig", "CrfConfig", "DataConfig", "EvalConfig",
    "FixMatchConfig", "IrnConfig", "LabelCrfConfig", "LabeledConfig", "MixMatchConfig", "ModelConfig",
    "PipelineConfig", "RandomWalkConfig", "Recipe",
    "RunConfig", "SegConfig", "SyntheticConfig", "TrainConfig",
    "dump_recipe", "load_recipe", "recipe_to_dict",
]


def load_recipe(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (with its `_base_` chain), apply `key=value` overrides, check it."""
    return loader.load(path, overrides, Recipe)


def recipe_to_dict(recipe: Recipe) -> dict:
    return loader.to_dict(recipe)


def dump_recipe(recipe: Recipe) -> str:
    return loader.dump(recipe)
