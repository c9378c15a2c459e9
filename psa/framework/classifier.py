"""The CAM classifier every CAM method trains: its data (images with multi-hot image labels
and the reference's augmentation), loss, previews and network; and `CamVariant`, the hook a
method uses to train it differently (`cam.method`: FixMatch, MixMatch, a new one)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import Recipe
from ..data import transforms as T
from ..data.labeled_split import LabeledSplit
from ..models import CamNet, build_backbone
from ..viz import overlay_cam


@dataclass(frozen=True)
class CamVariant:
    """Another way to train the classifier: `cam.method: <name>`, its settings in `section`.
    `build(recipe, source, split, priors)` → (side streams, loss function) for the engine's
    Trainable, given the labelled / unlabelled split of the training images and each class's
    share of the labelled ones."""

    name: str
    section: str  # e.g. "cam.fixmatch": read by the classifier's record only when chosen
    build: Callable[[Recipe, object, LabeledSplit, torch.Tensor], tuple[dict, Callable]]


class CamTrainDataset(Dataset):
    """Reference augmentation: resize long side, flip, colour jitter, normalise, crop (zero fill)."""

    def __init__(self, source, cfg):
        self.source = source
        self.cfg = cfg
        self.num_foreground = len(source.classes) - 1

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        target = torch.zeros(self.num_foreground)
        target[torch.as_tensor(self.source.image_labels(index)) - 1] = 1.0
        return {"image": cam_augment(image, self.cfg), "target": target}


def cam_augment(image, cfg) -> torch.Tensor:
    """The reference's CAM augmentation of a uint8 image (also the semi-supervised weak view);
    `cfg`: the `cam` section (resize_long, color_jitter, crop_size)."""
    image, _ = T.random_resize_long(image, None, *cfg.resize_long)
    image, _ = T.random_hflip(image, None)
    image = T.color_jitter(image, cfg.color_jitter)
    tensor, _ = T.random_crop(T.normalize(image), None, cfg.crop_size, fill=0.0)
    return tensor


def cam_loss(model, batch: dict) -> tuple[torch.Tensor, dict]:
    logits = model(batch["image"])
    # a mean over images: every process has the same number, so DDP's mean of the per-process
    # gradients is already the gradient of the global batch's mean (no count to reduce)
    loss = F.multilabel_soft_margin_loss(logits, batch["target"])
    return loss, {}


def cam_preview(model: CamNet, batch: dict) -> dict:
    """CAM of the strongest present class for the first images of the batch."""
    images, targets = batch["image"][:4], batch["target"][:4]
    cams = model.forward_cam(images)
    cams = F.interpolate(cams, size=images.shape[-2:], mode="bilinear", align_corners=False)
    cams = cams * targets[:, :, None, None]
    pictures = {}
    for i in range(images.shape[0]):
        cam = cams[i].max(0).values
        cam = (cam / (cam.max() + 1e-5)).float().cpu().numpy()
        pictures[f"cam_{i}"] = overlay_cam(T.denormalize(images[i]), cam)
    return pictures


def build_cam_model(recipe: Recipe, num_classes: int, load_weights: bool = True) -> CamNet:
    return CamNet(build_backbone(recipe.model, load_weights=load_weights), num_classes - 1)

