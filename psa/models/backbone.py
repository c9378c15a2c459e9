"""A timm feature extractor: by default PSA's, at output stride 8 (the last three stages,
all at stride 8); any stages and output stride on request (IRN: all five, stride 16).

Weights come from (in this order) a local file or a package's file (`model.weights`), the timm
hub (`model.pretrained: true`; `model.backbone: resnet50.tv_in1k` names which weights), or
nowhere (random init). Nothing is downloaded unless the
recipe asks for pretrained weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig
from ..constants import FEATURE_STRIDE, IMAGENET_MEAN, IMAGENET_STD
from ..errors import PsaError
from .weights import resolve_weights

OUT_INDICES = (2, 3, 4)  # the stages at strides 8, 8 (dilated), 8 (dilated)


class Backbone(nn.Module):
    """Returns the list of the chosen stages' feature maps (PSA's: three, all at stride 8)."""

    def __init__(self, body: nn.Module, name: str):
        super().__init__()
        self.body = body
        self.name = name
        self.channels: list[int] = list(body.feature_info.channels())
        # Inputs arrive normalised with the ImageNet mean/std (psa.data.transforms.normalize);
        # models trained with other statistics (tf_efficientnet_*: 0.5/0.5) get them re-mapped
        # here, so one normalisation serves every stage. Not saved: it follows from the name.
        cfg = getattr(body, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
        self.remap = tuple(mean) != IMAGENET_MEAN or tuple(std) != IMAGENET_STD
        scale = torch.tensor(IMAGENET_STD) / torch.tensor(std)
        shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(mean)) / torch.tensor(std)
        self.register_buffer("input_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", shift.view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.remap:
            x = x * self.input_scale.to(x.dtype) + self.input_shift.to(x.dtype)
        return self.body(x)


def build_backbone(cfg: ModelConfig, load_weights: bool = True, output_stride: int = FEATURE_STRIDE,
                   out_indices: tuple[int, ...] = OUT_INDICES) -> Backbone:
    """`load_weights=False` skips ImageNet weights (a checkpoint will overwrite them anyway)."""
    import timm

    check_backbone_name(cfg.backbone)
    kwargs = dict(features_only=True, output_stride=output_stride, out_indices=out_indices)
    try:
        body = timm.create_model(cfg.backbone, pretrained=False, **kwargs)
    except (TypeError, AssertionError, ValueError, RuntimeError) as err:
        raise PsaError(f"recipe key 'model.backbone': {cfg.backbone} cannot run at output stride {output_stride} "
                       f"with features_only ({err})") from None
    if load_weights and cfg.weights:
        _load_local_weights(body, cfg.backbone, resolve_weights(cfg.weights))
    elif load_weights and cfg.pretrained:
        _load_hub_weights(body, cfg.backbone, kwargs)
    if cfg.freeze_bn:
        # BN becomes a fixed affine layer (running stats, no gradient), as in the reference;
        # this also makes results independent of the per-GPU batch size.
        body = timm.layers.freeze_batch_norm_2d(body)
    if cfg.freeze_stem:
        freeze_before_first_output(body, out_indices[0])
    return Backbone(body, cfg.backbone)


def check_backbone_name(name: str) -> None:
    """A timm architecture ("resnet50"), optionally with a pretrained tag ("resnet50.tv_in1k")
    that says which ImageNet weights `model.pretrained` fetches; without a tag timm picks its
    default (for resnet50: a1_in1k, not the classic torchvision weights). Checked offline."""
    import timm

    arch, _, tag = name.partition(".")
    if arch not in timm.list_models():
        raise PsaError(f"recipe key 'model.backbone': unknown timm model {arch!r}")
    if tag and name not in timm.list_models(pretrained=True):
        tags = [m.partition(".")[2] for m in timm.list_models(pretrained=True) if m.partition(".")[0] == arch]
        raise PsaError(f"recipe key 'model.backbone': timm has no weights {tag!r} for {arch} "
                       f"(known: {', '.join(tags) or 'none'})")


def freeze_before_first_output(body: nn.Module, first: int = OUT_INDICES[0]) -> None:
    """Stop gradients for the stem and first stage (the reference freezes conv1a and b2)."""
    first_output = body.feature_info.info[first]["module"]
    # FeatureListNet may flatten "blocks.2" to "blocks_2"
    prefixes = (first_output + ".", first_output.replace(".", "_") + ".")
    for name, param in body.named_parameters():
        if name.startswith(prefixes):
            break
        param.requires_grad_(False)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise PsaError(f"weights file not found: {path} (recipe key model.weights)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise PsaError(f"cannot read weights file {path}: {str(err).splitlines()[0]}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PsaError(f"weights file {path} does not hold a state dict of tensors")
    return state


def _load_local_weights(body: nn.Module, name: str, path: Path) -> None:
    import timm

    state = read_state_dict(path)
    full = timm.create_model(name, pretrained=False)
    target = full.state_dict()
    if not set(target) & set(state):
        state = _match_by_position(state, target, path)
    missing = [k for k in body.state_dict() if k not in state and _flat_key(k, state) is None]
    if missing:
        raise PsaError(f"weights file {path} does not fit {name}: {len(missing)} backbone tensors "
                       f"missing (first: {missing[0]})")
    mapped = {k: state[_flat_key(k, state) or k] for k in body.state_dict()}
    for key, tensor in mapped.items():
        if tensor.shape != body.state_dict()[key].shape:
            raise PsaError(f"weights file {path} does not fit {name}: {key} has shape "
                           f"{tuple(tensor.shape)}, expected {tuple(body.state_dict()[key].shape)}")
    body.load_state_dict(mapped, strict=True)


def _flat_key(key: str, state: dict) -> str | None:
    """FeatureListNet renames "blocks.2.x" to "blocks_2.x"; find the original key."""
    if key in state:
        return key
    head, _, rest = key.partition(".")
    dotted = head.replace("_", ".") + ("." + rest if rest else "")
    return dotted if dotted in state else None


def _match_by_position(state: dict, target: dict, path: Path) -> dict:
    """Files from other code bases (e.g. efficientnet_pytorch) name tensors differently but
    store them in the same order; accept them only if every shape lines up."""
    src, dst = list(state.items()), list(target.items())
    if len(src) != len(dst) or any(a.shape != b.shape for (_, a), (_, b) in zip(src, dst)):
        raise PsaError(f"weights file {path}: tensor names do not match the model and the "
                       f"tensors do not line up by position either")
    return {dst_key: tensor for (dst_key, _), (_, tensor) in zip(dst, src)}


def _load_hub_weights(body: nn.Module, name: str, kwargs: dict) -> None:
    import timm

    try:
        pretrained = timm.create_model(name, pretrained=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - offline hub errors come in many types
        raise PsaError(
            f"could not fetch pretrained weights for {name} ({type(err).__name__}); without network, "
            f"download them elsewhere and set model.weights=/path/to/{name}.pth (or .safetensors)"
        ) from None
    body.load_state_dict(pretrained.state_dict())


def freeze_backbone(model: torch.nn.Module, freeze: bool) -> torch.nn.Module:
    """`<section>.train.freeze_backbone`: only the network's new layers learn (few images)."""
    if freeze:
        for param in model.backbone.parameters():
            param.requires_grad_(False)
    return model
