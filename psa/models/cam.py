"""The CAM classifier: backbone → Dropout2d → global average pool → 1×1 conv without bias."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import Backbone


class CamNet(nn.Module):
    def __init__(self, backbone: Backbone, num_foreground: int):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout2d(0.5)
        self.classifier = nn.Conv2d(backbone.channels[-1], num_foreground, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)

    def new_modules(self) -> list[nn.Module]:
        """Layers trained from scratch (the 10× learning-rate group)."""
        return [self.classifier]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image-level logits (B, num_foreground)."""
        features = self.dropout(self.backbone(x)[-1])
        pooled = F.adaptive_avg_pool2d(features, 1)
        return self.classifier(pooled).flatten(1)

    def forward_cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class activation maps (B, num_foreground, H/8, W/8): ReLU of the classifier applied
        at every position. GAP and the 1×1 conv commute, so these are what the logits average."""
        features = self.backbone(x)[-1]
        return F.relu(F.conv2d(features, self.classifier.weight))
