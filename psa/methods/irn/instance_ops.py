"""IRN's instance pseudo masks (`step/make_ins_seg_labels.py`) from its displacement field:
every pixel follows the field to its instance's centroid, centroids landing in one region of
weak displacement form one instance, each instance's CAM is walked on its own, and the
connected segments of the result are the instances, scored by their largest walked value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)  # IRN's skimage.measure.label(connectivity=1)


def find_centroids(displacement: np.ndarray, iterations: int = 300) -> np.ndarray:
    """(2, h, w) displacement (dy, dx) → (2, h, w) int: where each pixel ends after following
    the bilinearly interpolated field `iterations` times, clipped to the map (IRN's
    `find_centroids_with_refinement`)."""
    height, width = displacement.shape[1:]
    cy = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    cx = np.repeat(np.arange(width, dtype=np.float32)[None], height, axis=0)
    for _ in range(iterations):
        uy, dy = np.ceil(cy).astype(np.int32), np.floor(cy).astype(np.int32)
        ux, dx = np.ceil(cx).astype(np.int32), np.floor(cx).astype(np.int32)
        fy, fx = cy - dy, cx - dx
        step = [field[uy, ux] * fy * fx + field[dy, ux] * (1 - fy) * fx + field[uy, dx] * fy * (1 - fx)
                + field[dy, dx] * (1 - fy) * (1 - fx) for field in displacement]
        cy = np.clip(cy + step[0], 0, height - 1)
        cx = np.clip(cx + step[1], 0, width - 1)
    return np.stack([np.round(cy), np.round(cx)]).astype(np.int32)


def cluster_centroids(centroids: np.ndarray, displacement: np.ndarray, threshold: float = 2.5) -> np.ndarray:
    """bool (I, h, w): one map per instance. Regions where |displacement| < `threshold` are
    the candidate centroids (4-connected components); a pixel belongs to the region its
    centroid lies in, and pixels whose centroid lies in none form one more group, as in IRN."""
    strength = np.sqrt(displacement[0] ** 2 + displacement[1] ** 2)
    regions, _ = ndimage.label(strength < threshold, structure=FOUR_CONNECTED)
    height, width = strength.shape
    cluster = regions.reshape(-1)[centroids[0] * width + centroids[1]].reshape(height, width)
    _, dense = np.unique(cluster, return_inverse=True)  # IRN's compress_range: 0..n-1 in order
    dense = dense.reshape(height, width)
    return dense[None] == np.arange(dense.max() + 1)[:, None, None]


@dataclass
class Instance:
    mask: np.ndarray  # bool (H, W)
    class_id: int
    score: float


def detect_instances(scores: np.ndarray, masks: np.ndarray, class_ids: np.ndarray,
                     min_area: float = 0.0) -> list[Instance]:
    """Each mask's 4-connected segments become instances of its class, scored by the largest
    value of its score map inside them; segments smaller than `min_area` pixels score 0
    (IRN's `detect_instance`, max_fragment_size)."""
    found = []
    for score, mask, class_id in zip(scores, masks, class_ids):
        if not mask.any():
            continue
        segments, count = ndimage.label(mask, structure=FOUR_CONNECTED)
        for k in range(1, count + 1):
            segment = segments == k
            value = 0.0 if segment.sum() < min_area else float((score * segment).max())
            found.append(Instance(segment, int(class_id), value))
    return found
