"""Losses normalised by counts of the global batch: N processes, each holding a part of the
batch and dividing by the reduced (global) counts, scaled by N against DDP's gradient mean,
give exactly the loss and gradient of one process on the whole batch. Simulated here with a
fake reducer (no processes); tests/test_distributed.py runs the real thing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psa.engine.distributed import global_sum, world_size
from psa.methods.affinity.ops import affinity_loss, pair_affinity
from psa.ops import pair_labels
from psa.ops.losses import masked_cross_entropy

IGNORE = 255


def fake_reducer(parts_counts):
    """Stands in for an all-reduce: whatever part asks, the answer is the sum over parts."""
    total = torch.stack(parts_counts).sum(dim=0)

    def reduce(counts):
        assert any(torch.equal(counts, c) for c in parts_counts)  # called with a part's own counts
        return total
    return reduce


def ddp_mean_gradient(loss_of_part, leaf, parts):
    """What DDP does: each process backpropagates its loss, the gradients are averaged."""
    grads, losses = [], []
    for part in parts:
        leaf.grad = None
        loss = loss_of_part(part) * len(parts)
        loss.backward()
        grads.append(leaf.grad.clone())
        losses.append(loss.detach())
    return torch.stack(losses).mean(), torch.stack(grads).mean(dim=0)


def uneven_labels(rng, batch, height, width):
    """Label maps whose halves have very different pair counts (one half mostly ignored)."""
    labels = rng.integers(0, 3, size=(batch, height, width))
    labels[: batch // 2][rng.random((batch // 2, height, width)) < 0.7] = IGNORE
    labels[batch // 2:, : height // 2] = 0
    return torch.from_numpy(labels.astype(np.uint8))


def test_affinity_loss_split_with_reduced_counts_equals_whole_batch():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    features = torch.randn(4, 5, 9, 10, dtype=torch.float64, requires_grad=True)
    labels = pair_labels(uneven_labels(rng, 4, 9, 10), radius=3)

    whole, whole_parts = affinity_loss(pair_affinity(features, 3), labels)
    (whole_grad,) = torch.autograd.grad(whole, features)

    halves = [slice(0, 2), slice(2, 4)]
    counts = [torch.stack([labels[k][h].sum() for k in ("bg", "fg", "neg")]).double() for h in halves]
    reducer = fake_reducer(counts)

    def part_loss(half):
        aff = pair_affinity(features, 3)[half]
        loss, parts = affinity_loss(aff, {k: v[half] for k, v in labels.items()}, reduce_counts=reducer)
        assert [float(parts[f"{k}_count"]) for k in ("bg", "fg", "neg")] == \
               [float(whole_parts[f"{k}_count"]) for k in ("bg", "fg", "neg")]
        return loss

    loss, grad = ddp_mean_gradient(part_loss, features, halves)
    torch.testing.assert_close(loss, whole.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, whole_grad, rtol=1e-10, atol=1e-14)

    # the failure this prevents: each part divided by its own counts is another loss
    local = [affinity_loss(pair_affinity(features, 3)[h], {k: v[h] for k, v in labels.items()})[0].detach()
             for h in halves]
    assert abs(float(torch.stack(local).mean()) - whole.item()) > 1e-3 * whole.item()


def test_affinity_loss_reducer_must_return_three_counts():
    aff = torch.full((1, 2, 2, 2), 0.5)
    empty = torch.zeros_like(aff, dtype=torch.bool)
    from psa.errors import PsaError
    with pytest.raises(PsaError, match="3 counts"):
        affinity_loss(aff, {"bg": empty, "fg": empty, "neg": empty}, reduce_counts=lambda c: c.sum())


def test_masked_cross_entropy_split_with_reduced_count_equals_whole_batch():
    rng = np.random.default_rng(1)
    torch.manual_seed(1)
    logits = torch.randn(4, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    mask = uneven_labels(rng, 4, 6, 7).long()

    whole = torch.nn.functional.cross_entropy(logits, mask, ignore_index=IGNORE)  # torch's own mean
    (whole_grad,) = torch.autograd.grad(whole, logits)
    halves = [slice(0, 2), slice(2, 4)]
    reducer = fake_reducer([(mask[h] != IGNORE).sum().double() for h in halves])

    loss, grad = ddp_mean_gradient(lambda h: masked_cross_entropy(logits[h], mask[h], reducer), logits, halves)
    torch.testing.assert_close(loss, whole.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, whole_grad, rtol=1e-10, atol=1e-14)
    local = [torch.nn.functional.cross_entropy(logits[h], mask[h], ignore_index=IGNORE).detach() for h in halves]
    assert abs(float(torch.stack(local).mean()) - whole.item()) > 1e-3 * whole.item()


def test_masked_cross_entropy_all_ignored_is_zero_not_nan():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = masked_cross_entropy(logits, torch.full((1, 2, 2), IGNORE))
    assert loss.item() == 0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_without_process_group_sums_are_local():
    counts = torch.tensor([3.0, 4.0, 5.0])
    total = global_sum(counts)
    assert torch.equal(total, counts) and total is not counts
    assert world_size() == 1
