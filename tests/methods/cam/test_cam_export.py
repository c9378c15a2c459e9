"""Multi-scale + flip CAM inference, confident labels, and the export stage's files."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from psa.config import CrfConfig, ModelConfig
from psa.data.transforms import normalize
from psa.framework.training import train_task
from psa.models import CamNet, build_backbone
from psa.ops.cam import background_score, cam_prediction, confident_labels, multiscale_cam
from conftest import export_cams, load_cam_file
from conftest import stage_dir


def _single_pass(model, image, class_idx, scale, flip):
    """One forward per (scale, flip), written independently of the batched version."""
    height, width = image.shape[:2]
    size = (round(width * scale), round(height * scale))
    x = normalize(np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC)))[None]
    if flip:
        x = torch.flip(x, dims=[3])
    with torch.no_grad():
        cam = model.forward_cam(x)[:, class_idx]
    cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)[0]
    return torch.flip(cam, dims=[2]) if flip else cam


def test_multiscale_cam_equals_the_normalised_sum_of_single_passes():
    torch.manual_seed(0)
    model = CamNet(build_backbone(ModelConfig(backbone="resnet10t", freeze_bn=True)), 5).eval()
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    scales, class_idx = [1.0, 0.5, 1.5], [1, 4]
    total = sum(_single_pass(model, image, class_idx, s, f) for s in scales for f in (False, True))
    expected = total / (total.amax(dim=(1, 2), keepdim=True) + 1e-5)
    got = multiscale_cam(model, image, class_idx, scales, flip=True)
    assert got.shape == (2, 37, 53)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert got.amax(dim=(1, 2)).sub(1).abs().max() < 1e-3  # each class peaks at ~1


def test_background_score_and_cam_prediction_by_hand():
    cams = np.array([[[0.9, 0.1]], [[0.2, 0.3]]], dtype=np.float32)  # 2 classes, 1×2 image
    np.testing.assert_allclose(background_score(cams, 2.0), [[0.1 ** 2, 0.7 ** 2]], rtol=1e-6)
    pred = cam_prediction(cams, np.array([7, 12]), bg_threshold=0.25)
    assert pred.tolist() == [[7, 12]]
    pred = cam_prediction(cams, np.array([7, 12]), bg_threshold=0.5)
    assert pred.tolist() == [[7, 0]]


def test_confident_labels_follow_the_la_ha_rule():
    # left: strong CAM (fg for both alphas), middle: weak (bg for low alpha only), right: none
    image = np.zeros((8, 24, 3), dtype=np.uint8)
    cams = np.zeros((1, 8, 24), dtype=np.float32)
    cams[:, :, :8], cams[:, :, 8:16] = 0.95, 0.3
    label = confident_labels(image, cams, np.array([5]), 4.0, 32.0, CrfConfig(iterations=1, bilateral_compat=0,
                                                                            gaussian_compat=0))
    # la (alpha 4): bg = 0.7^4 = 0.24 < 0.3 in the middle → fg there too; make it explicit:
    la_bg = (1 - cams.max(0)) ** 4
    ha_bg = (1 - cams.max(0)) ** 32
    expected = np.where(cams[0] > la_bg, 5, 255).astype(np.uint8)
    expected[ha_bg > cams[0]] = 0
    np.testing.assert_array_equal(label, expected)
    assert set(np.unique(label)) <= {0, 5, 255}


def test_export_writes_every_file_and_a_rerun_skips_them(tiny_recipe):
    recipe = tiny_recipe("cam.train.epochs=1")
    train_task(recipe, "cam")
    first = export_cams(recipe)
    assert first["written_here"] == first["images"] == 16  # train split == eval split here
    stage = stage_dir(recipe, "cam")
    from psa.data import build_source

    source = build_source(recipe.data, "train")
    for index, image_id in enumerate(source.ids):
        cams, classes = load_cam_file(stage / "cams" / f"{image_id}.npz")
        np.testing.assert_array_equal(classes, source.image_labels(index))
        assert cams.shape == (len(classes), 48, 48)
        assert np.all(cams >= 0) and np.all(cams <= 1.001)
        labels = np.asarray(Image.open(stage / "labels" / f"{image_id}.png"))
        assert set(np.unique(labels)) <= {0, 255, *classes.tolist()}
        pred = np.asarray(Image.open(stage / "pred" / f"{image_id}.png"))
        assert pred.shape == (48, 48) and set(np.unique(pred)) <= {0, *classes.tolist()}
    before = {p: p.stat().st_mtime_ns for p in stage.rglob("*.png")}
    second = export_cams(recipe)
    assert second["written_here"] == 0 and second["skipped_here"] == 16
    assert before == {p: p.stat().st_mtime_ns for p in stage.rglob("*.png")}
    assert not list(stage.rglob("*.tmp"))
