"""The `irn` section: relation labels, IRNet's training, the boundary walk, the instances.
What each key means: docs/recipes.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config import CrfConfig, Pairs, TrainConfig
from ...config.checks import check_crop, check_interval, check_walk
from ...config.loader import require


@dataclass
class LabelCrfConfig(CrfConfig):
    """IRN's CRF over hard labels (`misc/imutils.crf_inference_label`), unlike PSA's over
    scores: the unary says each pixel's label with probability gt_prob; bilateral 50 / 5."""

    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 5.0
    gt_prob: float = 0.7

    def check(self, key: str) -> None:
        super().check(key)
        require(0 < self.gt_prob < 1, f"{key}.gt_prob", f"must be in (0, 1), got {self.gt_prob}")


@dataclass
class IrnConfig:
    """IRN (Ahn, Cho & Kwak, CVPR 2019; shared/reference/irn.md): relation labels from the
    CAMs, IRNet's class boundaries learned from them on a frozen backbone, and the CAMs
    walked over the boundary's path-max affinities → semantic pseudo masks."""

    # IRN: batch 32, 3 epochs, boundary lr 0.1 (displacement 10×), weight decay 1e-4
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3, batch_size=32, lr=0.1,
                                                                   weight_decay=1e-4))
    init: Literal["imagenet", "cam"] = "imagenet"  # cam: the frozen backbone is the CAM classifier's
    output_stride: int = 16  # IRN's ResNet-50: layer4 at stride 16, no dilation
    crop_size: int = 512
    resize_range: list[float] = field(default_factory=lambda: [0.5, 1.5])
    # relation labels (step/cam_to_ir_label.py): confident fg / bg background planes
    fg_threshold: float = 0.30
    bg_threshold: float = 0.05
    crf: LabelCrfConfig = field(default_factory=LabelCrfConfig)
    train_radius: int = 10  # pairs on the stride-4 grid while training
    pairs: Pairs = "all"  # reference: IRN's PathIndex pairs only (none anchored in the border bands)
    displacement: bool = True  # also learn the displacement field (IRN's instance branch)
    # the semantic walk (step/make_sem_seg_labels.py)
    radius: int = 5
    beta: float = 10.0
    logt: int = 8  # exp_times: t = 2 ** logt steps
    sem_bg_threshold: float = 0.25  # background plane of the walked, max-normalised scores
    split: str = ""  # "" = data.train_split and data.eval_split
    dense_crf: bool = False  # also write masks refined by the dense CRF (mask_crf, else crf)
    # instance masks (step/make_ins_seg_labels.py)
    centroid_steps: int = 300  # steps along the displacement field to each pixel's centroid
    centroid_threshold: float = 2.5  # |displacement| below this: a candidate centroid region
    ins_bg_threshold: float = 0.25  # background plane of the walked instance scores
    min_instance_area: float = 0.01  # segments smaller than this share of the image score 0

    def check(self, key: str) -> None:
        check_crop(self.crop_size, f"{key}.crop_size")
        check_interval(self.resize_range, f"{key}.resize_range")
        require(self.output_stride in (8, 16, 32), f"{key}.output_stride", f"must be 8, 16 or 32, got {self.output_stride}")
        require(0 < self.bg_threshold <= self.fg_threshold < 1, f"{key}.fg_threshold",
                f"and bg_threshold must satisfy 0 < bg <= fg < 1, got {self.fg_threshold}, {self.bg_threshold}")
        require(self.train_radius >= 2, f"{key}.train_radius", f"must be >= 2, got {self.train_radius}")
        check_walk(self, key)
        require(0 < self.sem_bg_threshold < 1, f"{key}.sem_bg_threshold", "must be in (0, 1)")
        require(0 < self.ins_bg_threshold < 1, f"{key}.ins_bg_threshold", "must be in (0, 1)")
        require(self.centroid_steps >= 1, f"{key}.centroid_steps", "must be >= 1")
        require(self.centroid_threshold > 0, f"{key}.centroid_threshold", "must be > 0")
        require(0 <= self.min_instance_area < 1, f"{key}.min_instance_area", "must be in [0, 1)")
