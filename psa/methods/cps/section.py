"""The `cps` section: a segmentation network's keys (psa/config/schema.py SegNetworkConfig),
the paper's schedule, and the pair's own. What each key means: docs/recipes.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config import LabeledConfig, SegLabels, SegNetworkConfig, TrainConfig
from ...config.loader import require


@dataclass
class CpsConfig(SegNetworkConfig):
    """Cross Pseudo Supervision (Chen et al., CVPR 2021): two segmentation networks, each
    learning from the labelled images and from the other's one-hot prediction on the
    unlabelled ones. Head, crop, augmentation and inference keys as in `seg`; one epoch is
    one pass over the unlabelled images, each batch of them drawn with a labelled batch."""

    # the paper's VOC code (TorchSemiSeg)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=34, batch_size=16, lr=0.005,
                                                                   weight_decay=1e-4))
    labeled_batch_size: int = 16  # global, drawn with each unlabelled batch (train.batch_size)
    labeled: LabeledConfig = field(default_factory=lambda: LabeledConfig(fraction=0.125))
    labels: SegLabels = "gt"  # of the labelled images, as seg.labels
    masks: str = "rw"  # with pseudo labels: the labelled images' mask source
    weight: float = 1.5  # λ (paper: 1.5 on VOC); 0 = supervised only
    warmup_steps: int = 0  # λ's linear warm-up, steps (paper: 0)
    cutmix: bool = False  # one box per unlabelled pair (the paper's BoxMaskGenerator)
    cutmix_area: float = 0.25  # the box's share of the crop
    predict_with: Literal["mean", "first"] = "mean"  # mean (of both networks' softmax) | first (network)

    def check(self, key: str) -> None:
        super().check(key)
        require(self.labeled_batch_size >= 1, f"{key}.labeled_batch_size", "must be >= 1")
        require(self.weight >= 0, f"{key}.weight", f"must be >= 0, got {self.weight}")
        require(self.warmup_steps >= 0, f"{key}.warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        require(0 < self.cutmix_area < 1, f"{key}.cutmix_area", f"must be in (0, 1), got {self.cutmix_area}")
