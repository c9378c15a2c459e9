"""Affinity labels: which neighbour pairs are same-background, same-foreground or different."""

from __future__ import annotations

import numpy as np
import torch

from ..constants import IGNORE_INDEX
from ..errors import PsaError
from .neighbors import pair_offsets, restrict_pairs, shift_pairs


def pair_labels(label, radius: int = 5, pairs: str = "all") -> dict[str, torch.Tensor]:
    """Pair labels of a label map (H, W) → bool (K, H, W), or of a batch (B, H, W) →
    (B, K, H, W), in the layout of `pair_offsets(radius)`: entry [k, y, x] describes the pair
    (y, x)–(y+dy_k, x+dx_k) and is False in all three sets where that partner is outside.

    With valid = both labels != IGNORE_INDEX (as the reference, §2.4):
    bg = same label and both 0; fg = same label, not 0, valid; neg = different labels, valid.
    pairs="all" also covers the pairs anchored in the bottom and left/right bands of r-1
    pixels that the reference skips; pairs="reference" keeps only the reference's pairs
    (`neighbors.reference_pair_mask`)."""
    if isinstance(label, np.ndarray):
        label = torch.from_numpy(np.ascontiguousarray(label))
    if not isinstance(label, torch.Tensor) or label.dim() not in (2, 3):
        shape = tuple(getattr(label, "shape", ()))
        raise PsaError(f"pair_labels needs a label map (H, W) or (B, H, W), got shape {shape}")
    if label.is_floating_point() or label.is_complex():
        raise PsaError(f"pair_labels needs an integer label map, got {label.dtype}")
    offsets = pair_offsets(radius)
    source = label.unsqueeze(-3)  # (..., 1, H, W)
    partner = shift_pairs(label, offsets, fill=IGNORE_INDEX)  # outside = ignore → never valid
    valid = (source != IGNORE_INDEX) & (partner != IGNORE_INDEX)
    same = source == partner
    bg = same & (source == 0)
    fg = same & (source != 0) & valid
    neg = ~same & valid
    keep = restrict_pairs(pairs, radius, *label.shape[-2:], device=label.device)
    if keep is not None:
        bg, fg, neg = bg & keep, fg & keep, neg & keep
    return {"bg": bg, "fg": fg, "neg": neg}


def label_affinity(label, radius: int = 5, high: float = 1.0, low: float = 0.0) -> torch.Tensor:
    """Affinities (K, h, w) taken from a label map (h, w) instead of a network, in the layout of
    `pair_affinity`: `high` where a pair shares a label (255 counts as a label of its own),
    `low` elsewhere (0 where the partner is outside). With ground-truth labels and low = 0 the
    random walk never leaves a segment: its best possible result for the given CAMs."""
    if isinstance(label, np.ndarray):
        label = torch.from_numpy(np.ascontiguousarray(label))
    if not isinstance(label, torch.Tensor) or label.dim() != 2 or label.is_floating_point():
        raise PsaError(f"label_affinity needs an integer label map (h, w), got {getattr(label, 'shape', '?')}")
    offsets = pair_offsets(radius)
    partner = shift_pairs(label.long(), offsets, fill=-1)  # outside: matches nothing
    same = partner == label.long().unsqueeze(0)
    return torch.where(same, torch.tensor(high), torch.tensor(low)) * (partner >= 0)
