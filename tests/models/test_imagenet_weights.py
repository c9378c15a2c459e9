"""ImageNet weights: a timm tag pinned in model.backbone, fetched only when asked for, local
files loaded into a pinned name, and the VOC recipes' choice of them."""

from __future__ import annotations

import pytest
import torch

from conftest import ROOT
from psa import load_recipe
from psa.config import ModelConfig
from psa.errors import PsaError
from psa.models.backbone import build_backbone


def test_backbone_name_may_pin_timm_weights():
    body = build_backbone(ModelConfig(backbone="resnet10t.c3_in1k", pretrained=False), load_weights=True)
    assert body.channels == build_backbone(ModelConfig(backbone="resnet10t")).channels
    with pytest.raises(PsaError, match="model.backbone.*no weights 'a1_in1k' for resnet10t.*c3_in1k"):
        build_backbone(ModelConfig(backbone="resnet10t.a1_in1k"))
    with pytest.raises(PsaError, match="unknown timm model 'resnet5'"):
        build_backbone(ModelConfig(backbone="resnet5.tv_in1k"))


def test_pretrained_fetches_the_pinned_tag(monkeypatch):
    import timm

    asked = []
    create = timm.create_model

    def recording(name, pretrained=False, **kwargs):
        if pretrained:
            asked.append(name)
            raise OSError("offline")  # as without network: nothing is fetched in tests
        return create(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", recording)
    with pytest.raises(PsaError, match="could not fetch pretrained weights for resnet10t.c3_in1k.*model.weights"):
        build_backbone(ModelConfig(backbone="resnet10t.c3_in1k", pretrained=True))
    assert asked == ["resnet10t.c3_in1k"]


def test_local_weights_load_into_a_pinned_name(tmp_path):
    import timm

    torch.manual_seed(3)
    full = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "resnet10t.pth"
    torch.save(full.state_dict(), path)
    body = build_backbone(ModelConfig(backbone="resnet10t.c3_in1k", weights=str(path)))
    torch.testing.assert_close(body.body.state_dict()["conv1.0.weight"], full.state_dict()["conv1.0.weight"])


@pytest.mark.parametrize("name, backbone", [
    ("cam", "resnet50.tv_in1k"), ("affinity", "resnet50.tv_in1k"), ("seg", "resnet50.tv_in1k"),
    ("reference_faithful", "resnet50.tv_in1k"), ("voc_resnet101", "resnet101.tv_in1k"),
])
def test_voc_recipes_pin_classic_imagenet_weights(name, backbone):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert recipe.model.backbone == backbone and recipe.model.pretrained


def test_voc_resnet101_recipe_is_the_resnet50_one_with_a_deeper_backbone():
    r101 = load_recipe(ROOT / "recipes" / "voc_resnet101.yaml")
    r50 = load_recipe(ROOT / "recipes" / "affinity.yaml")
    assert (r101.cam, r101.affinity, r101.random_walk, r101.crf, r101.seg) == \
           (r50.cam, r50.affinity, r50.random_walk, r50.crf, r50.seg)
    assert r101.run.dir == "runs/voc_resnet101" and r101.task == "cam"
    body = build_backbone(r101.model, load_weights=False)  # random init: nothing fetched
    assert body.channels == [512, 1024, 2048]
    with torch.no_grad():
        shapes = [tuple(f.shape) for f in body(torch.zeros(1, 3, 48, 48))]
    assert shapes == [(1, 512, 6, 6), (1, 1024, 6, 6), (1, 2048, 6, 6)]
    assert sum(p.numel() for p in body.parameters()) > 40e6  # ResNet-101, not 50 (23.5M)
