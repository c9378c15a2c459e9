"""BN folded into convs for inference: the folded copy against the original network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from psa.config import ModelConfig
from psa.models import CamNet, build_backbone
from psa.models.fold_bn import fold_batch_norm, is_batch_norm


def randomise_batch_norm(model: nn.Module, seed: int = 0) -> int:
    """Statistics and affine parameters far from the identity (else a fold that ignored them
    would pass); → how many BN layers."""
    generator = torch.Generator().manual_seed(seed)
    count = 0
    for module in model.modules():
        if is_batch_norm(module):
            size = module.running_mean.shape
            module.running_mean.copy_(torch.randn(size, generator=generator))
            module.running_var.copy_(torch.rand(size, generator=generator) * 2 + 0.1)
            module.weight.data.copy_(torch.randn(size, generator=generator))
            module.bias.data.copy_(torch.randn(size, generator=generator))
            count += 1
    return count


@pytest.mark.parametrize("backbone, freeze_bn", [("resnet10t", True), ("resnet10t", False),
                                                 ("tf_efficientnet_lite0", True)])
def test_folded_network_gives_the_same_cams(backbone, freeze_bn):
    torch.manual_seed(0)
    with torch.no_grad():
        model = CamNet(build_backbone(ModelConfig(backbone=backbone, freeze_bn=freeze_bn)), 5).eval()
        layers = randomise_batch_norm(model)
    forward = lambda net, x: net.forward_cam(x)  # noqa: E731
    folded, count = fold_batch_norm(model, torch.rand(1, 3, 32, 32), forward)
    assert count == layers > 0
    assert not any(is_batch_norm(m) for m in folded.modules())
    assert any(is_batch_norm(m) for m in model.modules()), "the original is left as it was"
    x = torch.rand(2, 3, 45, 61)  # another size than the example the fold was checked on
    with torch.no_grad():
        want, got = model.forward_cam(x), folded.forward_cam(x)
    assert want.abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


class ConvUsedTwice(nn.Module):
    """conv → BN, but the conv's output is also added back: not a chain a fold may rewrite."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def test_a_conv_output_used_elsewhere_is_not_folded():
    model = ConvUsedTwice().eval()
    randomise_batch_norm(model)
    folded, count = fold_batch_norm(model, torch.rand(1, 3, 8, 8))
    assert count == 0 and folded is model


def test_batch_norm_in_training_mode_is_not_folded():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    folded, count = fold_batch_norm(model, torch.rand(2, 3, 8, 8))
    assert count == 0 and folded is model
