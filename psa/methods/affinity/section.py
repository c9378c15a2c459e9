"""The `affinity` section (AffinityNet's training) and the `random_walk` section.
What each key means: docs/recipes.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config import Pairs, TrainConfig
from ...config.checks import check_crop, check_jitter, check_walk
from ...config.loader import require


@dataclass
class AffinityConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8, batch_size=8))
    crop_size: int = 448
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    radius: int = 5
    init: Literal["imagenet", "cam"] = "imagenet"  # cam: start the backbone from the CAM checkpoint
    pairs: Pairs = "all"  # all | reference: the reference's pairs (docs/differences.md)

    def check(self, key: str) -> None:
        check_crop(self.crop_size, f"{key}.crop_size")
        check_jitter(self.color_jitter, f"{key}.color_jitter")
        require(self.radius >= 2, f"{key}.radius", f"must be >= 2, got {self.radius}")


@dataclass
class RandomWalkConfig:
    alpha: float = 16.0  # background score (1 - max CAM) ** alpha before the walk
    beta: float = 8.0
    logt: int = 8  # t = 2 ** logt steps
    radius: int = 5
    split: str = ""  # "" = data.train_split and data.eval_split
    crf: bool = False  # also write CRF-refined pseudo masks (pseudo_crf/), e.g. for seg.labels
    pairs: Pairs = "all"  # reference: the reference's transition matrix lacks the border-band pairs

    def check(self, key: str) -> None:
        check_walk(self, key)
        require(self.alpha > 0, f"{key}.alpha", "must be > 0")
