"""IRN's inter-pixel relations from a class-boundary map (Ahn, Cho & Kwak, CVPR 2019):
the affinity of two pixels is 1 − the largest boundary probability on the line between them
(IRN's `misc/indexing.PathIndex` + `edge_to_affinity`), and the semantic pseudo masks are
the CAMs walked over those affinities (`propagate_to_edge`) — here with psa's sparse walk
instead of IRN's dense HW×HW matrix.

Pairs use the half-disc of `pair_offsets(radius)`, which is IRN's `search_dirs` in IRN's
order; a pair whose partner lies outside the map gets affinity 0, as IRN's boundary padding
of 1 gives it."""

from __future__ import annotations

from functools import lru_cache

import torch

from ...errors import PsaError
from ...ops.neighbors import pair_offsets, shift_pairs
from ...ops.random_walk import random_walk


@lru_cache(maxsize=None)
def line_points(dy: int, dx: int) -> tuple[tuple[int, int], ...]:
    """The pixels (relative to the pair's first pixel) on the line to (dy, dx): those of the
    bounding box whose distance to the line is below one pixel, both ends included (IRN's rule)."""
    length_sq = dy * dy + dx * dx
    if length_sq == 0:
        raise PsaError("a pair needs two distinct pixels: offset (0, 0)")
    points = []
    for y in range(min(0, dy), max(0, dy) + 1):
        for x in range(min(0, dx), max(0, dx) + 1):
            if (dy * x - dx * y) ** 2 < length_sq:  # squared distance to the line < 1
                points.append((y, x))
    return tuple(points)


def path_max_affinity(boundary: torch.Tensor, radius: int) -> torch.Tensor:
    """Boundary probabilities (..., h, w) → affinities (..., K, h, w) in the layout of
    `pair_offsets(radius)`: [k, y, x] = 1 − max of `boundary` over the line from (y, x) to
    (y + dy_k, x + dx_k), and 0 where that partner is outside the map. Differentiable
    (the maximum's gradient flows to the pixel that attains it)."""
    if boundary.dim() < 2:
        raise PsaError(f"path_max_affinity needs a boundary map (..., h, w), got shape {tuple(boundary.shape)}")
    height, width = boundary.shape[-2:]
    offsets = pair_offsets(radius)
    pad = radius - 1  # every line of the half-disc stays within radius-1 rows below, columns aside
    # outside the map counts as boundary (probability 1): such pairs get affinity 0
    padded = torch.nn.functional.pad(boundary, (pad, pad, 0, pad), value=1.0)
    affinities = []
    for dy, dx in offsets:
        windows = [padded[..., y:y + height, pad + x:pad + x + width] for y, x in line_points(dy, dx)]
        affinities.append(1.0 - torch.stack(windows, dim=-3).amax(dim=-3))
    return torch.stack(affinities, dim=-3)


def boundary_walk(cams: torch.Tensor, boundary: torch.Tensor, radius: int = 5, beta: float = 10.0,
                  logt: int = 8) -> torch.Tensor:
    """IRN's semantic propagation: the seeds CAM · (1 − boundary), (K, h, w), walked by
    T^(2^logt) where T is the column-normalised (path-max affinity)^β with self-loops of 1."""
    if cams.shape[-2:] != boundary.shape[-2:]:
        raise PsaError(f"boundary walk: CAMs {tuple(cams.shape)} and boundary {tuple(boundary.shape)} differ in size")
    seeds = cams * (1.0 - boundary)
    affinity = path_max_affinity(boundary, radius)
    return random_walk(seeds, affinity, beta=beta, logt=logt, radius=radius)


def irn_loss(boundary_logits: torch.Tensor, displacement: torch.Tensor | None, pairs: dict[str, torch.Tensor],
             radius: int, reduce_count=None) -> tuple[torch.Tensor, dict]:
    """IRN's objective (`step/train_irn.py`) on stride-4 maps: boundary logits (B, 1, h, w),
    displacement (B, 2, h, w) or None (not learned), and pair labels (B, K, h, w) "bg", "fg",
    "neg" in the layout of `pair_offsets(radius)`:

        pos = L_bg/2 + L_fg/2 with L = mean over the pairs of −log(aff + 1e-5)
        neg = mean over the negative pairs of −log(1 + 1e-5 − aff)
        dp_fg = mean over fg pairs of |D(i) − D(j) − (j − i)| / 2 (both coordinates summed)
        dp_bg = mean over bg pairs of |D(i) − D(j)| / 2
        loss = (pos + neg)/2 + (dp_fg + dp_bg)/2

    `reduce_count` maps this batch part's pair counts to the whole batch's (psa.engine.distributed
    .global_sum under DDP), as in `affinity_loss`."""
    reduce_count = reduce_count or (lambda count: count)
    affinity = path_max_affinity(torch.sigmoid(boundary_logits[:, 0].float()), radius)
    masks = {key: pairs[key].to(affinity.dtype) for key in ("bg", "fg", "neg")}
    counts = reduce_count(torch.stack([masks[k].sum() for k in ("bg", "fg", "neg")]).detach()) + 1e-5
    bg = (-masks["bg"] * torch.log(affinity + 1e-5)).sum() / counts[0]
    fg = (-masks["fg"] * torch.log(affinity + 1e-5)).sum() / counts[1]
    neg = (-masks["neg"] * torch.log(1.0 + 1e-5 - affinity)).sum() / counts[2]
    loss = (bg / 2 + fg / 2 + neg) / 2
    parts = {"bg_loss": bg.detach(), "fg_loss": fg.detach(), "neg_loss": neg.detach()}
    if displacement is not None:
        offsets = torch.tensor(pair_offsets(radius), dtype=displacement.dtype, device=displacement.device)
        field = displacement.float()
        partner = shift_pairs(field, pair_offsets(radius), fill=0.0)  # (B, 2, K, h, w)
        difference = field.unsqueeze(2) - partner
        target = offsets.t().reshape(1, 2, -1, 1, 1)
        dp_fg = ((difference - target).abs() * masks["fg"].unsqueeze(1)).sum() / (2 * counts[1])
        dp_bg = (difference.abs() * masks["bg"].unsqueeze(1)).sum() / (2 * counts[0])
        loss = loss + (dp_fg + dp_bg) / 2
        parts.update({"dp_fg_loss": dp_fg.detach(), "dp_bg_loss": dp_bg.detach()})
    return loss, parts
