"""The CAMs every WSSS method starts from.

`CamFile` is one image's CAMs on disk (`<id>.npz`: the labelled classes' maps at the image's
size, float16, and their class ids). A CAM method provides the other methods two things
through the registry: its `CamExport` (the step writing the CAM files, the CAM predictions
and the confident labels, and their folders) and its `Classifier` (the trained network).
A method reads them through `cam_export()` and `classifier()`, never by the CAM method's name.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from ..config import Recipe
from ..errors import PsaError
from ..io import save_npz
from ..ops.cam import class_lookup
from .registry import REGISTRY
from .step import Step

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CamFile:
    """One image's CAMs: (K, H, W) float32 maps of its K labelled classes, and their class ids."""

    cams: np.ndarray
    class_ids: np.ndarray  # (K,) int64, 1..num_classes-1

    @property
    def lookup(self) -> np.ndarray:
        """Channel → class id of a score stack with the background first (channel 0)."""
        return class_lookup(self.class_ids)

    @classmethod
    def read(cls, path: Path, hint: str = "run the CAM export first (tools/export_cams.py)") -> "CamFile":
        """Refused in one line when the file is missing or not a CAM file."""
        path = Path(path)
        if not path.is_file():
            raise PsaError(f"CAM file missing: {path}; {hint}")
        try:
            with np.load(path) as data:
                cams, class_ids = data["cams"].astype(np.float32), data["classes"].astype(np.int64)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise PsaError(f"cannot read CAM file {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
                           f"; delete it and rerun the CAM export") from None
        if cams.ndim != 3 or len(cams) != len(class_ids):
            raise PsaError(f"cannot read CAM file {path}: {len(class_ids)} classes for maps of shape {cams.shape}; "
                           "delete it and rerun the CAM export")
        return cls(cams, class_ids)

    def write(self, path: Path) -> None:
        save_npz(path, cams=self.cams.astype(np.float16), classes=self.class_ids)


@dataclass(frozen=True)
class CamExport:
    """A CAM method's export: the step and the folders of what it writes per image."""

    step: Step
    cams: Callable[[Recipe], Path]  # <id>.npz CAM files
    predictions: Callable[[Recipe], Path]  # <id>.png: argmax at cam.bg_threshold
    confident_labels: Callable[[Recipe], Path]  # <id>.png: confident fg / bg, 255 unsure

    def path(self, recipe: Recipe, image_id: str) -> Path:
        return self.cams(recipe) / f"{image_id}.npz"

    def read(self, recipe: Recipe, image_id: str) -> CamFile:
        return CamFile.read(self.path(recipe, image_id), hint=f"run the {self.step.name} step first "
                            "(tools/export_cams.py)")


@dataclass(frozen=True)
class Classifier:
    """A CAM method's trained classifier: its training step and how to load it."""

    step: Step
    # (recipe, the split's classes or None) -> the network in eval mode; refuses other classes
    load: Callable[[Recipe, Optional[Sequence[str]]], "torch.nn.Module"]

    def weights(self, recipe: Recipe) -> Path:
        return self.step.training.weights(recipe)


def cam_export() -> CamExport:
    return REGISTRY.provider(CamExport)


def classifier() -> Classifier:
    return REGISTRY.provider(Classifier)
