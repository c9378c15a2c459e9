"""AffinityNet: its feature map and affinities."""

from __future__ import annotations

import torch

from psa.config import ModelConfig
from psa.methods.affinity.model import AffinityNet
from psa.models import build_backbone
from psa.ops import pair_offsets


def _backbone(**kw):
    return build_backbone(ModelConfig(backbone="resnet10t", **kw))


def test_affinity_net_shapes_and_range():
    model = AffinityNet(_backbone()).eval()
    assert model.features(torch.randn(1, 3, 40, 48)).shape == (1, 448, 5, 6)
    with torch.no_grad():
        aff = model(torch.randn(1, 3, 40, 48), radius=5)
    assert aff.shape == (1, len(pair_offsets(5)), 5, 6)
    assert float(aff.max()) <= 1.0 and float(aff.min()) >= 0.0
