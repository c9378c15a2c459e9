"""Pieces the stage builders share: image de-normalisation for pictures, backbone freezing."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import PsaError


def denormalize(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) normalised tensor → uint8 H×W×3 for pictures."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    rgb = (image.float() * std + mean).clamp(0, 1) * 255
    return rgb.permute(1, 2, 0).round().byte().cpu().numpy()



def require_pngs(folder: Path, ids: Sequence[str], what: str, hint: str) -> None:
    """Every training image's <id>.png in `folder` (labels or masks a step wrote), else one
    line naming how many are missing, the first, and the step that writes them."""
    missing = [i for i in ids if not (folder / f"{i}.png").is_file()]
    if missing:
        raise PsaError(f"{what} missing for {len(missing)} of {len(ids)} images (first: "
                       f"{folder / missing[0]}.png); {hint}")


def apply_freeze_backbone(model: torch.nn.Module, freeze: bool) -> torch.nn.Module:
    """`<stage>.train.freeze_backbone`: only the stage's new layers learn (few images)."""
    if freeze:
        for param in model.backbone.parameters():
            param.requires_grad_(False)
    return model
