"""Class edges of a label map, and how well a predicted boundary map finds them."""

from __future__ import annotations

import numpy as np

from ..constants import IGNORE_INDEX


def class_edges(label: np.ndarray) -> np.ndarray:
    """bool: cells with a 4-neighbour of another class (both labelled, not IGNORE_INDEX)."""
    edges = np.zeros(label.shape, dtype=bool)
    valid = label != IGNORE_INDEX
    vertical = (label[1:] != label[:-1]) & valid[1:] & valid[:-1]
    edges[1:] |= vertical
    edges[:-1] |= vertical
    horizontal = (label[:, 1:] != label[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    return edges


def dilate(mask: np.ndarray) -> np.ndarray:
    """Each cell and its 8 neighbours: a one-cell tolerance."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    return out


def boundary_counts(boundary: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """A boundary probability map (h, w) at a stride of the image against the class edges of
    the ground truth taken at the same stride (nearest), one cell of tolerance: (predicted near
    an edge, predicted, edges near a prediction, edges). Summed over images, the first two
    give the boundary's precision, the last two its recall."""
    stride = -(-gt.shape[0] // boundary.shape[0])
    small = gt[stride // 2::stride, stride // 2::stride][:boundary.shape[0], :boundary.shape[1]]
    boundary = boundary[:small.shape[0], :small.shape[1]]
    predicted, edges = boundary > threshold, class_edges(small)
    return np.array([(predicted & dilate(edges)).sum(), predicted.sum(), (edges & dilate(predicted)).sum(),
                     edges.sum()], dtype=np.int64)
