"""The `cam.fixmatch` and `cam.mixmatch` sections, and the check that an EMA teacher has a
weight average to be."""

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
    """FixMatch for multi-label image labels (psa/tasks/cam_semi.py, psa/ops/semi_supervised.py):
    per class, the weak view's sigmoid above tau_pos is a confident positive, below tau_neg a
    confident negative, ignored in between; the strong view learns those entries."""

    mu: int = 7  # unlabelled batch = mu × cam.train.batch_size (the paper's ratio)
    tau_pos: float = 0.95  # the paper's single-label threshold, applied to each class's sigmoid
    tau_neg: float = 0.05  # its mirror image for absent classes
    # target of each confident entry: 0 = hard 0/1 pseudo-labels (the paper); T > 0 = the
    # weak view's probability sharpened per class, p^(1/T) / (p^(1/T) + (1-p)^(1/T)) (UDA's
    # soft targets; T = 1 is the probability itself: consistency without pushing a confident
    # mistake all the way to 0 or 1)
    temperature: float = 0.0
    lambda_u: float = 1.0
    # λ_u grows linearly from 0 over this many steps (the paper: 0, full weight at once; a
    # classifier trained from scratch gives mostly wrong confident labels in its first steps)
    warmup_steps: int = 0
    # cap each class's confident positives (negatives) in an unlabelled batch at its share
    # (1 - share) of the labelled images: against a class the model over-predicts taking ever
    # more pseudo-labels (psa/ops/semi_supervised.py); false = the paper's fixed thresholds
    prior_cap: bool = False
    # shift each class's weak-view logit by logit(share in the labelled images) - logit(mean
    # sigmoid over the global unlabelled batch) before thresholding: ReMixMatch's distribution
    # alignment for a per-class Bernoulli (psa/ops/semi_supervised.py); false = the paper
    distribution_alignment: bool = False
    # which network labels the weak views: "model" (the paper: the model being trained) or
    # "ema", the weight average of cam.train.ema_decay (a mean teacher: its mistakes lag the
    # student's instead of repeating them at once)
    teacher: Literal["model", "ema"] = "model"
    # strong view: RandAugment restricted to photometric ops (no shear/translate/rotate, so
    # the CAM geometry of both views is the same), then random erasing (Cutout)
    randaugment_ops: int = 2
    randaugment_magnitude: int = 10  # of torchvision's 31 bins
    # the ops RandAugment draws from (names from PHOTOMETRIC_OPS); narrow it to
    # the ops that keep what tells the classes apart, e.g. drop Solarize, Equalize, AutoContrast
    # and Color where classes differ by hue
    randaugment_space: list[str] = field(default_factory=lambda: list(PHOTOMETRIC_OPS))
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
    """MixMatch for multi-label image labels (psa/tasks/cam_semi.py, psa/ops/semi_supervised.py):
    each class's averaged probability is sharpened as a Bernoulli,
    p^(1/T) / (p^(1/T) + (1-p)^(1/T))."""

    mu: int = 1  # unlabelled batch = mu × cam.train.batch_size (the paper: equal batches)
    k: int = 2  # weak augmentations per unlabelled image
    temperature: float = 0.5
    alpha: float = 0.75  # MixUp Beta(alpha, alpha)
    lambda_u: float = 75.0  # weight of the squared-error loss once ramped up
    rampup_steps: int = 16000  # lambda_u grows linearly from 0 over these steps
    # align the averaged guesses to the labelled class shares before sharpening (ReMixMatch),
    # as cam.fixmatch.distribution_alignment; false = the paper
    distribution_alignment: bool = False
    # which network guesses the labels: "model" (the paper) or "ema", as cam.fixmatch.teacher
    teacher: Literal["model", "ema"] = "model"

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
