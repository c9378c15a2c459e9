"""Pairwise affinities from AffinityNet features, and the affinity loss (reference §3.2-3.3)."""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from ...errors import PsaError
from ...ops.neighbors import overlap, pair_offsets

EPS = 1e-5


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


class _PairAffinity(torch.autograd.Function):
    """exp(-mean_c |f[y,x] - f[y+dy,x+dx]|) per offset. Backward recomputes the differences
    one offset at a time, so only the features and the (B, K, h, w) result are kept for it:
    memory O(B·D·h·w) instead of the O(K·B·D·h·w) plain autograd would store."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, radius: int) -> torch.Tensor:
        batch, _, height, width = features.shape
        offsets = pair_offsets(radius)
        dtype = _compute_dtype(features.dtype)
        aff = features.new_zeros((batch, len(offsets), height, width), dtype=dtype)
        for k, (dy, dx) in enumerate(offsets):
            region = overlap(dy, dx, height, width)
            if region is None:
                continue
            ys, xs, yt, xt = region
            diff = features[:, :, ys, xs].to(dtype) - features[:, :, yt, xt].to(dtype)
            aff[:, k, ys, xs] = torch.exp(-diff.abs().mean(dim=1))
        ctx.radius = radius
        ctx.save_for_backward(features, aff)
        return aff

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None
        features, aff = ctx.saved_tensors
        _, channels, height, width = features.shape
        dtype = aff.dtype
        grad_features = torch.zeros_like(features, dtype=dtype)
        for k, (dy, dx) in enumerate(pair_offsets(ctx.radius)):
            region = overlap(dy, dx, height, width)
            if region is None:
                continue
            ys, xs, yt, xt = region
            diff = features[:, :, ys, xs].to(dtype) - features[:, :, yt, xt].to(dtype)
            coef = (grad[:, k, ys, xs].to(dtype) * aff[:, k, ys, xs]).unsqueeze(1) / -channels
            term = torch.sign(diff).mul_(coef)
            grad_features[:, :, ys, xs] += term
            grad_features[:, :, yt, xt] -= term
        return grad_features.to(features.dtype), None


def pair_affinity(features: torch.Tensor, radius: int = 5) -> torch.Tensor:
    """Affinities (B, K, h, w) of features (B, D, h, w) in the layout of `pair_offsets(radius)`:
    [b, k, y, x] = exp(-mean over channels |f[y,x] - f[y+dy_k, x+dx_k]|) in (0, 1], and 0 where
    the partner is outside the map. Differentiable; computed in float32 (or float64) whatever
    the feature dtype."""
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(getattr(features, "shape", ()))
        raise PsaError(f"pair_affinity needs features (B, D, h, w), got shape {shape}")
    if features.shape[1] == 0:
        raise PsaError("pair_affinity needs at least one feature channel")
    pair_offsets(radius)  # validates radius
    return _PairAffinity.apply(features, radius)


def affinity_loss(aff: torch.Tensor, labels: Mapping[str, torch.Tensor],
                  reduce_counts: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """The reference loss (§3.3): L_bg/4 + L_fg/4 + L_neg/2, each term the mean over its pairs
    of the whole batch (count + 1e-5) of -log(aff + 1e-5) (bg, fg) or -log(1 + 1e-5 - aff) (neg).

    `labels` holds bool (or 0/1) tensors "bg", "fg", "neg" shaped like `aff`, as returned by
    `pair_labels`. Returns (loss, parts) with parts = {bg_loss, fg_loss, neg_loss, bg_count,
    fg_count, neg_count} as detached scalar tensors, for logging.

    When `aff` is one part of a larger batch (one process of several), `reduce_counts` maps
    this part's pair counts, a tensor (bg, fg, neg), to those of the whole batch (e.g.
    `psa.engine.distributed.global_sum`). Each term then divides this part's sum by the
    whole batch's count, so the losses (and gradients) of the parts add up to those of the
    whole batch; the counts in `parts` are the whole batch's. Without it, this batch is whole."""
    missing = [key for key in ("bg", "fg", "neg") if key not in labels]
    if missing:
        raise PsaError(f"affinity_loss labels miss key {missing[0]!r}")
    keys = ("bg", "fg", "neg")
    masks, sums = {}, {}
    for key in keys:
        mask = labels[key]
        if tuple(mask.shape) != tuple(aff.shape):
            raise PsaError(f"affinity_loss label {key!r} has shape {tuple(mask.shape)}, "
                           f"affinities have {tuple(aff.shape)}")
        masks[key] = mask.to(device=aff.device, dtype=aff.dtype)
        nll = -torch.log(1 + EPS - aff) if key == "neg" else -torch.log(aff + EPS)
        sums[key] = (masks[key] * nll).sum()
    counts = torch.stack([masks[key].sum() for key in keys]).detach()
    if reduce_counts is not None:
        counts = reduce_counts(counts)
        if tuple(counts.shape) != (3,):
            raise PsaError(f"affinity_loss reduce_counts must return 3 counts, got shape {tuple(counts.shape)}")
    parts = {}
    terms = {}
    for i, key in enumerate(keys):
        terms[key] = sums[key] / (counts[i] + EPS)
        parts[f"{key}_loss"] = terms[key].detach()
        parts[f"{key}_count"] = counts[i]
    loss = terms["bg"] / 4 + terms["fg"] / 4 + terms["neg"] / 2
    return loss, parts
