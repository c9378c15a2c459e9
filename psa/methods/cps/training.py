"""Semi-supervised segmentation by Cross Pseudo Supervision (Chen et al., CVPR 2021).

Two segmentation networks of one architecture, initialised differently. Each learns from
the labelled images (cross-entropy with their masks) and, on the unlabelled images, from the
other network's one-hot prediction (cross-entropy, weight λ = `cps.weight`):

    loss = CE(f1(x_l), y) + CE(f2(x_l), y) + λ · (CE(f1(x_u), argmax f2(x_u)) + CE(f2(x_u), argmax f1(x_u)))

The targets are argmaxes, so no gradient flows through them. With `cps.cutmix` each
unlabelled image is paired with the next one of its batch and a box of `cutmix_area` of the
crop is pasted from the partner (the paper's BoxMaskGenerator with one box); the targets are
the other network's predictions on the unmixed images, mixed with the same box.

The unlabelled images are the task's main dataset (an epoch is one pass over them, as in the
paper); the labelled ones come as a side stream of `cps.labeled_batch_size` per step.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ...config import Recipe
from ...constants import IGNORE_INDEX
from ...data import build_source
from ...data.base import check_files
from ...data.labeled_split import SourceSubset, choose_labeled, write_split
from ...data.transforms import denormalize
from ...engine.distributed import global_sum, world_size
from ...engine.optim import linear_rampup
from ...engine.side_stream import SideData
from ...engine.trainer import Trainable
from ...errors import PsaError
from ...framework.segmentation import SegTrainDataset, build_seg_model, seg_augment
from ...ops.losses import masked_cross_entropy
from ...viz import colorize_label, side_by_side
from .model import CpsPair


class UnlabeledDataset(Dataset):
    """The unlabelled images with the labelled ones' augmentation; `valid` is False where the
    crop padded the image (no pseudo label is learned there)."""

    def __init__(self, source, recipe: Recipe):
        self.source = source
        self.cfg = recipe.cps

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        tensor, padding = seg_augment(image, np.zeros(image.shape[:2], dtype=np.uint8), self.cfg)
        return {"image": tensor, "valid": padding != IGNORE_INDEX}


# ----------------------------------------------------------------------------- loss


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the pixels of the whole global batch whose target is not IGNORE_INDEX (0 when
    there are none), ×N against DDP's gradient mean (psa/engine/distributed.py): N processes
    optimise the loss of one process on the same global batch, and no per-GPU division
    shrinks the learning rate."""
    return masked_cross_entropy(logits, target, reduce_count=global_sum) * world_size()


