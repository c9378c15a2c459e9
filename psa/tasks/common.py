"""Pieces the stage builders share: image de-normalisation for pictures, the class list."""

from __future__ import annotations

import numpy as np
import torch

from ..config import Recipe
from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..data import build_source


def denormalize(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) normalised tensor → uint8 H×W×3 for pictures."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    rgb = (image.float() * std + mean).clamp(0, 1) * 255
    return rgb.permute(1, 2, 0).round().byte().cpu().numpy()


def class_names(recipe: Recipe) -> tuple[str, ...]:
    """The class list of the training split (index 0 = background)."""
    return tuple(build_source(recipe.data, recipe.data.train_split).classes)
