"""The segmentation network trained on pseudo masks: DeepLab-v2 ASPP or DeepLab-v3 head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone

ASPP_RATES = (6, 12, 18, 24)  # DeepLab-v2


class AsppV2(nn.Module):
    """DeepLab-v2: parallel dilated 3×3 convs straight to class scores, summed."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=rate, dilation=rate) for rate in ASPP_RATES
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


def build_head(kind: str, in_channels: int, num_classes: int) -> nn.Module:
    if kind == "aspp":
        return AsppV2(in_channels, num_classes)
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead

    return DeepLabHead(in_channels, num_classes)  # ASPP with image pooling, rates 12/24/36


class SegNet(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int, head: str = "aspp"):
        super().__init__()
        self.backbone = backbone
        self.head = build_head(head, backbone.channels[-1], num_classes)

    def new_modules(self) -> list[nn.Module]:
        return [self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (B, num_classes, H, W) at the input resolution."""
        logits = self.head(self.backbone(x)[-1])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
