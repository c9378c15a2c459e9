"""FixMatch's strong augmentation, shaped for CAMs: RandAugment without geometric ops, then
random erasing (Cutout).

RandAugment's shear, translation and rotation would move the objects of the strong view away
from where the weak view (whose prediction is the pseudo-label) saw them, and distort the
class activation maps the stage exists for; so only the photometric ops remain. Every draw
comes from torch's RNG, so the engine's per-sample seeding keeps resume bit-exact.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torchvision.transforms import RandAugment, RandomErasing

GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


class PhotometricRandAugment(RandAugment):
    """torchvision's RandAugment minus its geometric ops (identity, brightness, colour,
    contrast, sharpness, posterize, solarize, autocontrast, equalize)."""

    def _augmentation_space(self, num_bins: int, image_size: tuple[int, int]):
        space = super()._augmentation_space(num_bins, image_size)
        return {name: meta for name, meta in space.items() if name not in GEOMETRIC_OPS}


def photometric_randaugment(image: np.ndarray, num_ops: int, magnitude: int) -> np.ndarray:
    """uint8 H×W×3 → uint8 H×W×3 after `num_ops` random photometric ops."""
    if num_ops == 0:
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    out = PhotometricRandAugment(num_ops=num_ops, magnitude=magnitude)(tensor)
    return out.permute(1, 2, 0).contiguous().numpy()


def random_erasing(tensor: torch.Tensor, prob: float, scale: Sequence[float]) -> torch.Tensor:
    """Cutout on a normalised (3, H, W) tensor: one rectangle of `scale` × the area, set to 0
    (the data set's mean colour after normalisation)."""
    if prob <= 0:
        return tensor
    return RandomErasing(p=prob, scale=tuple(float(s) for s in scale), value=0.0)(tensor)
