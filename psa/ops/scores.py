"""Class scores of a walk or refinement, on disk and at the image's size.

A score file (`<id>.npz`) holds `scores` (K+1, h, w) float16 with channel 0 the background,
at `stride` of the image padded to a multiple of it (8 unless the file says), and `classes`
(K,) the class id of each further channel. It feeds the dense CRF (`--crf`, pseudo_crf/) and
the segmentation network's label confidence."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import FEATURE_STRIDE
from ..errors import PsaError
from ..io import save_npz
from .cam import class_lookup


@dataclass(frozen=True)
class ScoreFile:
    scores: torch.Tensor  # (K+1, h, w) float32, channel 0 the background
    class_ids: np.ndarray  # (K,) int64
    stride: int = FEATURE_STRIDE

    @property
    def lookup(self) -> np.ndarray:
        """Channel → class id."""
        return class_lookup(self.class_ids)

    @classmethod
    def read(cls, path: Path) -> "ScoreFile":
        path = Path(path)
        if not path.is_file():
            raise PsaError(f"scores missing: {path} (run the step that writes them first)")
        try:
            with np.load(path) as data:
                stride = int(data["stride"]) if "stride" in data else FEATURE_STRIDE
                return cls(torch.from_numpy(data["scores"].astype(np.float32)), data["classes"].astype(np.int64),
                           stride)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise PsaError(f"cannot read scores {path}: {reason}; delete it and rerun the step that writes it") \
                from None

    def write(self, path: Path) -> None:
        arrays = {"scores": self.scores.cpu().numpy().astype(np.float16), "classes": self.class_ids}
        if self.stride != FEATURE_STRIDE:
            arrays["stride"] = np.int64(self.stride)
        save_npz(path, **arrays)

    def at_size(self, height: int, width: int) -> np.ndarray:
        """(K+1, height, width) float32 for the image itself."""
        return upsample_scores(self.scores, height, width, self.stride)


def upsample_scores(scores: torch.Tensor, height: int, width: int, stride: int = FEATURE_STRIDE) -> np.ndarray:
    """Scores at `stride` of the (padded) image → (C, height, width) float32 for the image itself."""
    padded = (scores.shape[-2] * stride, scores.shape[-1] * stride)
    up = F.interpolate(scores[None].float(), size=padded, mode="bilinear", align_corners=False)[0]
    return up[:, :height, :width].cpu().numpy()


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Non-negative scores → per-pixel distributions over their channels."""
    scores = np.clip(scores, 0, None) + 1e-5
    return scores / scores.sum(axis=0, keepdims=True)


def top_class_probability(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """The walk's own probability of its top class per pixel, (H, W), from a score file."""
    return to_probabilities(ScoreFile.read(path).at_size(*shape)).max(0)