def one_hot_targets(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """A network's prediction as labels for the other one (IGNORE_INDEX where not `valid`)."""
    labels = logits.detach().argmax(1)
    return labels.masked_fill(~valid, IGNORE_INDEX)


def box_masks(count: int, height: int, width: int, area: float = 0.25,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """(count, H, W) bool, one box each covering `area` of the image with a random aspect
    ratio, inside the image: the paper's BoxMaskGenerator (prop_by_area, random aspect,
    within bounds) with one box of a fixed area."""
    draws = torch.rand(count, 3, generator=generator, dtype=torch.float64)
    masks = torch.zeros(count, height, width, dtype=torch.bool)
    for i, (aspect, y, x) in enumerate(draws.tolist()):
        share_y = math.exp(aspect * math.log(area))  # in [area, 1], so share_x = area / share_y is too
        box_h, box_w = round(share_y * height), round(area / share_y * width)
        top, left = round((height - box_h) * y), round((width - box_w) * x)
        masks[i, top:top + box_h, left:left + box_w] = True
    return masks


def paste_from_partner(tensor: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Image i keeps its pixels outside box i and takes image (i+1) mod B's inside it.
    Works on (B, C, H, W) images and (B, H, W) labels alike."""
    partner = tensor.roll(-1, dims=0)
    inside = boxes.view(boxes.shape[0], *([1] * (tensor.ndim - 3)), *boxes.shape[1:])
    return torch.where(inside, partner, tensor)


def cps_loss(model, batch: dict, weight: float, cutmix_area: float | None = None,
             boxes: torch.Tensor | None = None, warmup_steps: int = 0) -> tuple[torch.Tensor, dict]:
    """The CPS objective on one step: `batch` holds the unlabelled images (image, valid) and
    `batch["labeled"]` the labelled ones (image, mask). `model` is the (wrapped) pair; it is
    called once with gradients (labelled and unlabelled images in one batch, so DDP sees one
    forward), and with CutMix once more without, for the targets on the unmixed images.
    `boxes` fixes the CutMix boxes (tests); by default they are drawn from torch's RNG, whose
    state the checkpoints keep."""
    labeled = batch["labeled"]
    count = labeled["image"].shape[0]
    if warmup_steps:  # by the engine's optimizer steps: with grad_accum, one λ for all micro-batches of a step
        weight = weight * linear_rampup(batch["step"], warmup_steps)
    if weight == 0:  # supervised only: the unlabelled images are not even looked at
        first, second = model(labeled["image"])
        sup = (cross_entropy(first, labeled["mask"]), cross_entropy(second, labeled["mask"]))
        return sup[0] + sup[1], {"sup_first": sup[0].detach(), "sup_second": sup[1].detach()}
    images, valid = batch["image"], batch["valid"]
    targets = None
    if cutmix_area:
        if images.shape[0] < 2:
            raise PsaError("cps.cutmix pairs the unlabelled images of a batch: cps.train.batch_size "
                           "must give each process at least 2")
        with torch.no_grad():
            plain = model(images)
        if boxes is None:
            boxes = box_masks(images.shape[0], *images.shape[-2:], area=cutmix_area)
        boxes = boxes.to(images.device)
        targets = [paste_from_partner(one_hot_targets(out, valid), boxes) for out in plain]
        images, valid = paste_from_partner(images, boxes), paste_from_partner(valid, boxes)
    first, second = model(torch.cat([labeled["image"], images]))
    sup = (cross_entropy(first[:count], labeled["mask"]), cross_entropy(second[:count], labeled["mask"]))
    if targets is None:
        targets = [one_hot_targets(out[count:], valid) for out in (first, second)]
    # each network learns from the other's prediction
    cross = cross_entropy(first[count:], targets[1]) + cross_entropy(second[count:], targets[0])
    loss = sup[0] + sup[1] + weight * cross
    return loss, {"sup_first": sup[0].detach(), "sup_second": sup[1].detach(), "cps": cross.detach(),
                  "cps_weight": torch.tensor(weight)}


# ----------------------------------------------------------------------------- task


def cps_preview(model: CpsPair, batch: dict) -> dict:
    labeled = batch["labeled"]
    images = labeled["image"][:4]
    preds = [out.argmax(1).cpu().numpy().astype(np.uint8) for out in model(images)]
    masks = labeled["mask"][:4].cpu().numpy().astype(np.uint8)
    return {f"cps_{i}": side_by_side([denormalize(images[i]), colorize_label(masks[i]),
                                      colorize_label(preds[0][i]), colorize_label(preds[1][i])])
            for i in range(images.shape[0])}


def build_cps_pair(recipe: Recipe, num_classes: int, load_weights: bool = True) -> CpsPair:
    """Two networks initialised from different seeds (the same ImageNet backbone weights when
    pretrained; everything else differs)."""
    nets = []
    for k in range(2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.run.seed * 1_000_003 + k)
            nets.append(build_seg_model(recipe, num_classes, recipe.cps.head, load_weights))
    return CpsPair(*nets)


def build_cps_task(recipe: Recipe) -> Trainable:
    cfg = recipe.cps
    source = build_source(recipe.data, recipe.data.train_split)
    split = choose_labeled(source.ids, cfg.labeled, "cps.labeled", source.image_labels)
    if not split.unlabeled:
        raise PsaError(f"cps.labeled labels all {len(source.ids)} training images; CPS needs unlabelled ones")
    labeled, unlabeled = SourceSubset(source, split.labeled), SourceSubset(source, split.unlabeled)
    check_files(labeled, masks=cfg.labels == "gt")
    check_files(unlabeled)
    return Trainable(
        name="cps", model=build_cps_pair(recipe, len(source.classes)),
        dataset=UnlabeledDataset(unlabeled, recipe),
        side={"labeled": SideData(SegTrainDataset(labeled, recipe, section="cps"), cfg.labeled_batch_size,
                                  "cps.labeled_batch_size")},
        loss_fn=partial(cps_loss, weight=cfg.weight, cutmix_area=cfg.cutmix_area if cfg.cutmix else None,
                        warmup_steps=cfg.warmup_steps),
        meta={"classes": list(source.classes), "head": cfg.head, "networks": 2},
        preview_fn=cps_preview,
        write_files=lambda folder: write_split(Path(folder), source.ids, split),
    )
