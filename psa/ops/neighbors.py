"""The pixel-pair neighbourhood of AffinityNet: a half-disc of offsets, so each unordered pair
of pixels closer than `radius` appears exactly once."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from ..errors import PsaError


@lru_cache(maxsize=None)
def _offsets(radius: int) -> tuple[tuple[int, int], ...]:
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 2:
        raise PsaError(f"pair radius must be an integer >= 2, got {radius!r}")
    offsets = [(0, dx) for dx in range(1, radius)]
    offsets += [(dy, dx) for dy in range(1, radius) for dx in range(-radius + 1, radius)
                if dx * dx + dy * dy < radius * radius]
    return tuple(offsets)


def pair_offsets(radius: int = 5) -> list[tuple[int, int]]:
    """Offsets (dy, dx) of the reference half-disc, in the reference order: dy=0, dx=1..r-1;
    then dy=1..r-1, dx=-(r-1)..r-1 with dx²+dy² < r². 34 offsets at radius 5."""
    return list(_offsets(radius))


def _pad_extent(offsets: Sequence[tuple[int, int]]) -> tuple[int, int, int]:
    """(top, bottom, side) padding that keeps every shifted window inside the padded map."""
    top = max([0] + [-dy for dy, _ in offsets])
    bottom = max([0] + [dy for dy, _ in offsets])
    side = max([0] + [abs(dx) for _, dx in offsets])
    return top, bottom, side


def shift_pairs(x: torch.Tensor, offsets: Sequence[tuple[int, int]], fill=0) -> torch.Tensor:
    """Partner values: for x (..., H, W) returns (..., K, H, W) with [..., k, y, x] =
    x[..., y+dy_k, x+dx_k], or `fill` where that partner falls outside the map.

    Works for any dtype (bool included) and is differentiable (pad + slice, no pixel loop)."""
    if x.dim() < 2:
        raise PsaError(f"shift_pairs needs a tensor (..., H, W), got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    top, bottom, side = _pad_extent(offsets)
    padded = x.new_full((*x.shape[:-2], height + top + bottom, width + 2 * side), fill)
    padded[..., top:top + height, side:side + width] = x
    windows = [padded[..., top + dy:top + dy + height, side + dx:side + dx + width] for dy, dx in offsets]
    if not windows:
        return x.new_empty((*x.shape[:-2], 0, height, width))
    return torch.stack(windows, dim=-3)


def overlap(dy: int, dx: int, height: int, width: int) -> tuple[slice, slice, slice, slice] | None:
    """Slices (rows_from, cols_from, rows_to, cols_to) of the pixels whose partner at (dy, dx)
    lies inside an height×width map, and of those partners; None when there is none."""
    rows = height - abs(dy)
    cols = width - abs(dx)
    if rows <= 0 or cols <= 0:
        return None
    y0, x0 = max(0, -dy), max(0, -dx)
    return (slice(y0, y0 + rows), slice(x0, x0 + cols),
            slice(y0 + dy, y0 + dy + rows), slice(x0 + dx, x0 + dx + cols))


PAIR_SETS = ("all", "reference")


def reference_pair_mask(radius: int, height: int, width: int, device=None) -> torch.Tensor:
    """bool (K, H, W) in the layout of `pair_offsets(radius)`: True for the pairs the
    reference code uses (`tool/pyutils.get_indices_of_pairs` for the random walk,
    `ExtractAffinityLabelInRadius` for training), i.e. those whose first pixel lies outside
    the bottom r-1 rows and the left and right r-1 columns (their partners are then always
    inside the map). Pairs lying wholly in those bands are missing there; psa's "all" keeps them."""
    floor = radius - 1
    count = len(pair_offsets(radius))
    mask = torch.zeros((count, height, width), dtype=torch.bool, device=device)
    if height > floor and width > 2 * floor:
        mask[:, : height - floor, floor: width - floor] = True
    return mask


def restrict_pairs(pairs: str, radius: int, height: int, width: int, device=None) -> torch.Tensor | None:
    """None for pairs="all" (every in-map pair), the reference's mask for "reference"."""
    if pairs not in PAIR_SETS:
        raise PsaError(f"pairs must be one of {', '.join(PAIR_SETS)}, got {pairs!r}")
    return None if pairs == "all" else reference_pair_mask(radius, height, width, device)
