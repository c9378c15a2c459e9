"""tools/diagnose.py: ground-truth affinities against hand-made examples, the label and
verdict arithmetic, and one smoke run of the tool on a tiny synthetic run."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_OVERRIDES, tool_command
from psa.config import Recipe
from psa.errors import PsaError
from psa.metrics import confusion_matrix, segmentation_scores
from psa.ops import label_affinity, pair_offsets
from psa.ops.cam import cam_prediction
from psa.stages.diagnose import bottleneck, ground_truth_affinity, label_quality, walk_prediction
from psa.stages.random_walk import walk_with_affinity


def brute_label_affinity(label: np.ndarray, radius: int) -> np.ndarray:
    height, width = label.shape
    offsets = pair_offsets(radius)
    out = np.zeros((len(offsets), height, width), dtype=np.float32)
    for k, (dy, dx) in enumerate(offsets):
        for y in range(height):
            for x in range(width):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    out[k, y, x] = 1.0 if label[y, x] == label[y + dy, x + dx] else 0.0
    return out


def test_label_affinity_equals_a_pixel_loop():
    rng = np.random.default_rng(0)
    label = rng.choice(np.array([0, 1, 2, 255], dtype=np.uint8), size=(7, 9))
    for radius in (2, 3, 5):
        got = label_affinity(label, radius).numpy()
        np.testing.assert_array_equal(got, brute_label_affinity(label, radius))
    low = label_affinity(label, 3, high=0.9, low=0.2).numpy()
    reference = brute_label_affinity(label, 3)
    inside = brute_label_affinity(np.zeros_like(label), 3) > 0
    np.testing.assert_allclose(low[inside], np.where(reference[inside] > 0, 0.9, 0.2))
    with pytest.raises(PsaError, match="label_affinity"):
        label_affinity(np.zeros((3, 3), dtype=np.float32))


def walk_recipe(**fields) -> Recipe:
    recipe = Recipe()
    for key, value in {"radius": 3, "logt": 5, "alpha": 16.0, "beta": 8.0, **fields}.items():
        setattr(recipe.random_walk, key, value)
    return recipe


def half_covered_object():
    """64×64 image, one object (class 3) in the left half. The CAM is strong (0.6) on its top
    half and weak (0.1, below the 0.2 threshold) on its bottom half, 0 on the background."""
    gt = np.zeros((64, 64), dtype=np.uint8)
    gt[:, :32] = 3
    cams = np.zeros((1, 64, 64), dtype=np.float32)
    cams[0, :32, :32] = 0.6
    cams[0, 32:, :32] = 0.1
    return gt, cams, np.array([3])


def miou(pred, gt):
    return segmentation_scores(confusion_matrix(pred, gt, 4), ["bg", "a", "b", "c"])["miou"]


def test_ground_truth_walk_fills_the_object_and_beats_an_untrained_affinity():
    gt, cams, class_ids = half_covered_object()
    recipe = walk_recipe()
    lookup = np.array([0, 3], dtype=np.uint8)
    small, affinity = ground_truth_affinity(gt, recipe.random_walk.radius)
    assert small.shape == (8, 8) and affinity.shape == (len(pair_offsets(3)), 8, 8)

    cam_miou = miou(cam_prediction(cams, class_ids, 0.2), gt)
    bound = walk_prediction(cams, affinity, recipe, lookup, gt.shape)
    # an untrained AffinityNet: every pair alike, so the walk ignores the object boundary
    flat = walk_prediction(cams, torch.ones_like(affinity), recipe, lookup, gt.shape)
    assert cam_miou == pytest.approx((1 / 2 + 2 / 3) / 2)  # half the object found
    # at stride 8 the walk stays inside the object and fills it exactly...
    scores = walk_with_affinity(cams, affinity, recipe)
    np.testing.assert_array_equal(lookup[scores.argmax(0).numpy()], small)
    # ...and the bilinear upsampling only blurs the boundary column
    assert miou(bound, gt) > 0.9
    assert miou(flat, gt) < cam_miou < miou(bound, gt)


def test_ground_truth_affinity_pads_like_the_walk():
    gt = np.zeros((20, 27), dtype=np.uint8)
    gt[5:15, 3:9] = 1
    small, affinity = ground_truth_affinity(gt, 2)
    assert small.shape == (3, 4)  # the image padded to 24×32, at stride 8
    # blocks vote, the padding counting as 255: 35 object pixels beat 29 background ones,
    # 5 padding columns beat 3 image columns, and a 32/32 tie goes to the background
    assert small[1, 0] == 1 and (small[:, 3] == 255).all() and small[2, 0] == 0
    np.testing.assert_array_equal(affinity.numpy(), brute_label_affinity(small, 2))


def test_label_quality_by_hand():
    gt = np.array([[0, 0, 0, 0], [1, 1, 2, 2]], dtype=np.uint8)
    labels = np.array([[0, 0, 255, 1], [1, 255, 255, 1]], dtype=np.uint8)
    quality = label_quality(confusion_matrix(labels, gt, 3))
    # labelled: 5 of 8 pixels; right: (0,0) (0,1) (1,0) = 3
    assert quality["precision"] == pytest.approx(3 / 5) and quality["coverage"] == pytest.approx(5 / 8)
    assert quality["bg_precision"] == pytest.approx(2 / 2) and quality["bg_coverage"] == pytest.approx(3 / 4)
    assert quality["fg_precision"] == pytest.approx(1 / 3) and quality["fg_coverage"] == pytest.approx(2 / 4)


@pytest.mark.parametrize("cam, bound, learned, word", [
    (0.30, 0.31, 0.20, "classifier"),
    (0.30, 0.50, None, "not trained"),
    (0.30, 0.50, 0.35, "affinity"),
    (0.30, 0.50, 0.49, "near its bound"),
])
def test_bottleneck_reads_the_bounds(cam, bound, learned, word):
    report = {"cam": {"best_miou": cam}, "rw_gt_affinity": {"miou": bound},
              "rw_learned": None if learned is None else {"miou": learned}}
    assert word in bottleneck(report)


@pytest.mark.slow
def test_diagnose_tool_on_a_tiny_run(tiny_recipe, tmp_path):
    """CAM net and AffinityNet trained briefly on 16 synthetic images, then the tool: its CAM
    row must equal what tools/eval.py computes independently from the same files."""
    from psa.stages.training import train_task
    from psa.stages.evaluate import evaluate
    from psa.stages.export_cams import export_cams

    run = tmp_path / "run"
    overrides = ["cam.train.epochs=1", "affinity.train.epochs=1"]
    recipe = tiny_recipe(*overrides, "task=cam", run_dir=run)
    train_task(recipe, "cam")
    export_cams(recipe)
    affinity = tiny_recipe(*overrides, "task=affinity", run_dir=run)
    train_task(affinity, "affinity")
    cam_eval = evaluate(recipe, "cam")

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = [str(ROOT / "recipes" / "demo.yaml"), *TINY_OVERRIDES, *overrides, f"run.dir={run}"]
    done = subprocess.run(tool_command("diagnose", *args), capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((run / "diagnose" / "diagnose.json").read_text())
    assert report["images"] == 16 and report["split_is_training_data"]
    assert report["cam"]["miou"] == pytest.approx(cam_eval["miou"])
    assert report["cam"]["best_miou"] == pytest.approx(cam_eval["best_sweep_miou"])
    for row in ("rw_learned", "rw_gt_affinity"):
        assert 0.0 <= report[row]["miou"] <= 1.0
    for key in ("bg", "fg", "neg"):
        assert report["pair_accuracy"][key]["pairs"] > 0
    assert 0.0 <= report["confident_labels"]["precision"] <= 1.0
    assert set(report["classifier"]["ap"]) == set(list(cam_eval["iou"])[1:])  # foreground classes
    assert "ground-truth affinities: bound" in done.stdout and "bottleneck" in done.stdout
    assert list((run / "diagnose" / "tb").glob("events.out.tfevents.*"))

    missing = subprocess.run(tool_command("diagnose", str(ROOT / "recipes" / "demo.yaml"),
                                          f"run.dir={tmp_path / 'nothing'}"), capture_output=True, text=True,
                             timeout=120, env=env, cwd=ROOT)
    assert missing.returncode == 2 and "error:" in missing.stderr and "model.pt" in missing.stderr


def test_boundary_counts_on_a_hand_made_case():
    from psa.stages.diagnose import boundary_counts, class_edges

    gt = np.zeros((32, 32), dtype=np.uint8)
    gt[:, 16:] = 1  # one vertical class edge; at stride 4 between cells 3 and 4
    np.testing.assert_array_equal(class_edges(gt[2::4, 2::4])[0], [c in (3, 4) for c in range(8)])
    boundary = np.zeros((8, 8))
    boundary[:, 4] = 0.9  # on the edge
    boundary[0, 0] = 0.9  # three cells off it: a false positive
    near, predicted, found, edges = boundary_counts(boundary, gt)
    assert (near, predicted) == (8, 9)  # precision 8/9
    assert (found, edges) == (16, 16)  # both edge columns lie within one cell of the prediction
    boundary[:, 4] = 0.2  # below the threshold: nothing found
    assert tuple(boundary_counts(boundary, gt)) == (0, 1, 0, 16)
