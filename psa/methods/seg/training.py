"""The segmentation network's training: cross-entropy on its masks' labelled pixels."""

from __future__ import annotations

import numpy as np

from ...config import Recipe
from ...data import build_source
from ...data import transforms as T
from ...data.base import check_files
from ...engine.distributed import global_sum, world_size
from ...engine.trainer import Trainable
from ...framework.segmentation import SegTrainDataset, build_seg_model
from ...models import SegNet
from ...models.backbone import freeze_backbone
from ...ops.losses import masked_cross_entropy
from ...viz import colorize_label, side_by_side


def seg_loss(model, batch: dict):
    logits = model(batch["image"])
    # mean over the non-ignored pixels of the global batch, not of this process's share
    # (their number differs between processes); ×N against DDP's gradient mean
    loss = masked_cross_entropy(logits, batch["mask"], reduce_count=global_sum)
    return loss * world_size(), {}


def seg_preview(model: SegNet, batch: dict) -> dict:
    images = batch["image"][:4]
    pred = model(images).argmax(1).cpu().numpy().astype(np.uint8)
    masks = batch["mask"][:4].cpu().numpy().astype(np.uint8)
    return {f"seg_{i}": side_by_side([T.denormalize(images[i]), colorize_label(masks[i]), colorize_label(pred[i])])
            for i in range(images.shape[0])}


def build_seg_task(recipe: Recipe) -> Trainable:
    source = build_source(recipe.data, recipe.data.train_split)
    check_files(source, masks=recipe.seg.labels == "gt")
    model = build_seg_model(recipe, len(source.classes), recipe.seg.head)
    return Trainable(
        name="seg", model=freeze_backbone(model, recipe.seg.train.freeze_backbone),
        dataset=SegTrainDataset(source, recipe), loss_fn=seg_loss,
        meta={"classes": list(source.classes), "head": recipe.seg.head}, preview_fn=seg_preview,
    )
