"""FixMatch and MixMatch pieces for multi-label image labels, as plain functions on tensors.

Both papers are single-label (softmax). With image-level multi-labels every class is its own
Bernoulli, so:

* FixMatch's confidence is per class: a class is a confident positive where the weak view's
  sigmoid is above `tau_pos`, a confident negative where it is below `tau_neg`, and ignored in
  between. The strong view is trained with BCE on the confident entries only; the loss is the
  mean over *all* (image, class) entries, as FixMatch averages over all unlabelled images, so
  the unlabelled term grows with the share of confident entries (the mask rate). The targets
  are the paper's hard 0/1, or (`temperature` T > 0) the weak view's probability sharpened as
  MixMatch's below, as UDA (Xie et al., NeurIPS 2020) does: a soft target stops pushing once
  the strong view agrees, so a confident mistake is kept, not driven to certainty.
* Optionally (`prior_cap`) a class's confident positives in an unlabelled batch are at most
  its share of the labelled images (ceil(prior × batch), the highest probabilities), and its
  confident negatives at most floor((1 - prior) × batch), the lowest: a batch-level form of
  class-distribution-aware pseudo-labelling (Xie et al., ICML 2023). A fixed threshold lets a
  class the model over-predicts take ever more positives and learn from them (confirmation
  bias); the cap keeps each class's pseudo-labels near the label distribution.
* Optionally (`distribution_alignment`) the predictions are first aligned to the labelled
  class shares, as ReMixMatch (Berthelot et al., ICLR 2020) does: p~ ∝ p × prior / mean(p),
  normalised over the outcomes. For a class's Bernoulli (p, 1-p) with share π and mean
  prediction m that is p π/m / (p π/m + (1-p)(1-π)/(1-m)), i.e. its logit shifted by
  logit(π) - logit(m): a class the model over-predicts on the unlabelled images loses
  confidence everywhere, an under-predicted one gains, and the ranking within a class stays.
  m is the mean over the global unlabelled batch (ReMixMatch: a moving average of 128
  batches), so nothing but the batch is state and resume stays exact.
* MixMatch's sharpening applies to each class's Bernoulli (p, 1-p) the paper's
  p_i^(1/T) / sum_j p_j^(1/T): p^(1/T) / (p^(1/T) + (1-p)^(1/T)). T -> 0 gives 0/1, T = 1
  leaves p; 0.5 stays 0.5 (an undecided class stays undecided).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def confident_pseudo_labels(probs: torch.Tensor, tau_pos: float, tau_neg: float,
                            caps: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(targets, mask), both like `probs` (B, C): targets 1 where p > tau_pos else 0; mask 1
    where p > tau_pos or p < tau_neg (the entries the strong view learns). `caps` (from
    `prior_caps`) further restricts which entries may be positive and negative."""
    positive, negative = probs > tau_pos, probs < tau_neg
    if caps is not None:
        positive, negative = positive & caps[0], negative & caps[1]
    mask = positive | negative
    return positive.to(probs.dtype), mask.to(probs.dtype)


def prior_caps(probs: torch.Tensor, batch_probs: torch.Tensor, priors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(may_be_positive, may_be_negative), both like `probs` (B, C): for each class c, the
    entries of `probs` at or above the ceil(priors[c] × M)-th highest of `batch_probs[:, c]`,
    and at or below its floor((1 - priors[c]) × M)-th lowest (M = rows of `batch_probs`, the
    global unlabelled batch that `probs`, this process's rows, belongs to). A cap of 0 rows
    allows none."""
    count = batch_probs.shape[0]
    ordered = batch_probs.sort(dim=0, descending=True).values  # (M, C), column-wise
    # the tolerance keeps float error from turning an exact 7.0000001 into 8
    pos_count = torch.ceil(priors.double() * count - 1e-6).long().clamp(0, count)
    neg_count = torch.floor((1 - priors.double()) * count + 1e-6).long().clamp(0, count)
    inf = torch.full_like(priors, float("inf"), dtype=probs.dtype)
    # the k-th highest is ordered[k - 1]; the k-th lowest is ordered[M - k]
    pos_floor = torch.where(pos_count > 0, ordered.gather(0, (pos_count - 1).clamp_min(0)[None])[0], inf)
    neg_ceiling = torch.where(neg_count > 0, ordered.gather(0, (count - neg_count).clamp_max(count - 1)[None])[0], -inf)
    return probs >= pos_floor, probs <= neg_ceiling


def align_distribution(probs: torch.Tensor, batch_probs: torch.Tensor, priors: torch.Tensor,
                       eps: float = 1e-4) -> torch.Tensor:
    """`probs` (B, C) with each class's logit shifted by logit(priors[c]) - logit(mean of
    `batch_probs[:, c]`), the global batch `probs` belongs to; shares and means are clamped to
    [eps, 1 - eps] so a class no labelled image has stays finite (and near 0)."""
    shift = torch.logit(priors.clamp(eps, 1 - eps)) - torch.logit(batch_probs.mean(0).clamp(eps, 1 - eps))
    return torch.sigmoid(torch.logit(probs.clamp(1e-7, 1 - 1e-7)) + shift)


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
