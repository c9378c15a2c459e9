"""SGD with the reference's four parameter groups and a poly learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

# (group name, learning-rate multiplier, uses weight decay) — the reference's PolyOptimizer groups
GROUPS = (
    ("backbone_weight", 1.0, True),
    ("backbone_bias", 2.0, False),
    ("new_weight", 10.0, True),
    ("new_bias", 20.0, False),
)


def parameter_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Split trainable parameters into the four groups. "new" = `model.new_modules()`;
    "bias" = every 1-d tensor (biases, and norm affines when BN is trainable), no decay."""
    if hasattr(model, "lr_groups"):  # a model with its own groups (IRNet: boundary 1×, displacement 10×)
        return [{"params": [p for m in modules for p in m.parameters() if p.requires_grad], "name": name,
                 "lr_scale": scale, "lr": lr * scale, "weight_decay": weight_decay}
                for name, modules, scale in model.lr_groups()
                if any(p.requires_grad for m in modules for p in m.parameters())]
    new_ids = {id(p) for module in model.new_modules() for p in module.parameters()}
    buckets: dict[str, list] = {name: [] for name, _, _ in GROUPS}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        part = "new" if id(param) in new_ids else "backbone"
        kind = "bias" if param.ndim <= 1 else "weight"
        buckets[f"{part}_{kind}"].append(param)
    groups = []
    for name, scale, decays in GROUPS:
        if buckets[name]:
            groups.append({
                "params": buckets[name], "name": name, "lr_scale": scale,
                "lr": lr * scale, "weight_decay": weight_decay if decays else 0.0,
            })
    return groups


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float,
                    kind: str = "sgd") -> torch.optim.Optimizer:
    """SGD as the reference; AdamW for networks trained from scratch (the demo), where SGD
    needs far more steps. Both use the same groups and poly schedule."""
    groups = parameter_groups(model, lr, weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def poly_factor(step: int, max_step: int, power: float) -> float:
    return max(0.0, 1.0 - step / max_step) ** power


def set_poly_lr(optimizer: torch.optim.Optimizer, base_lr: float, step: int, max_step: int, power: float) -> None:
    """lr_group = base_lr · multiplier · (1 − step/max_step)^power, set before each step."""
    factor = poly_factor(step, max_step, power)
    for group in optimizer.param_groups:
        group["lr"] = base_lr * group["lr_scale"] * factor


def linear_rampup(step: int, steps: int) -> float:
    """0 → 1 linearly over `steps` optimizer steps (1 at once for steps = 0): a loss weight's
    warm-up (FixMatch's λ_u, CPS's λ)."""
    return 1.0 if steps <= 0 else min(1.0, max(0.0, step / steps))
