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
from contextlib import nullcontext
from functools import lru_cache

import torch

from ..errors import PsaError
from .neighbors import pair_offsets, restrict_pairs
from .pacing import PACER, intra_op_threads


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


@lru_cache(maxsize=8)
def _structure(height: int, width: int, radius: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """The CSR pattern of one map, made once per map size. Slots (N, 2K+1): every partner of
    each node, self included, in ascending column order; slot K+1+k holds the pair k stored at
    the node itself, slot K-1-k the pair k stored at the partner (the node is its partner's
    k-th partner), slot K the diagonal's 1. Returns the row pointers and columns of the
    stored (in-map) slots, each slot's index into the buffer [A^β pairs (K·N), 1, 0] (0 for
    the slots outside the map), and the flat indices of the stored slots."""
    offsets = _full_offsets(radius)
    count = len(offsets) // 2
    nodes = height * width
    ys, xs = (t.reshape(-1) for t in torch.meshgrid(torch.arange(height, device=device),
                                                     torch.arange(width, device=device), indexing="ij"))
    dy = torch.tensor([o[0] for o in offsets], device=device)[:, None]
    dx = torch.tensor([o[1] for o in offsets], device=device)[:, None]
    inside = ((ys + dy >= 0) & (ys + dy < height) & (xs + dx >= 0) & (xs + dx < width)).t()  # (N, 2K+1)
    node = torch.arange(nodes, device=device)
    partner = (node + dy * width + dx).t()
    pair = torch.arange(count, device=device) * nodes
    source = torch.cat([pair.flip(0) + partner[:, :count], torch.full((nodes, 1), count * nodes, device=device),
                        pair + node[:, None]], dim=1)
    source = source.masked_fill(~inside, count * nodes + 1)
    crow = torch.zeros(nodes + 1, dtype=torch.int64, device=device)
    crow[1:] = inside.sum(dim=1).cumsum(0)
    small = torch.int32 if source.numel() < 2**31 else torch.int64  # half the memory of int64
    return crow, partner[inside], source.reshape(-1).to(small), inside.reshape(-1).nonzero().squeeze(1).to(small)


def _build(affinity: torch.Tensor, beta: float, radius: int, dtype: torch.dtype,
           column_stochastic: bool) -> torch.Tensor:
    """Sparse CSR (B·N, B·N), block-diagonal over the batch: T (column-stochastic, the
    reference's matrix) or its transpose D⁻¹A (row-stochastic, what the walk multiplies by)."""
    batch, count, height, width = affinity.shape
    nodes = height * width
    crow, columns, source, stored = _structure(height, width, radius, affinity.device)
    power = (affinity.to(dtype) ** beta).reshape(batch, count * nodes)
    buffer = torch.cat([power, power.new_ones(batch, 1), power.new_zeros(batch, 1)], dim=1)
    slots = buffer[:, source].view(batch, nodes, -1)  # A's rows, 0 outside the map
    degree = slots.sum(dim=2)  # (B, N) = A.sum(0) = A.sum(1): A is symmetric
    if column_stochastic:
        values = slots.reshape(batch, -1)[:, stored] / degree[:, columns]
    else:
        values = (slots / degree[:, :, None]).reshape(batch, -1)[:, stored]

    entries = columns.numel()
    index_dtype = torch.int32 if batch * max(entries, nodes + 1) < 2**31 else torch.int64
    shift = torch.arange(batch, device=affinity.device)[:, None]
    crow = torch.cat([(crow[:-1] + shift * entries).reshape(-1), crow[-1:] * batch])
    columns = (columns + shift * nodes).reshape(-1)
    size = (batch * nodes, batch * nodes)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(crow.to(index_dtype), columns.to(index_dtype), values.reshape(-1),
                                       size=size, check_invariants=False)


def _into_two_buffers(step: torch.Tensor, x: torch.Tensor):
    """x ↦ step @ x written into whichever of two buffers x is not: on the CPU a fresh result
    costs a zero fill and a copy, a fifth of a 56×56 step. The buffers only ever hold finite
    numbers, as beta=0 asks."""
    buffers = (x, torch.zeros_like(x))

    def product(current: torch.Tensor) -> torch.Tensor:
        out = buffers[1] if current.data_ptr() == buffers[0].data_ptr() else buffers[0]
        return torch.addmm(out, step, current, beta=0, out=out)

    return product


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

    On the CPU each step is a small kernel: the steps run on one thread or on torch's intra-op
    threads, whichever is faster per step at the time (psa/ops/pacing.py), so a walk keeps its
    speed when other processes hold cores; the result is the same bits either way. The
    caller's thread count is restored."""
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
    on_cpu = cam.device.type == "cpu"
    threads = torch.get_num_threads()
    # on the CPU the build's dozen small ops run on one thread: none waits on a barrier
    with intra_op_threads(1) if on_cpu else nullcontext():
        step = _build(_keep_pairs(affinity.to(cam.device), radius, pairs), beta, radius, dtype,
                      column_stochastic=False)
        # (B·N, C) node-major; channels padded to a multiple of 8, which the CPU kernel prefers
        padded = -(-channels // 8) * 8
        x = torch.zeros((batch, height, width, padded), dtype=dtype, device=cam.device)
        x[..., :channels] = cam.permute(0, 2, 3, 1)
        x = x.view(batch * height * width, padded)
        if on_cpu:  # 1 thread or all, whichever is faster now (psa/ops/pacing.py)
            x = PACER.repeat(_into_two_buffers(step, x), x, 2 ** logt, threads)
        else:
            for _ in range(2 ** logt):
                x = step @ x
        out = x.view(batch, height, width, padded)[..., :channels].permute(0, 3, 1, 2).contiguous()
    return out if batched else out[0]
