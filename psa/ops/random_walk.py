"""Random walk over pair affinities (reference §4), computed sparsely.

The reference builds the dense N×N matrix A (N = h·w nodes), raises it to the power β
elementwise, normalises its columns (T = A / A.sum(0)), squares T logt times and multiplies
the CAM (C, N) by T^(2^logt). Every node only has the 2K partners of the half-disc (and
itself), so here T is a sparse CSR matrix with at most 2K+1 entries per row, and the walk is
2^logt sparse @ dense products: O(h·w·K) memory instead of O(N²), on the inputs' device.

pairs="all" (the default) puts every pair of the half-disc inside the map into A; the
reference's A only has the pairs whose first node lies outside the bottom r-1 rows and the
left/right r-1 columns (`tool/pyutils.get_indices_of_pairs`), which pairs="reference" restores.
"""

from __future__ import annotations

import warnings

import torch

from ..errors import PsaError
from .neighbors import pair_offsets, restrict_pairs, shift_pairs


def _full_offsets(radius: int) -> list[tuple[int, int]]:
    """Every partner of a node, self included, in lexicographic (dy, dx) order, which is the
    order of their flat indices y·w + x: the mirrored half-disc, (0, 0), the half-disc."""
    half = pair_offsets(radius)
    return [(-dy, -dx) for dy, dx in reversed(half)] + [(0, 0)] + half


def _as_batched(name: str, tensor: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(tensor, torch.Tensor) or tensor.dim() not in (3, 4):
        shape = tuple(getattr(tensor, "shape", ()))
        raise PsaError(f"random walk {name} must be (N, h, w) or (B, N, h, w), got shape {shape}")
    return (tensor, True) if tensor.dim() == 4 else (tensor.unsqueeze(0), False)


def _keep_pairs(affinity: torch.Tensor, radius: int, pairs: str) -> torch.Tensor:
    """Affinity 0 for the pairs left out: A^β then has no entry there, as in a matrix without them."""
    keep = restrict_pairs(pairs, radius, *affinity.shape[-2:], device=affinity.device)
    return affinity if keep is None else affinity * keep


def _check_affinity(affinity: torch.Tensor, radius: int) -> int:
    count = len(pair_offsets(radius))
    if affinity.shape[1] != count:
        raise PsaError(f"random walk affinity has {affinity.shape[1]} channels; radius {radius} "
                       f"has {count} pair offsets")
    if affinity.shape[-1] * affinity.shape[-2] == 0:
        raise PsaError(f"random walk affinity map is empty: shape {tuple(affinity.shape)}")
    return count


def _build(affinity: torch.Tensor, beta: float, radius: int, dtype: torch.dtype,
           column_stochastic: bool) -> torch.Tensor:
    """Sparse CSR (B·N, B·N), block-diagonal over the batch: T (column-stochastic, the
    reference's matrix) or its transpose D⁻¹A (row-stochastic, what the walk multiplies by)."""
    batch, count, height, width = affinity.shape
    nodes = height * width
    device = affinity.device
    offsets = _full_offsets(radius)
    half = offsets[count + 1:]

    power = affinity.to(dtype) ** beta  # (B, K, h, w)
    slots = torch.empty((batch, 2 * count + 1, height, width), dtype=dtype, device=device)
    slots[:, count + 1:] = power
    slots[:, count] = 1
    for k, (dy, dx) in enumerate(half):
        # the pair (q - d_k)–q is stored at the node q - d_k: move it to q
        slots[:, count - 1 - k] = shift_pairs(power[:, k], [(-dy, -dx)], fill=0)[:, 0]
    inside = shift_pairs(torch.ones((height, width), dtype=torch.bool, device=device), offsets, False)
    slots = slots * inside  # partners outside the map carry no weight
    degree = slots.sum(dim=1)  # (B, h, w) = A.sum(0) = A.sum(1): A is symmetric
    if column_stochastic:
        slots = slots / shift_pairs(degree, offsets, fill=1)
    else:
        slots = slots / degree.unsqueeze(1)

    # rows = nodes in flat order, entries = slots in offset order (= ascending column)
    index_dtype = torch.int32 if batch * nodes * len(offsets) < 2**31 else torch.int64
    mask = inside.permute(1, 2, 0).expand(batch, height, width, len(offsets))
    values = slots.permute(0, 2, 3, 1)[mask]
    shift = torch.tensor([dy * width + dx for dy, dx in offsets], device=device, dtype=torch.int64)
    rows = torch.arange(batch * nodes, device=device, dtype=torch.int64).view(batch, height, width, 1)
    columns = (rows + shift)[mask].to(index_dtype)
    per_row = mask.reshape(batch * nodes, len(offsets)).sum(dim=1)
    crow = torch.zeros(batch * nodes + 1, dtype=torch.int64, device=device)
    crow[1:] = per_row.cumsum(0)
    size = (batch * nodes, batch * nodes)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow.to(index_dtype), columns, values, size=size,
                                       check_invariants=False)


