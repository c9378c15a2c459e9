"""AffinityNet's training: pixel pairs drawn from the CAM export's confident labels."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ...config import Recipe
from ...constants import FEATURE_STRIDE
from ...data import build_source
from ...data import transforms as T
from ...data.base import check_files
from ...engine.checkpoints import load_weights
from ...engine.distributed import global_sum, world_size
from ...engine.trainer import Trainable
from ...framework.cams import cam_export, classifier
from ...io import read_label_png, require_files
from ...models.backbone import build_backbone, freeze_backbone
from ...ops.affinity_labels import pair_labels
from ...viz import colorize_label, side_by_side
from .model import AffinityNet
from .ops import affinity_loss
from .section import AffinityConfig


class AffinityTrainDataset(Dataset):
    """Reference augmentation (no rescale): colour jitter, flip, crop (image padded with RGB 0,
    labels with 255); the label is reduced to stride 8 by `transforms.downsample_label`."""

    def __init__(self, source, recipe: Recipe):
        self.source = source
        self.recipe = recipe
        self.cfg: AffinityConfig = recipe.affinity
        self.fill = T.normalized_fill(0)
        self.labels = cam_export().confident_labels(recipe)
        require_files(self.labels, [f"{i}.png" for i in source.ids], "confident label",
                      "run tools/export_cams.py first")

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        label = read_label_png(self.labels / f"{self.source.ids[index]}.png", "confident label", image.shape[:2])
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
            rgb = T.denormalize(images[i])
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
        cam = classifier()
        state, _ = load_weights(cam.weights(recipe), cam.step.training.section, recipe.model.backbone)
        backbone_state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        model.backbone.load_state_dict(backbone_state)
    return model


def build_affinity_task(recipe: Recipe) -> Trainable:
    source = build_source(recipe.data, recipe.data.train_split)
    check_files(source)
    radius = recipe.affinity.radius
    return Trainable(
        name="affinity",
        model=freeze_backbone(build_affinity_model(recipe), recipe.affinity.train.freeze_backbone),
        dataset=AffinityTrainDataset(source, recipe), loss_fn=affinity_loss_fn(radius),
        meta={"classes": list(source.classes), "radius": radius}, preview_fn=affinity_preview(radius),
    )

