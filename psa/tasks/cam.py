"""Stage 1: the CAM classifier trained on image-level labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..config import CamConfig, Recipe
from ..data.base import check_files
from ..data import transforms as T
from ..engine.trainer import TaskSpec
from ..models import CamNet, build_backbone
from ..viz import overlay_cam
from .common import apply_freeze_backbone, denormalize


class CamTrainDataset(Dataset):
    """Reference augmentation: resize long side, flip, colour jitter, normalise, crop (zero fill)."""

    def __init__(self, source, cfg: CamConfig):
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


def cam_augment(image, cfg: CamConfig) -> torch.Tensor:
    """The reference's CAM augmentation of a uint8 image (also the semi-supervised weak view)."""
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
        pictures[f"cam_{i}"] = overlay_cam(denormalize(images[i]), cam)
    return pictures


def build_cam_model(recipe: Recipe, num_classes: int, load_weights: bool = True) -> CamNet:
    return CamNet(build_backbone(recipe.model, load_weights=load_weights), num_classes - 1)


def build_supervised_cam_task(recipe: Recipe, source) -> TaskSpec:
    check_files(source, labels=True)
    model = apply_freeze_backbone(build_cam_model(recipe, len(source.classes)), recipe.cam.train.freeze_backbone)
    return TaskSpec(
        name="cam", model=model, dataset=CamTrainDataset(source, recipe.cam),
        loss_fn=cam_loss, meta={"classes": list(source.classes)}, preview_fn=cam_preview,
    )