@torch.no_grad()
def transition_matrix(affinity: torch.Tensor, beta: float = 8.0, radius: int = 5,
                      pairs: str = "all") -> torch.Tensor:
    """The transition matrix T = A^β / A^β.sum(0) as a sparse CSR tensor (N, N) for affinity
    (K, h, w) (N = h·w, node index y·w + x), or block-diagonal (B·N, B·N) for (B, K, h, w).
    A is symmetric with A[p,q] = A[q,p] = affinity of the pair, unit diagonal, over every pair
    (pairs="all") or the reference's pairs only ("reference", see the module docstring).
    One walk step on a CAM (C, N) is `cam @ T`. float32 (float64 for float64 input)."""
    affinity, _ = _as_batched("affinity", affinity)
    _check_affinity(affinity, radius)
    dtype = torch.promote_types(affinity.dtype, torch.float32)
    return _build(_keep_pairs(affinity, radius, pairs), beta, radius, dtype, column_stochastic=True)


@torch.no_grad()
def random_walk(cam: torch.Tensor, affinity: torch.Tensor, beta: float = 8.0, logt: int = 8,
                radius: int = 5, pairs: str = "all") -> torch.Tensor:
    """Propagate `cam` (C, h, w) or (B, C, h, w) over `affinity` (K, h, w) or (B, K, h, w),
    laid out as `pair_affinity` (value of the pair (y,x)–(y+dy_k, x+dx_k); ignored where that
    partner is outside): returns cam @ T^(2^logt) reshaped like `cam` (T of
    `transition_matrix`, over every pair or, with pairs="reference", the reference's pairs
    only), equal to the dense computation, via 2^logt sparse products on the inputs' device.
    Not differentiable.

    On the CPU it uses torch's intra-op threads; each step is a small kernel, so processes
    sharing the cores should run with one thread each (see BENCHMARKS.md)."""
    cam, batched = _as_batched("cam", cam)
    affinity, affinity_batched = _as_batched("affinity", affinity)
    if batched != affinity_batched:
        raise PsaError(f"random walk cam {tuple(cam.shape)} and affinity {tuple(affinity.shape)} "
                       "must both be batched or both not")
    count = _check_affinity(affinity, radius)
    if cam.shape[0] != affinity.shape[0] or cam.shape[-2:] != affinity.shape[-2:]:
        raise PsaError(f"random walk cam {tuple(cam.shape)} does not match affinity "
                       f"{tuple(affinity.shape)} ({count} offsets at radius {radius})")
    if isinstance(logt, bool) or not isinstance(logt, int) or logt < 0:
        raise PsaError(f"random walk logt must be an integer >= 0, got {logt!r}")
    if not beta > 0:
        raise PsaError(f"random walk beta must be > 0, got {beta!r}")
    batch, channels, height, width = cam.shape
    dtype = torch.promote_types(cam.dtype, torch.float32)
    step = _build(_keep_pairs(affinity.to(cam.device), radius, pairs), beta, radius, dtype,
                  column_stochastic=False)

    # (B·N, C) node-major; channels padded to a multiple of 8, which the CPU kernel prefers
    padded = -(-channels // 8) * 8
    x = torch.zeros((batch, height, width, padded), dtype=dtype, device=cam.device)
    x[..., :channels] = cam.permute(0, 2, 3, 1)
    x = x.view(batch * height * width, padded)
    for _ in range(2 ** logt):
        x = step @ x
    out = x.view(batch, height, width, padded)[..., :channels].permute(0, 3, 1, 2).contiguous()
    return out if batched else out[0]
