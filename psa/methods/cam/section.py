"""The `cam` section: the classifier's training, the export's scales and confident labels.
What each key means: docs/recipes.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import LabeledConfig, TrainConfig
from ...config.checks import check_crop, check_interval, check_jitter, check_scales
from ...config.loader import require

SUPERVISED = "supervised"  # cam.method of the plain classifier; the others are registered CamVariants


@dataclass
class CamConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    method: str = SUPERVISED
    labeled: LabeledConfig = field(default_factory=LabeledConfig)
    crop_size: int = 448
    resize_long: list[int] = field(default_factory=lambda: [256, 512])
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 1.5, 2.0])
    flip: bool = True
    low_alpha: float = 4.0
    high_alpha: float = 32.0
    bg_threshold: float = 0.2
    export_split: str = ""

    def check(self, key: str) -> None:
        check_crop(self.crop_size, f"{key}.crop_size")
        check_interval(self.resize_long, f"{key}.resize_long")
        check_jitter(self.color_jitter, f"{key}.color_jitter")
        check_scales(self.scales, f"{key}.scales")
        require(self.low_alpha > 0 and self.high_alpha > 0, f"{key}.low_alpha", f"and {key}.high_alpha must be > 0")
        require(0 <= self.bg_threshold <= 1, f"{key}.bg_threshold", "must be in [0, 1]")
