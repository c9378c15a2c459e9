"""Batch norm folded into the convolution before it, for inference.

In eval mode (and always, when `model.freeze_bn`) a BN layer is a fixed per-channel affine map,
so `bn(conv(x))` is one convolution with scaled weights and a bias. On a CPU the separate
multiply and add passes over every feature map cost about a sixth of a frozen backbone's
forward (bench/cam_export.py); folded, they are gone. Each per-image stage folds its network
(psa/framework/per_image.py); training never does.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

# A folded network may differ from the original by float rounding only; a larger difference
# means a conv output was also used elsewhere (not a conv → BN chain) and the fold is undone.
TOLERANCE = 1e-4


def is_batch_norm(module: nn.Module) -> bool:
    """nn.BatchNorm2d and timm's (Frozen)BatchNorm(Act)2d: a running mean and variance."""
    return (isinstance(getattr(module, "running_mean", None), torch.Tensor)
            and isinstance(getattr(module, "running_var", None), torch.Tensor)
            and "BatchNorm" in type(module).__name__)


def conv_bn_pairs(model: nn.Module, example: torch.Tensor, forward) -> list[tuple[str, str]]:
    """(conv name, BN name) where the BN's input is the output of the conv called just before
    it, found by running `forward(model, example)` once with hooks."""
    names = {module: name for name, module in model.named_modules()}
    last: dict = {}
    pairs: list[tuple[str, str]] = []

    def after_conv(module, _inputs, output):
        last.update(conv=module, output=output)

    def before_bn(module, inputs):
        if last.get("output") is inputs[0] and module.training is False:
            pairs.append((names[last["conv"]], names[module]))
        last.clear()

    hooks = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(after_conv))
        elif is_batch_norm(module):
            hooks.append(module.register_forward_pre_hook(before_bn))
    try:
        with torch.no_grad():
            forward(model, example)
    finally:
        for hook in hooks:
            hook.remove()
    return sorted(set(pairs))


def _bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    weight = bn.weight.double() if getattr(bn, "weight", None) is not None else torch.ones_like(inv_std)
    bias = bn.bias.double() if getattr(bn, "bias", None) is not None else torch.zeros_like(inv_std)
    scale = weight * inv_std
    return scale, bias - bn.running_mean.double() * scale


def _after_norm(bn: nn.Module) -> nn.Module:
    """What the BN layer still does once its affine map is in the conv: timm's BatchNormAct2d
    applies its dropout and activation after the normalisation."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if isinstance(m, nn.Module)]
    return nn.Sequential(*rest) if len(rest) > 1 else (rest[0] if rest else nn.Identity())


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def fold_batch_norm(model: nn.Module, example: torch.Tensor, forward=lambda m, x: m(x)) -> tuple[nn.Module, int]:
    """→ (a copy of the eval-mode `model` with every conv → BN pair folded, how many were).

    `forward(model, example)` is the call the network will serve (e.g. `m.forward_cam(x)`);
    the folded copy must give the same output on `example` to `TOLERANCE` (relative to the
    output's largest value), or the original is returned with 0."""
    pairs = conv_bn_pairs(model, example, forward)
    if not pairs:
        return model, 0
    folded = copy.deepcopy(model)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        scale, shift = _bn_affine(bn)
        weight = conv.weight.detach().double() * scale.view(-1, 1, 1, 1)
        bias = shift + (conv.bias.detach().double() * scale if conv.bias is not None else 0)
        conv.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
        _set(folded, bn_name, _after_norm(bn))
    with torch.no_grad():
        want, got = _flat(forward(model, example)), _flat(forward(folded, example))
    if want.shape != got.shape or (want - got).abs().max() > TOLERANCE * max(float(want.abs().max()), 1.0):
        return model, 0
    return folded, len(pairs)


def _flat(output) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output.float().flatten()
    if isinstance(output, dict):
        output = list(output.values())
    return torch.cat([_flat(part) for part in output])
