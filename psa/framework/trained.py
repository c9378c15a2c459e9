"""A trained network of an earlier step, loaded for inference and checked against the recipe."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from ..config import Recipe
from ..engine.checkpoints import load_weights
from ..errors import PsaError
from .step import Training


def load_trained(recipe: Recipe, training: Training, build: Callable[[dict], torch.nn.Module],
                 classes: Sequence[str] | None = None, fits: dict[str, tuple[str, Any]] | None = None
                 ) -> torch.nn.Module:
    """The network `training` wrote for this recipe, in eval mode: the checkpoint is read
    once, its metadata (class list, ...) tells `build(meta)` the model's shape, then the
    weights go in. A checkpoint made for other classes than `classes`, or whose metadata
    differs from what `fits` asks ({recipe key: (metadata key, the recipe's value)}, e.g. the
    radius or head), is refused in one line."""
    path = training.weights(recipe)
    state, meta = load_weights(path, training.section, recipe.model.backbone)
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
