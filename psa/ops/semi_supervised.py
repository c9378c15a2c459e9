"""FixMatch and MixMatch pieces for multi-label image labels, as plain functions on tensors.

Both papers are single-label (softmax). With image-level multi-labels every class is its own
Bernoulli, so:

* FixMatch's confidence is per class: a class is a confident positive where the weak view's
  sigmoid is above `tau_pos`, a confident negative where it is below `tau_neg`, and ignored in
  between. The strong view is trained with BCE on the confident entries only; the loss is the
  mean over *all* (image, class) entries, as FixMatch averages over all unlabelled images, so
  the unlabelled term grows with the share of confident entries (the mask rate).
* MixMatch's sharpening applies to each class's Bernoulli (p, 1-p) the paper's
  p_i^(1/T) / sum_j p_j^(1/T): p^(1/T) / (p^(1/T) + (1-p)^(1/T)). T -> 0 gives 0/1, T = 1
  leaves p; 0.5 stays 0.5 (an undecided class stays undecided).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def confident_pseudo_labels(probs: torch.Tensor, tau_pos: float, tau_neg: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, mask), both like `probs` (B, C): targets 1 where p > tau_pos else 0; mask 1
    where p > tau_pos or p < tau_neg (the entries the strong view learns)."""
    positive = probs > tau_pos
    mask = positive | (probs < tau_neg)
    return positive.to(probs.dtype), mask.to(probs.dtype)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the BCE of the masked entries divided by the number of *all* entries."""
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (loss * mask).sum() / loss.numel()


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-class Bernoulli sharpening p^(1/T) / (p^(1/T) + (1-p)^(1/T)), computed in log space
    (a sigmoid of the scaled logit) so tiny p and small T cannot underflow to 0/0."""
    probs = probs.clamp(1e-7, 1 - 1e-7)
    return torch.sigmoid((torch.log(probs) - torch.log1p(-probs)) / temperature)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MixMatch's MixUp with a given λ (already max(λ, 1-λ)) and partner order `perm`:
    λ·x + (1-λ)·x[perm], the same for the targets. λ ≥ 0.5 keeps each mixed sample closer to
    its own input, so the first rows stay "labelled" and the rest "unlabelled"."""
    return lam * inputs + (1 - lam) * inputs[perm], lam * targets + (1 - lam) * targets[perm]


def mixmatch_lambda(alpha: float, device=None) -> float:
    """λ ~ Beta(α, α), then max(λ, 1-λ); drawn from torch's RNG (saved in checkpoints)."""
    concentration = torch.tensor(float(alpha), device=device)
    lam = float(torch.distributions.Beta(concentration, concentration).sample())
    return max(lam, 1.0 - lam)


def linear_rampup(step: int, steps: int) -> float:
    """0 → 1 linearly over `steps` optimizer steps (1 at once for steps = 0)."""
    return 1.0 if steps <= 0 else min(1.0, max(0.0, step / steps))
