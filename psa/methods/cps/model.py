"""Two segmentation networks as one module, for Cross Pseudo Supervision.

One module, one forward that returns both outputs: DDP then wraps (and keeps in sync) both
networks, and the optimizer sees both heads as new modules.
"""

from __future__ import annotations

import torch
from torch import nn

from ...models.seg import SegNet

PREDICT_MODES = ("mean", "first")


class CpsPair(nn.Module):
    def __init__(self, first: SegNet, second: SegNet):
        super().__init__()
        self.nets = nn.ModuleList([first, second])

    def new_modules(self) -> list[nn.Module]:
        return [module for net in self.nets for module in net.new_modules()]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both networks' class scores (B, num_classes, H, W) at the input resolution."""
        return self.nets[0](x), self.nets[1](x)


class CpsPredictor(nn.Module):
    """Inference with a trained pair: `mean` returns the log of the mean of both softmaxes (so a
    softmax of its output is exactly that mean), `first` the first network's scores."""

    def __init__(self, pair: CpsPair, mode: str = "mean"):
        super().__init__()
        if mode not in PREDICT_MODES:
            raise ValueError(f"mode must be one of {PREDICT_MODES}, got {mode!r}")
        self.pair, self.mode = pair, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "first":
            return self.pair.nets[0](x)
        first, second = self.pair(x)
        mean = (first.float().softmax(1) + second.float().softmax(1)) / 2
        return mean.clamp_min(torch.finfo(mean.dtype).tiny).log()  # no -inf to interpolate
