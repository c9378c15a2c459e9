"""Losses more than one network trains with."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..constants import IGNORE_INDEX


def masked_cross_entropy(logits: torch.Tensor, mask: torch.Tensor, reduce_count=None) -> torch.Tensor:
    """Cross-entropy summed over the pixels whose mask is not IGNORE_INDEX, divided by their
    number (at least 1, so an all-ignored batch gives 0, not NaN). `reduce_count` maps this
    batch's count to that of the whole batch it is part of (e.g. a sum over processes)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 under AMP
    total = F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (mask != IGNORE_INDEX).sum().to(total.dtype)
    if reduce_count is not None:
        count = reduce_count(count)
    return total / count.clamp_min(1)
