"""Stage 3: a DeepLab-style segmentation network trained on the random-walk pseudo masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from ..config import Recipe, SegConfig
from ..constants import IGNORE_INDEX
from ..data import build_source
from ..data.base import check_files
from ..data import transforms as T
from ..engine.distributed import global_sum, world_size
from ..engine.trainer import TaskSpec
from ..errors import PsaError
from ..layout import RunLayout
from ..models import SegNet, build_backbone
from ..ops.walk_scores import load_walk_scores, to_probabilities, upsample_scores
from ..viz import colorize_label, side_by_side
from .common import apply_freeze_backbone, denormalize, require_pngs

def mask_folder(recipe: Recipe, labels: str | None = None, walk: str | None = None) -> Path | None:
    """Where the training masks come from (None = the dataset's ground truth): the pseudo
    masks of AffinityNet's walk or IRN's (`walk`), CRF-refined or not."""
    labels = labels or recipe.seg.labels
    if labels == "gt":
        return None
    return RunLayout.of(recipe).pseudo_masks(crf=labels == "pseudo_crf", walk=walk or recipe.seg.walk)


def walk_scores_folder(recipe: Recipe, walk: str) -> Path:
    """Where the walk (`walk`: affinity or irn) that wrote the pseudo masks keeps its scores."""
    layout = RunLayout.of(recipe)
    return layout.irn_scores if walk == "irn" else layout.walk_scores


def confidence_of(scores_path: Path, shape) -> np.ndarray:
    """The walk's own probability of its top class per pixel, (H, W), from its scores file."""
    scores, _, stride = load_walk_scores(scores_path)
    return to_probabilities(upsample_scores(scores, *shape, stride=stride)).max(0)


def augment(image: np.ndarray, mask: np.ndarray, cfg: SegConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale, flip, colour jitter and crop of an image and its mask (padding: mask 255)."""
    image, mask = T.random_scale(image, mask, *cfg.resize_range)
    image, mask = T.random_hflip(image, mask)
    image = T.color_jitter(image, cfg.color_jitter)
    return T.random_crop(T.normalize(image), torch.from_numpy(np.ascontiguousarray(mask)), cfg.crop_size, fill=0.0)


class SegTrainDataset(Dataset):
    def __init__(self, source, recipe: Recipe, section: str = "seg"):
        """`section`: the recipe section of the training task (seg, or cps for its labelled images)."""
        self.source = source
        self.cfg = getattr(recipe, section)
        self.folder = mask_folder(recipe, self.cfg.labels, self.cfg.walk)
        if self.folder is None and not source.has_masks:
            raise PsaError(f"{section}.labels=gt needs a dataset with ground-truth masks")
        if self.folder is not None:
            require_pngs(self.folder, source.ids, "pseudo mask", "run the walk that writes them first "
                         "(tools/random_walk.py, or the irn_walk step with seg.walk=irn)")
        self.scores = None
        if self.folder is not None and self.cfg.min_confidence > 0:
            self.scores = walk_scores_folder(recipe, self.cfg.walk)
            missing = [i for i in source.ids if not (self.scores / f"{i}.npz").is_file()]
            if missing:
                raise PsaError(f"{section}.min_confidence needs the walk's scores: {len(missing)} of "
                               f"{len(source.ids)} missing in {self.scores} (first: {missing[0]}.npz)")

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
        if self.scores is not None:
            confidence = confidence_of(self.scores / f"{self.source.ids[index]}.npz", shape)
            mask = np.where(confidence < self.cfg.min_confidence, IGNORE_INDEX, mask).astype(mask.dtype)
        return mask

    def __getitem__(self, index: int) -> dict:
        image = self.source.load_image(index)
        tensor, mask = augment(image, self._mask(index, image.shape[:2]), self.cfg)
        return {"image": tensor, "mask": mask.long()}


def masked_cross_entropy(logits: torch.Tensor, mask: torch.Tensor, reduce_count=None) -> torch.Tensor:
    """Cross-entropy summed over the pixels whose mask is not IGNORE_INDEX, divided by their
    number (at least 1, so an all-ignored batch gives 0, not NaN). `reduce_count` maps this
    batch's count to that of the whole batch it is part of (e.g. a sum over processes)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 under AMP
    total = F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (mask != IGNORE_INDEX).sum().to(total.dtype)
    if reduce_count is not None:
        count = reduce_count(count)
    return total / count.clamp_min(1)


def seg_loss(model, batch: dict) -> tuple[torch.Tensor, dict]:
    logits = model(batch["image"])
    # mean over the non-ignored pixels of the global batch, not of this process's share
    # (their number differs between processes); ×N against DDP's gradient mean
    loss = masked_cross_entropy(logits, batch["mask"], reduce_count=global_sum)
    return loss * world_size(), {}


def seg_preview(model: SegNet, batch: dict) -> dict:
    images = batch["image"][:4]
    pred = model(images).argmax(1).cpu().numpy().astype(np.uint8)
    masks = batch["mask"][:4].cpu().numpy().astype(np.uint8)
    return {f"seg_{i}": side_by_side([denormalize(images[i]), colorize_label(masks[i]), colorize_label(pred[i])])
            for i in range(images.shape[0])}


def build_seg_model(recipe: Recipe, num_classes: int, load_weights: bool = True, head: str | None = None) -> SegNet:
    return SegNet(build_backbone(recipe.model, load_weights=load_weights), num_classes, head or recipe.seg.head)


def build_seg_task(recipe: Recipe) -> TaskSpec:
    source = build_source(recipe.data, recipe.data.train_split)
    check_files(source, masks=recipe.seg.labels == "gt")
    return TaskSpec(
        name="seg",
        model=apply_freeze_backbone(build_seg_model(recipe, len(source.classes)), recipe.seg.train.freeze_backbone),
        dataset=SegTrainDataset(source, recipe), loss_fn=seg_loss,
        meta={"classes": list(source.classes), "head": recipe.seg.head}, preview_fn=seg_preview,
    )
