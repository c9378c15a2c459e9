"""The switches of README "Differences from the reference code" reach the code they switch:
affinity.pairs, random_walk.pairs, pinned ImageNet weights (model.backbone with a timm tag),
the ResNet-101 recipe. The operators themselves are tested against independent ports of the
reference in test_pairs.py and test_random_walk.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import ROOT, stage_dir
from psa.config import ModelConfig, load_recipe
from psa.data import build_source
from psa.errors import PsaError
from psa.io import save_label_png
from psa.models.backbone import build_backbone
from psa.ops import pair_labels, pair_offsets, random_walk
from psa.ops.neighbors import reference_pair_mask


def test_pair_switches_default_to_all_and_are_validated(write_recipe):
    recipe = load_recipe(write_recipe("task: cam\n"))
    assert recipe.affinity.pairs == "all" and recipe.random_walk.pairs == "all"
    for key in ("affinity.pairs", "random_walk.pairs"):
        assert getattr(load_recipe(write_recipe("task: cam\n"), [f"{key}=reference"]),
                       key.split(".")[0]).pairs == "reference"
        with pytest.raises(PsaError, match=f"recipe key '{key}' must be one of all, reference, got 'some'"):
            load_recipe(write_recipe("task: cam\n"), [f"{key}=some"])


def _write_confident_labels(recipe):
    source = build_source(recipe.data, recipe.data.train_split)
    for index, image_id in enumerate(source.ids):
        save_label_png(stage_dir(recipe, "cam") / "labels" / f"{image_id}.png", source.load_mask(index))
    return source


@pytest.mark.parametrize("pairs", ["all", "reference"])
def test_affinity_dataset_supervises_the_chosen_pairs(tiny_recipe, pairs):
    from psa.tasks.affinity import AffinityTrainDataset

    recipe = tiny_recipe(f"affinity.pairs={pairs}", "affinity.radius=3")
    dataset = AffinityTrainDataset(_write_confident_labels(recipe), recipe)
    item = dataset[0]
    want = pair_labels(item["label"], 3, pairs)
    for key in ("bg", "fg", "neg"):
        assert torch.equal(item[key], want[key]), key
    supervised = item["bg"] | item["fg"] | item["neg"]
    outside = supervised & ~reference_pair_mask(3, *item["label"].shape)
    assert outside.any() == (pairs == "all")


def test_random_walk_stage_walks_over_the_chosen_pairs(tiny_recipe, monkeypatch):
    import psa.stages.random_walk as stage
    from psa.tasks.affinity import build_affinity_model

    asked = []
    walk = stage.random_walk

    def spy(*args, **kwargs):
        asked.append(kwargs["pairs"])
        return walk(*args, **kwargs)

    monkeypatch.setattr(stage, "random_walk", spy)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(72, 80, 3), dtype=np.uint8)
    cams = rng.random((2, 72, 80)).astype(np.float32)
    torch.manual_seed(0)
    model = build_affinity_model(tiny_recipe(), load_weights_=False).eval()
    got = {}
    for pairs in ("all", "reference"):
        recipe = tiny_recipe(f"random_walk.pairs={pairs}", "random_walk.radius=3", "random_walk.logt=3")
        with torch.no_grad():
            got[pairs] = stage.walk_scores(model, image, cams, recipe, torch.device("cpu"))
    assert asked == ["all", "reference"]
    assert got["all"].shape == got["reference"].shape == (3, 9, 10)
    assert (got["all"] - got["reference"]).abs().max() > 1e-4


def test_random_walk_reference_pairs_leave_band_only_pairs_out():
    """A CAM seeded in the bottom-left corner spreads only through pairs anchored there, which
    the reference's matrix does not have: with radius 3 the corner's 2×2 block only reaches
    the rest through pairs anchored above it."""
    height, width, radius = 8, 8, 3
    cam = torch.zeros(1, height, width)
    cam[0, -1, 0] = 1.0
    aff = torch.ones(len(pair_offsets(radius)), height, width)
    every = random_walk(cam, aff, beta=1.0, logt=0, radius=radius)
    ref = random_walk(cam, aff, beta=1.0, logt=0, radius=radius, pairs="reference")
    # one step: "all" moves mass to the corner's right-hand neighbour (a pair anchored in the
    # left band), the reference's matrix does not
    assert every[0, -1, 1] > 0 and ref[0, -1, 1] == 0


# ------------------------------------------------------------------ ImageNet weights


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


# ------------------------------------------------------------------ GPU recipe keys


@pytest.mark.slow
def test_channels_last_trains_the_same_model_in_nhwc(tiny_recipe, tmp_path):
    """run.channels_last is opt-in: same first-step loss (same network, another memory
    layout), weights in NHWC during training, checkpoints and model.pt still load."""
    import dataclasses

    from psa.engine.checkpoints import load_weights
    from psa.stages.training import train_task
    from psa.tasks.cam_task import build_cam_task

    models = {}

    def capturing(name):
        def build(recipe):
            spec = build_cam_task(recipe)
            models[name] = spec.model
            return spec
        return build

    results = {}
    for name, flag in (("nchw", "false"), ("nhwc", "true")):
        recipe = tiny_recipe(f"run.channels_last={flag}", "cam.train.max_steps=2", "model.freeze_bn=true",
                             run_dir=tmp_path / name)
        results[name] = train_task(recipe, "cam", build=capturing(name))
    weight = models["nhwc"].backbone.body.state_dict()["conv1.0.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert models["nchw"].backbone.body.state_dict()["conv1.0.weight"].is_contiguous()
    assert results["nhwc"].losses[0] == pytest.approx(results["nchw"].losses[0], rel=1e-4)
    state, _ = load_weights(results["nhwc"].weights, "cam", "resnet10t")
    assert state["classifier.weight"].shape == models["nchw"].classifier.weight.shape
