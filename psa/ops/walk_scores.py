"""A walk's score files (AffinityNet's or IRN's): reading them, at the image's size, and as
per-pixel class distributions (the CRF's unary, the seg network's label confidence)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..constants import FEATURE_STRIDE


def load_walk_scores(path) -> tuple[torch.Tensor, np.ndarray, int]:
    """A walk's scores file → (scores (K+1, h, w) float32, channel 0 the background; class
    ids (K,); the stride of the padded image they are at, 8 unless it says)."""
    with np.load(path) as data:
        stride = int(data["stride"]) if "stride" in data else FEATURE_STRIDE
        return torch.from_numpy(data["scores"].astype(np.float32)), data["classes"].astype(np.int64), stride


def upsample_scores(scores: torch.Tensor, height: int, width: int, stride: int = FEATURE_STRIDE) -> np.ndarray:
    """Scores at `stride` of the (padded) image → (C, height, width) float32 for the image itself."""
    padded = (scores.shape[-2] * stride, scores.shape[-1] * stride)
    up = F.interpolate(scores[None].float(), size=padded, mode="bilinear", align_corners=False)[0]
    return up[:, :height, :width].cpu().numpy()


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Non-negative scores → per-pixel distributions over their channels."""
    scores = np.clip(scores, 0, None) + 1e-5
    return scores / scores.sum(axis=0, keepdims=True)
