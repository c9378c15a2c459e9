"""Sums over the training processes, for losses normalised by a count of the global batch.

DistributedDataParallel averages the gradients of the N processes. A loss that is a mean over
equal per-process batches (the CAM loss) survives that average unchanged; a loss divided by
a count that differs between processes (pairs of each kind, non-ignored pixels) does not:
each process would divide by its own count. So such a loss divides its local sum by the
count of the whole global batch and is multiplied by N: the average of the N gradients is
then exactly the gradient one process would compute on the global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of training processes (1 without a process group)."""
    return dist.get_world_size() if _active() else 1


def global_sum(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over every process of the default process group (a detached copy of
    it without one). Every process must call it, the same number of times: it is a collective."""
    total = tensor.detach().clone()
    if _active():
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """The (B, ...) tensors of every process concatenated in rank order (a detached copy of
    `tensor` without a process group): a decision over the global batch, made identically on
    each process. All processes must pass the same shape (the engine's equal slices do)."""
    local = tensor.detach().contiguous()
    if not _active():
        return local.clone()
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local)
    return torch.cat(parts)
