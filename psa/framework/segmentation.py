"""What every segmentation network psa trains shares (the seg method's, CPS's pair): its
training masks from a registered pseudo-mask source or the ground truth, the augmentation,
and the network itself. The recipe section is a `SegNetworkConfig` (psa/config/schema.py)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import Recipe, SegNetworkConfig
from ..constants import IGNORE_INDEX
from ..data import transforms as T
from ..errors import PsaError
from ..io import read_label_png, require_files
from ..models import SegNet, build_backbone
from ..ops.scores import top_class_probability
from .masks import MaskSource
from .registry import REGISTRY, RecipeCheck
from .step import Step


def mask_source(recipe: Recipe, section: str) -> Optional[MaskSource]:
    """The pseudo-mask source `<section>.masks` names, or None when it learns from the ground truth."""
    cfg: SegNetworkConfig = getattr(recipe, section)
    if cfg.labels == "gt":
        return None
    return REGISTRY.find(MaskSource, cfg.masks, f"{section}.masks")


def label_upstream(recipe: Recipe, section: str) -> tuple[Step, ...]:
    """The step whose masks the network learns from (none for the ground truth)."""
    source = mask_source(recipe, section)
    return () if source is None else (source.step,)


def masks_check(section: str) -> RecipeCheck:
    """`<section>.masks` must name a registered pseudo-mask source (when labels are pseudo)."""
    return RecipeCheck(f"{section}.masks", lambda recipe: mask_source(recipe, section))


def unused_label_keys(recipe: Recipe, section: str) -> tuple[str, ...]:
    """The label keys a trained record leaves out at their defaults, so that weights trained
    before the keys existed still match: `masks` at its default or with ground-truth labels,
    and a min_confidence of 0."""
    cfg = getattr(recipe, section)
    default = {f.name: f.default for f in dataclasses.fields(cfg)}["masks"]
    unused = ("masks",) if cfg.labels == "gt" or cfg.masks == default else ()
    unused += ("min_confidence",) if cfg.min_confidence == 0 else ()
    return tuple(f"{section}.{key}" for key in unused)


def seg_augment(image: np.ndarray, mask: np.ndarray, cfg: SegNetworkConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale, flip, colour jitter and crop of an image and its mask (padding: mask 255)."""
    image, mask = T.random_scale(image, mask, *cfg.resize_range)
    image, mask = T.random_hflip(image, mask)
    image = T.color_jitter(image, cfg.color_jitter)
    return T.random_crop(T.normalize(image), torch.from_numpy(np.ascontiguousarray(mask)), cfg.crop_size, fill=0.0)


class SegTrainDataset(Dataset):
    """Images with the masks `<section>.labels` names: the ground truth, or a pseudo-mask
    source's (refined by the CRF for pseudo_crf), its uncertain pixels (the source's own
    probability below `min_confidence`) left out of the loss."""

    def __init__(self, source, recipe: Recipe, section: str = "seg"):
        self.source = source
        self.cfg: SegNetworkConfig = getattr(recipe, section)
        masks = mask_source(recipe, section)
        self.folder = None if masks is None else masks.folder(recipe, self.cfg.labels)
        if self.folder is None and not source.has_masks:
            raise PsaError(f"{section}.labels=gt needs a dataset with ground-truth masks")
        if self.folder is not None:
            require_files(self.folder, [f"{i}.png" for i in source.ids], "pseudo mask",
                          f"run the {masks.step.name} step that writes them first")
        self.scores = None
        if masks is not None and self.cfg.min_confidence > 0:
            if masks.scores is None:
                raise PsaError(f"{section}.min_confidence needs class scores; source {masks.name!r} writes none")
            self.scores = masks.scores(recipe)
            require_files(self.scores, [f"{i}.npz" for i in source.ids], "score file",
                          f"{section}.min_confidence needs them: run the {masks.step.name} step first")

    def __len__(self) -> int:
        return len(self.source)

    def _mask(self, index: int, shape) -> np.ndarray:
        if self.folder is None:
            return self.source.load_mask(index)
        image_id = self.source.ids[index]
        mask = read_label_png(self.folder / f"{image_id}.png", "pseudo mask", shape)
        if self.scores is not None:
            confidence = top_class_probability(self.scores / f"{image_id}.npz", shape)
            mask = np.where(confidence < self.cfg.min_confidence, IGNORE_INDEX, mask).astype(mask.dtype)
        return mask

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        tensor, mask = seg_augment(image, self._mask(index, image.shape[:2]), self.cfg)
        return {"image": tensor, "mask": mask.long()}


def build_seg_model(recipe: Recipe, num_classes: int, head: str, load_weights: bool = True) -> SegNet:
    return SegNet(build_backbone(recipe.model, load_weights=load_weights), num_classes, head)
