"""FixMatch's strong augmentation, shaped for CAMs: RandAugment without geometric ops, then
random erasing (Cutout).

RandAugment's shear, translation and rotation would move the objects of the strong view away
from where the weak view (whose prediction is the pseudo-label) saw them, and distort the
class activation maps the stage exists for; so only the photometric ops remain, and a recipe
may narrow them further (`cam.fixmatch.randaugment_space`), e.g. to the ops that keep hues
where colour is what tells the classes apart. Every draw comes from torch's RNG, so the
engine's per-sample seeding keeps resume bit-exact.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torchvision.transforms import RandAugment, RandomErasing

from .section import PHOTOMETRIC_OPS

GEOMETRIC_OPS = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")


class PhotometricRandAugment(RandAugment):
    """torchvision's RandAugment drawing from `ops` (names of its photometric ops) only."""

    def __init__(self, ops: Sequence[str] = PHOTOMETRIC_OPS, **kwargs):
        super().__init__(**kwargs)
        unknown = sorted(set(ops) - set(PHOTOMETRIC_OPS))
        if unknown or not ops:
            raise ValueError(f"RandAugment ops must be a non-empty subset of {PHOTOMETRIC_OPS}, got {list(ops)}")
        self.ops = tuple(ops)

    def _augmentation_space(self, num_bins: int, image_size: tuple[int, int]):
        space = super()._augmentation_space(num_bins, image_size)
        return {name: meta for name, meta in space.items() if name in self.ops}


def photometric_randaugment(image: np.ndarray, num_ops: int, magnitude: int,
                            ops: Sequence[str] = PHOTOMETRIC_OPS) -> np.ndarray:
    """uint8 H×W×3 → uint8 H×W×3 after `num_ops` random ops drawn from `ops`."""
    if num_ops == 0:
        return image
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    out = PhotometricRandAugment(ops, num_ops=num_ops, magnitude=magnitude)(tensor)
    return out.permute(1, 2, 0).contiguous().numpy()


def random_erasing(tensor: torch.Tensor, prob: float, scale: Sequence[float]) -> torch.Tensor:
    """Cutout on a normalised (3, H, W) tensor: one rectangle of `scale` × the area, set to 0
    (the data set's mean colour after normalisation)."""
    if prob <= 0:
        return tensor
    return RandomErasing(p=prob, scale=tuple(float(s) for s in scale), value=0.0)(tensor)
