"""A finished run, loaded by its folder for use from Python: the run's own resolved recipe
(`<run>/recipe.yaml`, no recipe path needed), the segmentation network it trained, and
prediction of one image or of a folder with the same pre- and post-processing as
`psa predict`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..data.base import read_rgb
from ..errors import PsaError
from ..layout import RunLayout
from ..ops.crf import dense_crf
from .prediction import multiscale_probabilities, predict
from .recipes import load_recipe
from .registry import REGISTRY


@dataclass(frozen=True)
class Prediction:
    """One image's segmentation: `label` (H, W) uint8 class indices, `probabilities`
    (C, H, W) float32 softmax (after the CRF when asked for), `classes` the C names."""

    label: np.ndarray
    probabilities: np.ndarray
    classes: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """The label map's (height, width)."""
        return self.label.shape


class LoadedRun:
    """`psa.load_run("runs/demo")`: `.recipe`, `.classes`, `.predict(image)`, `.predict_folder(...)`."""

    def __init__(self, folder: str | os.PathLike, device: Optional[str] = None):
        self.folder = Path(folder).expanduser().resolve()
        recipe_file = RunLayout(self.folder).recipe_file
        if not recipe_file.is_file():
            raise PsaError(f"{self.folder} is not a psa run folder: it has no {recipe_file.name}")
        # the folder given, wherever the run was started from (its run.dir may be relative)
        self.recipe = load_recipe(recipe_file, [f"run.dir={self.folder}"])
        self.network = REGISTRY.predictor(self.recipe.task)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self._model = None

    @property
    def model(self) -> torch.nn.Module:
        """The trained network in eval mode, loaded on first use."""
        if self._model is None:
            self._model = self.network.load(self.recipe, None).to(self.device).eval()
        return self._model

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(getattr(self.model, "class_names", None) or self.recipe.data.classes or ())

    def predict(self, image, crf: bool = False) -> Prediction:
        """`image`: a path, a PIL image or an (H, W, 3) uint8 RGB array."""
        rgb = _as_rgb(image)
        cfg = getattr(self.recipe, self.network.section)
        with torch.no_grad():
            probs = multiscale_probabilities(self.model, rgb, cfg.scales, cfg.flip, self.device).cpu().numpy()
        if crf:
            probs = dense_crf(rgb, probs, self.recipe.refining_crf())
        return Prediction(probs.argmax(0).astype(np.uint8), probs.astype(np.float32), self.classes)

    def predict_folder(self, images: str | os.PathLike, out: str | os.PathLike, crf: bool = False,
                       overlay: bool = False, probabilities: bool = False) -> dict:
        """The images of a folder or list file into `out`, as `psa predict --images --out` writes
        them; → its summary (how many written, which failed)."""
        return predict(self.recipe, self.network, images=str(images), crf=crf, out_dir=str(out),
                       overlay=overlay, probabilities=probabilities)


def load_run(folder: str | os.PathLike, device: Optional[str] = None) -> LoadedRun:
    return LoadedRun(folder, device)


def _as_rgb(image) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_rgb(image)
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise PsaError(f"an image to predict must be a path, a PIL image or an (H, W, 3) uint8 RGB array, "
                       f"got {array.dtype} of shape {array.shape}")
    return array
