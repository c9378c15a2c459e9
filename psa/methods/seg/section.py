"""The `seg` section: a segmentation network's keys (psa/config/schema.py SegNetworkConfig)
with the reference's schedule. What each key means: docs/recipes.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import SegNetworkConfig, TrainConfig


@dataclass
class SegConfig(SegNetworkConfig):
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=16, lr=0.001))
