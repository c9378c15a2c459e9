"""The `cam.fixmatch` and `cam.mixmatch` sections, and the check that an EMA teacher has a
weight average to be. What each key means: docs/recipes.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ...config.loader import require

VARIANTS = ("fixmatch", "mixmatch")  # each with its settings section cam.<name>
# torchvision RandAugment's ops that leave the geometry alone: the FixMatch strong views' space
PHOTOMETRIC_OPS = ("Identity", "Brightness", "Color", "Contrast", "Sharpness", "Posterize", "Solarize",
                   "AutoContrast", "Equalize")


@dataclass
class FixMatchConfig:
    """FixMatch for multi-label image labels (this package's variants.py, ops.py):
    per class, the weak view's sigmoid above tau_pos is a confident positive, below tau_neg a
    confident negative, ignored in between; the strong view learns those entries."""

    mu: int = 7  # unlabelled batch = mu × cam.train.batch_size (the paper's ratio)
    tau_pos: float = 0.95  # the paper's single-label threshold, applied to each class's sigmoid
    tau_neg: float = 0.05  # its mirror image for absent classes
    temperature: float = 0.0  # 0: hard 0/1 targets (the paper) | T > 0: sharpened soft targets
    lambda_u: float = 1.0
    warmup_steps: int = 0  # λ_u's linear warm-up, steps (the paper: 0)
    prior_cap: bool = False  # cap confident entries at the labelled class shares; false = the paper
    distribution_alignment: bool = False  # ReMixMatch's, per class; false = the paper
    teacher: Literal["model", "ema"] = "model"  # model (the paper) | ema (cam.train.ema_decay)
    randaugment_ops: int = 2  # strong view: photometric RandAugment ops, then random erasing
    randaugment_magnitude: int = 10  # of torchvision's 31 bins
    randaugment_space: list[str] = field(default_factory=lambda: list(PHOTOMETRIC_OPS))  # ops drawn from
    erasing_prob: float = 1.0
    erasing_scale: list[float] = field(default_factory=lambda: [0.02, 0.25])  # erased share of the crop

    def check(self, key: str) -> None:
        require(self.mu >= 1, f"{key}.mu", "must be >= 1")
        require(0 < self.tau_neg <= 0.5 <= self.tau_pos < 1, f"{key}.tau_pos",
                f"and tau_neg must satisfy 0 < tau_neg <= 0.5 <= tau_pos < 1, got {self.tau_neg}, {self.tau_pos}")
        require(self.temperature >= 0, f"{key}.temperature", "must be >= 0 (0: hard pseudo-labels)")
        require(self.lambda_u >= 0, f"{key}.lambda_u", "must be >= 0")
        require(self.warmup_steps >= 0, f"{key}.warmup_steps", "must be >= 0")
        require(self.randaugment_ops >= 0, f"{key}.randaugment_ops", "must be >= 0")
        require(0 <= self.randaugment_magnitude <= 30, f"{key}.randaugment_magnitude", "must be in 0..30")
        unknown = [op for op in self.randaugment_space if op not in PHOTOMETRIC_OPS]
        got = f", got unknown {unknown}" if unknown else ""
        require(bool(self.randaugment_space) and not unknown, f"{key}.randaugment_space",
                f"must be a non-empty list of {list(PHOTOMETRIC_OPS)}{got}")
        require(0 <= self.erasing_prob <= 1, f"{key}.erasing_prob", "must be in [0, 1]")
        require(len(self.erasing_scale) == 2 and 0 < self.erasing_scale[0] <= self.erasing_scale[1] < 1,
                f"{key}.erasing_scale", "must be [min, max] with 0 < min <= max < 1")


@dataclass
class MixMatchConfig:
    """MixMatch for multi-label image labels (this package's variants.py, ops.py):
    each class's averaged probability is sharpened as a Bernoulli,
    p^(1/T) / (p^(1/T) + (1-p)^(1/T))."""

    mu: int = 1  # unlabelled batch = mu × cam.train.batch_size (the paper: equal batches)
    k: int = 2  # weak augmentations per unlabelled image
    temperature: float = 0.5
    alpha: float = 0.75  # MixUp Beta(alpha, alpha)
    lambda_u: float = 75.0  # weight of the squared-error loss once ramped up
    rampup_steps: int = 16000  # lambda_u grows linearly from 0 over these steps
    distribution_alignment: bool = False  # as cam.fixmatch's; false = the paper
    teacher: Literal["model", "ema"] = "model"  # model (the paper) | ema, as cam.fixmatch.teacher

    def check(self, key: str) -> None:
        require(self.mu >= 1, f"{key}.mu", "must be >= 1")
        require(self.k >= 1, f"{key}.k", "must be >= 1")
        require(self.temperature > 0, f"{key}.temperature", "must be > 0")
        require(self.alpha > 0, f"{key}.alpha", "must be > 0")
        require(self.lambda_u >= 0, f"{key}.lambda_u", "must be >= 0")
        require(self.rampup_steps >= 0, f"{key}.rampup_steps", "must be >= 0")


def check_teacher(recipe) -> None:
    """An EMA teacher needs the classifier's weight average (`cam.train.ema_decay`)."""
    for name in VARIANTS:
        settings = getattr(recipe.cam, name)
        require(settings.teacher != "ema" or recipe.cam.method != name or recipe.cam.train.ema_decay > 0,
                f"cam.{name}.teacher", "ema needs a weight average: set cam.train.ema_decay (e.g. 0.99)")
