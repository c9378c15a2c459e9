"""The classifier's training: on every image's labels, or on the labelled subset
(`cam.labeled`) alone or with a registered variant's unlabelled stream and loss
(`cam.method`: FixMatch, MixMatch, ...). The labelled images are the main stream (they define
the epochs, so every method takes the same steps); the unlabelled ones come as the engine's
side stream."""

from __future__ import annotations

import torch
from torch.utils.data import Subset

from ...config import LabeledConfig, Recipe
from ...data import build_source
from ...data.base import check_files
from ...data.labeled_split import choose_labeled, write_split
from ...engine.trainer import Trainable
from ...errors import PsaError
from ...framework.classifier import CamTrainDataset, CamVariant, build_cam_model, cam_loss, cam_preview
from ...framework.registry import REGISTRY
from ...models.backbone import freeze_backbone
from .section import SUPERVISED


def is_partially_labeled(labeled: LabeledConfig) -> bool:
    return bool(labeled.list_file) or labeled.fraction < 1.0


def variant(recipe: Recipe) -> CamVariant | None:
    """The registered variant `cam.method` names; None for the plain classifier."""
    if recipe.cam.method == SUPERVISED:
        return None
    return REGISTRY.find(CamVariant, recipe.cam.method, "cam.method")


def build_cam_task(recipe: Recipe) -> Trainable:
    cam = recipe.cam
    source = build_source(recipe.data, recipe.data.train_split)
    chosen = variant(recipe)
    if chosen is None and not is_partially_labeled(cam.labeled):
        check_files(source, labels=True)
        model = freeze_backbone(build_cam_model(recipe, len(source.classes)), cam.train.freeze_backbone)
        return Trainable(name="cam", model=model, dataset=CamTrainDataset(source, cam), loss_fn=cam_loss,
                         meta={"classes": list(source.classes)}, preview_fn=cam_preview)
    check_files(source)
    split = choose_labeled(list(source.ids), cam.labeled, "cam.labeled", source.image_labels)
    # only the labelled images need labels; their class shares are a variant's prior
    priors = torch.zeros(len(source.classes) - 1)
    for index in split.labeled:
        priors[torch.as_tensor(source.image_labels(index), dtype=torch.long) - 1] += 1
    priors /= max(len(split.labeled), 1)
    labeled = Subset(CamTrainDataset(source, cam), split.labeled)
    if len(labeled) < cam.train.batch_size:
        raise PsaError(f"recipe key 'cam.labeled': {len(labeled)} labelled images are fewer than "
                       f"cam.train.batch_size={cam.train.batch_size}")
    side, loss_fn = ({}, cam_loss) if chosen is None else chosen.build(recipe, source, split, priors)
    ids = list(source.ids)
    return Trainable(
        name="cam", dataset=labeled,
        model=freeze_backbone(build_cam_model(recipe, len(source.classes)), cam.train.freeze_backbone),
        loss_fn=loss_fn, preview_fn=cam_preview, side=side,
        meta={"classes": list(source.classes), "method": cam.method, "labeled": len(split.labeled),
              "unlabeled": len(split.unlabeled)},
        write_files=lambda folder: write_split(folder, ids, split),
    )
