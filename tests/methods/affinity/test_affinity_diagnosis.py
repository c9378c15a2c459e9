"""AffinityNet's part of the diagnosis: ground-truth affinities against hand-made examples
and a pixel loop, and the walk's bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psa.errors import PsaError
from psa.framework.recipes import default_recipe
from psa.methods.affinity.diagnosis import ground_truth_affinity, walk_prediction
from psa.methods.affinity.walk import walk_with_affinity
from psa.metrics import confusion_matrix, segmentation_scores
from psa.ops import label_affinity, pair_offsets
from psa.ops.cam import cam_prediction


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


def walk_recipe(**fields):
    recipe = default_recipe()
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
