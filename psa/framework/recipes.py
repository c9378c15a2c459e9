"""Loading a recipe: the YAML (with its `_base_` chain and overrides), the methods it needs
(every built-in one, and those its `methods` key names), then the typed, checked Recipe
with every loaded method's sections."""

from __future__ import annotations

import os
from pathlib import Path

from .. import data  # noqa: F401  (the data kinds register their recipe checks)
from ..config import loader
from ..config.sections import recipe_class, run_checks
from ..errors import PsaError
from . import methods


def load_recipe(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()):
    """Read a recipe file, apply `key=value` overrides, load the methods it needs, check it."""
    raw = loader.load_raw(path, overrides)
    extra = raw.get("methods") or []
    if not isinstance(extra, list):
        raise PsaError(f"recipe key 'methods' must be a list of module names or package folders, got {extra!r}")
    methods.load_builtin()
    raw["methods"] = methods.load_extra(extra, base=Path(path).parent)
    recipe = loader.build(recipe_class(), raw)
    run_checks(recipe)
    return recipe



def default_recipe():
    """Every section at its defaults, with the built-in methods' sections."""
    methods.load_builtin()
    return recipe_class()()
