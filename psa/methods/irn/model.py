"""IRNet (IRN's `net/resnet50_irn.py`): a frozen backbone and two branches at stride 4 — the
class-boundary map and the displacement field towards instance centroids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...models.backbone import Backbone

EDGE_CHANNELS = 32  # each stage's width in the boundary branch
DISPLACEMENT_CHANNELS = (64, 128, 256, 256, 256)  # each stage's width in the displacement branch


def _reduce(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.GroupNorm(groups, c_out))


class MeanShift(nn.BatchNorm2d):
    """Learns the mean displacement while training (returning its input) and subtracts it at
    inference, as IRN's `Net.MeanShift`."""

    def __init__(self, channels: int):
        super().__init__(channels, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            super().forward(x)
            return x
        return x - self.running_mean.view(1, -1, 1, 1).to(x.dtype)


class IRNet(nn.Module):
    """`backbone` yields five stages (strides 2 or 4, 4, 8, 16, 16 for IRN's ResNet-50); only
    the two branches learn. forward(x) → (boundary logits (B, 1, h, w), displacement
    (B, 2, h, w)) at stride 4 (h = ⌈H/4⌉ for an input padded to a multiple of the output stride)."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        for param in backbone.parameters():
            param.requires_grad_(False)
        channels = backbone.channels
        self.reductions = list(backbone.body.feature_info.reduction())
        self.edge = nn.ModuleList(_reduce(c, EDGE_CHANNELS, 4) for c in channels)
        self.edge_out = nn.Conv2d(EDGE_CHANNELS * len(channels), 1, 1, bias=True)
        self.disp = nn.ModuleList(_reduce(c, d, 8 if d == 64 else 16) for c, d in zip(channels, DISPLACEMENT_CHANNELS))
        deep = sum(DISPLACEMENT_CHANNELS[2:])
        self.disp_merge = _reduce(deep, 256, 16)
        self.disp_out = nn.Sequential(_reduce(256 + sum(DISPLACEMENT_CHANNELS[:2]), 256, 16), nn.ReLU(inplace=True),
                                      nn.Conv2d(256, 2, 1, bias=False), MeanShift(2))

    def lr_groups(self) -> list[tuple[str, list[nn.Module], float]]:
        """IRN's two optimizer groups: the boundary branch at the base lr, displacement at 10×."""
        return [("boundary", [*self.edge, self.edge_out], 1.0), ("displacement", [*self.disp, self.disp_merge,
                                                                                 self.disp_out], 10.0)]

    def new_modules(self) -> list[nn.Module]:
        return [*self.edge, self.edge_out, *self.disp, self.disp_merge, self.disp_out]

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen: its statistics never change
        return self

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            feats = self.backbone(x)
        if self.reductions[0] == 2:  # the stem before its max pool (timm's act1): pool it to stride 4
            feats = [F.max_pool2d(feats[0], 3, 2, 1), *feats[1:]]
        return [f.detach() for f in feats]

    @staticmethod
    def _up(x: torch.Tensor, factor: int, size: tuple[int, int]) -> torch.Tensor:
        if factor > 1:
            x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        return x[..., :size[0], :size[1]]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.stages(x)
        size = feats[1].shape[-2:]
        strides = [max(1, r // 4) for r in self.reductions]
        edges = [F.relu(self._up(layer(f), s, size)) for layer, f, s in zip(self.edge, feats, strides)]
        boundary = self.edge_out(torch.cat(edges, dim=1))
        dp = [layer(f) for layer, f in zip(self.disp, feats)]
        mid = dp[2].shape[-2:]  # stride 8
        deep = [F.relu(dp[2])] + [F.relu(self._up(d, max(1, r // self.reductions[2]), mid))
                                  for d, r in zip(dp[3:], self.reductions[3:])]
        merged = F.relu(self._up(self.disp_merge(torch.cat(deep, dim=1)), 2, size))
        displacement = self.disp_out(torch.cat([F.relu(dp[0]), F.relu(dp[1]), merged], dim=1))
        return boundary, displacement
