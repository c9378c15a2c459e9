"""An exponential moving average of a model's weights (`train.ema_decay`).

FixMatch and MixMatch both report the EMA of their weights (decay 0.999), not the last
weights: the average over the last ~1/(1 - decay) steps smooths the noise that pseudo-labels
put into each step. Here the average is the stage's final model when it is on, and a
semi-supervised task may take it as its teacher. Buffers (batch-norm statistics) are copied,
not averaged, as timm's ModelEmaV2 does.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay of the `updates`-th update (1-based): min(decay, 1 - 1/n). Until
    1/(1 - decay) updates the average is the plain mean of the weights after each step so far
    (the first update copies them), so the random initial weights never count."""
    return min(decay, 1.0 - 1.0 / updates)


class WeightAverage:
    """The averaged copy of `model` (in eval mode, no gradients), updated after each optimizer
    step. Saved and restored with the training checkpoints (accelerate's
    `register_for_checkpointing`), so resume stays exact."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = ema_decay_at(self.decay, self.updates)
        for averaged, current in zip(self.model.parameters(), model.parameters()):
            averaged.lerp_(current.detach(), 1.0 - decay)
        for averaged, current in zip(self.model.buffers(), model.buffers()):
            averaged.copy_(current)

    def state_dict(self) -> dict:
        return {"updates": torch.tensor(self.updates), "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["model"])
