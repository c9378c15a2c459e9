"""FixMatch and MixMatch as variants of the CAM classifier's training (`cam.method`): each
adds a stream of unlabelled images, `mu` × the labelled batch, and its loss. The formulas for
multi-label image labels are in ops.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ...data import transforms as T
from ...engine.distributed import gather_rows
from ...engine.optim import linear_rampup
from ...engine.side_stream import SideData
from ...errors import PsaError
from ...framework.classifier import cam_augment
from .ops import (
    align_distribution, confident_pseudo_labels, masked_bce, mixmatch_lambda, mixup, prior_caps, sharpen,
)
from .section import FixMatchConfig, MixMatchConfig
from .strong_augment import photometric_randaugment, random_erasing


class FixMatchUnlabeled(Dataset):
    """A weak and a strong view of each unlabelled image. Both share the resize, flip and
    crop, so a pseudo-label from the weak view refers to the content the strong view shows;
    the weak view is the CAM augmentation, the strong one adds photometric RandAugment (over
    `randaugment_space`) and random erasing."""

    def __init__(self, source, indices: list[int], cam):
        self.source, self.indices, self.cam = source, indices, cam

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        cam, fix = self.cam, self.cam.fixmatch
        image = self.source.load_image(self.indices[index])
        image, _ = T.random_resize_long(image, None, *cam.resize_long)
        image, _ = T.random_hflip(image, None)
        weak = T.color_jitter(image, cam.color_jitter)
        strong = photometric_randaugment(T.color_jitter(image, cam.color_jitter), fix.randaugment_ops,
                                         fix.randaugment_magnitude, fix.randaugment_space)
        # one crop of both views stacked on the channels: the same window for each
        both, _ = T.random_crop(torch.cat([T.normalize(weak), T.normalize(strong)]), None, cam.crop_size, fill=0.0)
        return {"weak": both[:3], "strong": random_erasing(both[3:], fix.erasing_prob, fix.erasing_scale)}


class MixMatchUnlabeled(Dataset):
    """K independent weak (CAM) augmentations of each unlabelled image, (K, 3, S, S)."""

    def __init__(self, source, indices: list[int], cam):
        self.source, self.indices, self.cam = source, indices, cam

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(self.indices[index])
        return {"views": torch.stack([cam_augment(image, self.cam) for _ in range(self.cam.mixmatch.k)])}


def fixmatch_loss(cfg: FixMatchConfig, priors: torch.Tensor | None = None):
    """`priors` (C,): each class's share of the labelled images, for `cfg.prior_cap`."""
    def loss_fn(model, batch: dict) -> tuple[torch.Tensor, dict]:
        labeled, unlabeled = batch["image"], batch["unlabeled"]
        n, m = labeled.shape[0], unlabeled["weak"].shape[0]
        if cfg.teacher == "ema":
            with torch.no_grad():
                logits_weak = batch["teacher"](unlabeled["weak"]).float()
            logits_l, logits_strong = model(torch.cat([labeled, unlabeled["strong"]])).float().split([n, m])
        else:  # one forward over all three parts, as the paper: batch norm sees them together
            logits = model(torch.cat([labeled, unlabeled["weak"], unlabeled["strong"]])).float()
            logits_l, logits_weak, logits_strong = logits.split([n, m, m])
        supervised = F.multilabel_soft_margin_loss(logits_l, batch["target"])
        probs = torch.sigmoid(logits_weak.detach())
        shares = priors.to(probs.device) if priors is not None else None
        # both options decide over the global unlabelled batch: gathered once
        batch_probs = gather_rows(probs) if cfg.distribution_alignment or cfg.prior_cap else None
        if cfg.distribution_alignment:
            # a per-class logit shift keeps each class's ranking, so the caps below see the same order
            probs, batch_probs = (align_distribution(probs, batch_probs, shares),
                                  align_distribution(batch_probs, batch_probs, shares))
        caps = prior_caps(probs, batch_probs, shares) if cfg.prior_cap else None
        positives, mask = confident_pseudo_labels(probs, cfg.tau_pos, cfg.tau_neg, caps)
        targets = sharpen(probs, cfg.temperature) if cfg.temperature > 0 else positives
        unsupervised = masked_bce(logits_strong, targets, mask)
        weight = cfg.lambda_u * linear_rampup(batch["step"], cfg.warmup_steps)
        return supervised + weight * unsupervised, {
            "loss_sup": supervised.detach(), "loss_unsup": unsupervised.detach(), "lambda_u": weight,
            "mask_rate": mask.mean(), "mask_rate_pos": (positives * mask).mean(),
        }
    return loss_fn


def mixmatch_loss(cfg: MixMatchConfig, priors: torch.Tensor | None = None):
    """`priors` (C,): each class's share of the labelled images, for `cfg.distribution_alignment`."""
    def loss_fn(model, batch: dict) -> tuple[torch.Tensor, dict]:
        labeled, views = batch["image"], batch["unlabeled"]["views"]
        n, (m, k) = labeled.shape[0], views.shape[:2]
        unlabeled = views.transpose(0, 1).reshape(k * m, *views.shape[2:])  # view-major
        guesser = batch["teacher"] if cfg.teacher == "ema" else model
        with torch.no_grad():  # label guessing: mean over the K views, sharpened per class
            guess = torch.sigmoid(guesser(unlabeled).float()).view(k, m, -1).mean(0)
            if cfg.distribution_alignment:
                guess = align_distribution(guess, gather_rows(guess), priors.to(guess.device))
            guess = sharpen(guess, cfg.temperature)
        inputs = torch.cat([labeled, unlabeled])
        targets = torch.cat([batch["target"].float(), guess.repeat(k, 1)])
        lam = mixmatch_lambda(cfg.alpha, inputs.device)
        perm = torch.randperm(inputs.shape[0], device=inputs.device)
        mixed_inputs, mixed_targets = mixup(inputs, targets, lam, perm)
        logits = model(mixed_inputs).float()
        supervised = F.binary_cross_entropy_with_logits(logits[:n], mixed_targets[:n])
        unsupervised = F.mse_loss(torch.sigmoid(logits[n:]), mixed_targets[n:])
        weight = cfg.lambda_u * linear_rampup(batch["step"], cfg.rampup_steps)
        return supervised + weight * unsupervised, {
            "loss_sup": supervised.detach(), "loss_unsup": unsupervised.detach(), "lambda_u": weight,
            # share of guessed class probabilities already outside (0.05, 0.95)
            "mask_rate": ((guess > 0.95) | (guess < 0.05)).float().mean(),
        }
    return loss_fn


def unlabeled_stream(name: str, views, loss):
    """The `CamVariant.build` of a method whose unlabelled `views` dataset and `loss(settings,
    priors)` are given."""
    def build(recipe, source, split, priors):
        cam = recipe.cam
        settings = getattr(cam, name)
        dataset = views(source, split.unlabeled, cam)
        batch, key = settings.mu * cam.train.batch_size, f"cam.{name}.mu"
        if len(dataset) < batch:  # checked here too, so a refused run writes no split
            raise PsaError(f"recipe key '{key}': {len(dataset)} unlabelled images are fewer than one batch "
                           f"of {settings.mu} × cam.train.batch_size = {batch}")
        return {"unlabeled": SideData(dataset, batch, key)}, loss(settings, priors)
    return build
