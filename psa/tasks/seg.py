"""Stage 3: a DeepLab-style segmentation network trained on the random-walk pseudo masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ..config import Recipe
from ..constants import IGNORE_INDEX
from ..data import build_source
from ..data.base import check_files
from ..data import transforms as T
from ..engine.trainer import TaskSpec
from ..errors import PsaError
from ..models import SegNet, build_backbone
from ..viz import colorize_label, side_by_side
from .common import apply_freeze_backbone, denormalize

PSEUDO_DIRS = {"pseudo": "pseudo", "pseudo_crf": "pseudo_crf"}  # under <run>/affinity/


def mask_folder(recipe: Recipe) -> Path | None:
    """Where the training masks come from (None = the dataset's ground truth)."""
    if recipe.seg.labels == "gt":
        return None
    return recipe.stage_dir("affinity") / PSEUDO_DIRS[recipe.seg.labels]


class SegTrainDataset(Dataset):
    def __init__(self, source, recipe: Recipe):
        self.source = source
        self.cfg = recipe.seg
        self.folder = mask_folder(recipe)
        if self.folder is None and not source.has_masks:
            raise PsaError("seg.labels=gt needs a dataset with ground-truth masks")
        if self.folder is not None:
            missing = [i for i in source.ids if not (self.folder / f"{i}.png").is_file()]
            if missing:
                raise PsaError(f"pseudo mask missing for {len(missing)} of {len(source.ids)} images (first: "
                               f"{self.folder / missing[0]}.png); run tools/random_walk.py first")

    def __len__(self) -> int:
        return len(self.source)

    def _mask(self, index: int, shape) -> np.ndarray:
        if self.folder is None:
            return self.source.load_mask(index)
        path = self.folder / f"{self.source.ids[index]}.png"
        try:
            mask = np.array(Image.open(path))
        except OSError as err:
            raise PsaError(f"cannot read pseudo mask {path}: {err}") from None
        if mask.shape != shape:
            raise PsaError(f"pseudo mask {path} is {mask.shape}, its image is {shape}")
        return mask

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        mask = self._mask(index, image.shape[:2])
        image, mask = T.random_scale(image, mask, *self.cfg.resize_range)
        image, mask = T.random_hflip(image, mask)
        image = T.color_jitter(image, self.cfg.color_jitter)
        tensor, mask = T.random_crop(T.normalize(image), torch.from_numpy(np.ascontiguousarray(mask)),
                                     self.cfg.crop_size, fill=0.0)
        return {"image": tensor, "mask": mask.long()}


def seg_loss(model, batch: dict) -> tuple[torch.Tensor, dict]:
    logits = model(batch["image"])
    return F.cross_entropy(logits.float(), batch["mask"], ignore_index=IGNORE_INDEX), {}


def seg_preview(model: SegNet, batch: dict) -> dict:
    images = batch["image"][:4]
    pred = model(images).argmax(1).cpu().numpy().astype(np.uint8)
    masks = batch["mask"][:4].cpu().numpy().astype(np.uint8)
    return {f"seg_{i}": side_by_side([denormalize(images[i]), colorize_label(masks[i]), colorize_label(pred[i])])
            for i in range(images.shape[0])}


def build_seg_model(recipe: Recipe, num_classes: int, load_weights: bool = True) -> SegNet:
    return SegNet(build_backbone(recipe.model, load_weights=load_weights), num_classes, recipe.seg.head)


def build_seg_task(recipe: Recipe) -> TaskSpec:
    source = build_source(recipe.data, recipe.data.train_split)
    check_files(source, masks=recipe.seg.labels == "gt")
    return TaskSpec(
        name="seg", train=recipe.seg.train,
        model=apply_freeze_backbone(build_seg_model(recipe, len(source.classes)), recipe.seg.train.freeze_backbone),
        dataset=SegTrainDataset(source, recipe), loss_fn=seg_loss,
        meta={"classes": list(source.classes), "head": recipe.seg.head}, preview_fn=seg_preview,
    )
