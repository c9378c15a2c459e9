"""Stage 2: AffinityNet trained on pixel pairs drawn from the confident CAM labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..config import AffinityConfig, Recipe
from ..constants import FEATURE_STRIDE
from ..data import build_source
from ..data.base import check_files
from ..data import transforms as T
from ..engine.checkpoints import load_weights
from ..engine.distributed import global_sum, world_size
from ..engine.trainer import TaskSpec
from ..errors import PsaError
from ..layout import RunLayout
from ..models import AffinityNet, build_backbone
from ..ops import affinity_loss, pair_labels
from ..viz import colorize_label, side_by_side
from .common import apply_freeze_backbone, denormalize, require_pngs

def confident_label_path(recipe: Recipe, image_id: str) -> Path:
    return RunLayout.of(recipe).confident_labels / f"{image_id}.png"


class AffinityTrainDataset(Dataset):
    """Reference augmentation (no rescale): colour jitter, flip, crop (image padded with RGB 0,
    labels with 255); the label is reduced to stride 8 by `transforms.downsample_label`."""

    def __init__(self, source, recipe: Recipe):
        self.source = source
        self.recipe = recipe
        self.cfg: AffinityConfig = recipe.affinity
        self.fill = T.normalized_fill(0)
        require_pngs(RunLayout.of(recipe).confident_labels, source.ids, "confident label",
                     "run tools/export_cams.py first")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        path = confident_label_path(self.recipe, self.source.ids[index])
        try:
            label = np.array(Image.open(path))
        except OSError as err:
            raise PsaError(f"cannot read confident label {path}: {err}") from None
        if label.shape != image.shape[:2]:
            raise PsaError(f"confident label {path} is {label.shape}, its image is {image.shape[:2]}")
        image = T.color_jitter(image, self.cfg.color_jitter)
        image, label = T.random_hflip(image, label)
        tensor, label = T.random_crop(T.normalize(image), torch.from_numpy(np.ascontiguousarray(label)),
                                      self.cfg.crop_size, fill=self.fill)
        small = torch.as_tensor(T.downsample_label(label, FEATURE_STRIDE))
        pairs = pair_labels(small, self.cfg.radius, self.cfg.pairs)
        return {"image": tensor, "label": small, **pairs}


def affinity_loss_fn(radius: int):
    def loss_fn(model, batch: dict) -> tuple[torch.Tensor, dict]:
        aff = model(batch["image"], radius)
        labels = {k: batch[k] for k in ("bg", "fg", "neg")}
        # pair counts of the global batch, ×N against DDP's gradient mean (engine/distributed.py):
        # N processes then optimise exactly the loss of one process on the same global batch
        loss, parts = affinity_loss(aff.float(), labels, reduce_counts=global_sum)
        scale = world_size()
        parts = {k: v * scale if k.endswith("_loss") else v for k, v in parts.items()}
        return loss * scale, parts
    return loss_fn


def affinity_preview(radius: int):
    def preview(model: AffinityNet, batch: dict) -> dict:
        images = batch["image"][:4]
        aff = model(images, radius).float()
        # low affinity to some neighbour = a boundary the random walk will not cross
        valid = torch.ones_like(aff)
        boundary = 1 - torch.where(aff > 0, aff, valid).min(dim=1).values
        pictures = {}
        for i in range(images.shape[0]):
            rgb = denormalize(images[i])
            label = colorize_label(batch["label"][i].cpu().numpy().astype(np.uint8))
            edge = (boundary[i].cpu().numpy() * 255).astype(np.uint8)
            edge = np.repeat(edge[..., None], 3, axis=2)
            small = [np.asarray(Image.fromarray(p).resize(rgb.shape[1::-1], Image.NEAREST)) for p in (label, edge)]
            pictures[f"affinity_{i}"] = side_by_side([rgb, *small])
        return pictures
    return preview


def build_affinity_model(recipe: Recipe, load_weights_: bool = True) -> AffinityNet:
    from_cam = recipe.affinity.init == "cam"
    model = AffinityNet(build_backbone(recipe.model, load_weights=load_weights_ and not from_cam))
    if load_weights_ and from_cam:
        state, _ = load_weights(RunLayout.of(recipe).stage("cam").weights, "cam", recipe.model.backbone)
        backbone_state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        model.backbone.load_state_dict(backbone_state)
    return model


def build_affinity_task(recipe: Recipe) -> TaskSpec:
    source = build_source(recipe.data, recipe.data.train_split)
    check_files(source)
    radius = recipe.affinity.radius
    return TaskSpec(
        name="affinity",
        model=apply_freeze_backbone(build_affinity_model(recipe), recipe.affinity.train.freeze_backbone),
        dataset=AffinityTrainDataset(source, recipe), loss_fn=affinity_loss_fn(radius),
        meta={"classes": list(source.classes), "radius": radius}, preview_fn=affinity_preview(radius),
    )

