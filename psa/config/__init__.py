"""YAML recipes: typed sections, `_base_` inheritance, `key=value` overrides.

A recipe describes one experiment; every step writes under `run.dir`. The core sections are
in schema.py, the methods' own are registered from their packages (sections.py); reading,
merging, typing and checking, which know no section, are in loader.py. `psa.load_recipe`
loads the methods a recipe needs and returns it checked.
"""

from __future__ import annotations

from . import loader
from .schema import (
    CocoConfig, CrfConfig, DataConfig, EvalConfig, LabeledConfig, ModelConfig, Pairs, PipelineConfig, Recipe,
    RunConfig, SegLabels, SegNetworkConfig, SyntheticConfig, TrainConfig,
)

__all__ = [
    "CocoConfig", "CrfConfig", "DataConfig", "EvalConfig", "LabeledConfig", "ModelConfig", "Pairs",
    "PipelineConfig", "Recipe", "RunConfig", "SegLabels", "SegNetworkConfig", "SyntheticConfig", "TrainConfig",
    "dump_recipe", "recipe_to_dict",
]


def recipe_to_dict(recipe: Recipe) -> dict:
    return loader.to_dict(recipe)


def dump_recipe(recipe: Recipe) -> str:
    return loader.dump(recipe)
