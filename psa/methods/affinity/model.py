"""AffinityNet: a feature map whose L1 distances predict semantic affinity between pixels."""

from __future__ import annotations

import torch
from torch import nn

from ...models.backbone import Backbone
from .ops import pair_affinity

LEVEL_CHANNELS = (64, 128, 256)  # the reference's f8_3 / f8_4 / f8_5 widths
FUSED_CHANNELS = sum(LEVEL_CHANNELS)  # 448


class AffinityNet(nn.Module):
    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone
        self.reduce = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 1, bias=False) for c_in, c_out in zip(backbone.channels, LEVEL_CHANNELS)
        )
        self.fuse = nn.Conv2d(FUSED_CHANNELS, FUSED_CHANNELS, 1, bias=False)
        self.act = nn.ELU()
        for conv in self.reduce:
            nn.init.kaiming_normal_(conv.weight)
        nn.init.xavier_uniform_(self.fuse.weight, gain=4)

    def new_modules(self) -> list[nn.Module]:
        return [*self.reduce, self.fuse]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Affinity features (B, 448, H/8, W/8)."""
        levels = self.backbone(x)
        reduced = [self.act(conv(level)) for conv, level in zip(self.reduce, levels)]
        return self.act(self.fuse(torch.cat(reduced, dim=1)))

    def forward(self, x: torch.Tensor, radius: int = 5) -> torch.Tensor:
        """Pair affinities (B, K, H/8, W/8) in the layout of `psa.ops.pair_offsets(radius)`.
        (`forward`, not a helper method, so DistributedDataParallel syncs its gradients.)"""
        return pair_affinity(self.features(x), radius)
