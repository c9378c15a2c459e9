"""The segmentation network's training labels: pseudo masks, and the pixels `seg.min_confidence`
leaves out of the loss, checked against a per-pixel loop over hand-made walk scores."""

from __future__ import annotations

import numpy as np
import pytest

from psa.constants import IGNORE_INDEX
from psa.data import build_source
from psa.errors import PsaError
from psa.framework.masks import MaskSource
from psa.framework.registry import REGISTRY
from psa.framework.segmentation import SegTrainDataset
from psa.io import save_label_png, save_npz


def _write_walk(recipe, source, rng) -> dict:
    """Pseudo masks and stride-1 walk scores (background + 2 classes, some negative) per image."""
    source_rw = REGISTRY.find(MaskSource, "rw", "seg.masks")
    masks, scores = source_rw.masks(recipe), source_rw.scores(recipe)
    masks.mkdir(parents=True)
    scores.mkdir(parents=True)
    written = {}
    for index, image_id in enumerate(source.ids):
        height, width = source.load_image(index).shape[:2]
        walk = rng.uniform(-0.2, 1.0, size=(3, height, width)).astype(np.float16)
        mask = rng.integers(0, 3, size=(height, width)).astype(np.uint8)
        save_npz(scores / f"{image_id}.npz", scores=walk, classes=np.array([1, 2]), stride=np.array(1))
        save_label_png(masks / f"{image_id}.png", mask)
        written[image_id] = (mask, walk.astype(np.float32))
    return written


def _expected(mask: np.ndarray, walk: np.ndarray, threshold: float) -> np.ndarray:
    out = mask.copy()
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            column = [max(float(v), 0.0) + 1e-5 for v in walk[:, y, x]]
            if max(column) / sum(column) < threshold:
                out[y, x] = IGNORE_INDEX
    return out


@pytest.mark.parametrize("threshold", [0.0, 0.5, 0.7])
def test_pixels_below_the_walks_confidence_are_ignored(tiny_recipe, threshold):
    recipe = tiny_recipe("seg.labels=pseudo", f"seg.min_confidence={threshold}")
    source = build_source(recipe.data, recipe.data.train_split)
    written = _write_walk(recipe, source, np.random.default_rng(0))
    dataset = SegTrainDataset(source, recipe)
    ignored = 0
    for index, image_id in enumerate(source.ids[:3]):
        mask, walk = written[image_id]
        got = dataset._mask(index, mask.shape)
        np.testing.assert_array_equal(got, _expected(mask, walk, threshold))
        ignored += int((got == IGNORE_INDEX).sum())
    assert (ignored > 0) == (threshold > 0)  # the scores put some pixels below 0.5


def test_missing_walk_scores_are_named(tiny_recipe):
    recipe = tiny_recipe("seg.labels=pseudo", "seg.min_confidence=0.5")
    source = build_source(recipe.data, recipe.data.train_split)
    _write_walk(recipe, source, np.random.default_rng(0))
    (REGISTRY.find(MaskSource, "rw", "seg.masks").scores(recipe) / f"{source.ids[1]}.npz").unlink()
    with pytest.raises(PsaError, match=rf"score file missing for 1 of 16 images \(first: .*{source.ids[1]}\.npz\); "
                                       r"seg.min_confidence needs them: run the random_walk step first"):
        SegTrainDataset(source, recipe)


def test_min_confidence_with_ground_truth_labels_is_refused(tiny_recipe):
    with pytest.raises(PsaError, match="seg.min_confidence"):
        tiny_recipe("seg.labels=gt", "seg.min_confidence=0.5")
