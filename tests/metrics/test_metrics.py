"""Tests of psa.metrics against brute-force loops and hand-computed examples."""

import json
import math

import numpy as np
import pytest
import torch

from psa.metrics import average_precision, confusion_matrix, multilabel_scores, segmentation_scores


def brute_confusion(pred, gt, c, ignore=255):
    """Pixel-by-pixel reference: (C, C+1), last column = prediction outside 0..C-1."""
    m = [[0] * (c + 1) for _ in range(c)]
    for p, g in zip(np.asarray(pred).ravel().tolist(), np.asarray(gt).ravel().tolist()):
        if g == ignore:
            continue
        m[g][p if 0 <= p < c else c] += 1
    return np.array(m, dtype=np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    c = 5
    gt = rng.integers(0, c, size=(17, 23))
    gt[rng.random(gt.shape) < 0.2] = 255
    pred = rng.integers(0, c, size=(17, 23))
    pred[rng.random(pred.shape) < 0.1] = 255
    pred[rng.random(pred.shape) < 0.05] = 7  # out of range but not 255
    got = confusion_matrix(pred.astype(np.uint8), gt.astype(np.uint8), c)
    assert got.dtype == np.int64 and got.shape == (c, c + 1)
    np.testing.assert_array_equal(got, brute_confusion(pred, gt, c))
    assert got.sum() == int((gt != 255).sum())


def test_confusion_accepts_torch_and_any_shape():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 4, size=(2, 3, 5, 6))
    pred = rng.integers(0, 4, size=(2, 3, 5, 6))
    expected = brute_confusion(pred, gt, 4)
    np.testing.assert_array_equal(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(gt), 4), expected)
    np.testing.assert_array_equal(confusion_matrix(pred.ravel(), gt.ravel(), 4), expected)


def test_confusion_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError) as err:
        confusion_matrix(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), 3)
    assert "(2, 3)" in str(err.value) and "(3, 2)" in str(err.value)


def test_confusion_rejects_out_of_range_ground_truth():
    with pytest.raises(ValueError):
        confusion_matrix(np.zeros(3, np.uint8), np.array([0, 4, 1]), 3)


# Hand-made example, 4 classes: a, b in ground truth; c only predicted; d absent everywhere.
GT = np.array([[0, 0, 0, 1],
               [0, 1, 1, 1],
               [255, 255, 1, 0]])
PRED = np.array([[0, 0, 2, 1],
                 [0, 1, 0, 255],
                 [1, 0, 1, 0]])
NAMES = ["a", "b", "c", "d"]
# Counted (gt, pred) pairs (gt 255 dropped):
#   (0,0) x4, (0,2) x1          -> gt a = 5, TP a = 4
#   (1,1) x3, (1,0) x1, (1,255) -> gt b = 5, TP b = 3
# Predicted totals (255 excluded): a = 4 + 1 = 5, b = 3, c = 1, d = 0.
EXPECTED_CONF = np.array([[4, 0, 1, 0, 0],
                          [1, 3, 0, 0, 1],
                          [0, 0, 0, 0, 0],
                          [0, 0, 0, 0, 0]])


def test_hand_example_confusion():
    np.testing.assert_array_equal(confusion_matrix(PRED, GT, 4), EXPECTED_CONF)


def test_hand_example_scores():
    s = segmentation_scores(confusion_matrix(PRED, GT, 4), NAMES)
    # IoU a = 4 / (5 + 5 - 4) = 2/3 ; IoU b = 3 / (5 + 3 - 3) = 3/5 ; IoU c = 0 / (0 + 1 - 0) = 0
    assert s["iou"]["a"] == pytest.approx(2 / 3)
    assert s["iou"]["b"] == pytest.approx(0.6)
    assert s["iou"]["c"] == 0.0
    assert s["iou"]["d"] is None
    # mIoU over a, b, c (d left out): (2/3 + 0.6 + 0) / 3 = 0.42222...
    assert s["miou"] == pytest.approx((2 / 3 + 0.6) / 3)
    # over classes with gt only: (2/3 + 0.6) / 2 = 0.63333...
    assert s["miou_present_gt"] == pytest.approx((2 / 3 + 0.6) / 2)
    # precision = TP / pred: a 4/5, b 3/3, c 0/1, d undefined
    assert s["precision"] == pytest.approx({"a": 0.8, "b": 1.0, "c": 0.0, "d": None})
    # recall = TP / gt (the 255 prediction is a miss for b): a 4/5, b 3/5
    assert s["recall"] == pytest.approx({"a": 0.8, "b": 0.6, "c": None, "d": None})
    # F1 = 2 TP / (gt + pred): a 8/10, b 6/8, c 0/1
    assert s["f1"] == pytest.approx({"a": 0.8, "b": 0.75, "c": 0.0, "d": None})
    assert s["pixel_acc"] == pytest.approx(0.7)  # (4 + 3) / 10
    assert s["mean_acc"] == pytest.approx(0.7)   # (0.8 + 0.6) / 2
    assert s["num_pixels"] == 10
    assert s["present"] == ["a", "b"]
    json.dumps(s, allow_nan=False)  # raises on NaN


def test_scores_accept_square_matrix_and_check_names():
    square = EXPECTED_CONF[:, :4]
    s = segmentation_scores(square, NAMES)
    assert s["recall"]["b"] == pytest.approx(0.75)  # the invalid pixel is gone: 3 / 4
    with pytest.raises(ValueError):
        segmentation_scores(square, NAMES[:3])


def test_scores_of_empty_matrix_are_none():
    s = segmentation_scores(np.zeros((3, 4), np.int64), ["x", "y", "z"])
    assert s["miou"] is None and s["pixel_acc"] is None and s["present"] == []
    json.dumps(s, allow_nan=False)


def brute_ap(scores, labels):
    """Rank positives by score; precision at each positive counts all samples scored >= it."""
    pos = [i for i, y in enumerate(labels) if y]
    if not pos:
        return None
    precisions = []
    for i in pos:
        above = [j for j in range(len(scores)) if scores[j] >= scores[i]]
        precisions.append(sum(labels[j] for j in above) / len(above))
    return sum(precisions) / len(precisions)


def test_average_precision_hand_examples():
    # ranks: + - + -  -> (1/1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # a tie between a positive and a negative -> precision 1/2
    assert average_precision([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert average_precision([0.1, 0.2], [0, 0]) is None


def test_map_matches_brute_force():
    rng = np.random.default_rng(5)
    n, c = 40, 6
    logits = np.round(rng.normal(size=(n, c)), 1)  # rounding creates ties
    targets = (rng.random((n, c)) < 0.3).astype(np.int64)
    targets[:, 4] = 0  # a class without positives is left out of mAP
    out = multilabel_scores(torch.from_numpy(logits), torch.from_numpy(targets))
    aps = [brute_ap(logits[:, k].tolist(), targets[:, k].tolist()) for k in range(c)]
    assert out["ap"][4] is None
    for got, want in zip(out["ap"], aps):
        assert (got is None and want is None) or got == pytest.approx(want)
    defined = [a for a in aps if a is not None]
    assert out["mAP"] == pytest.approx(sum(defined) / len(defined))
    # AP only depends on the ranking: probabilities give the same mAP
    probs = 1 / (1 + np.exp(-logits))
    assert multilabel_scores(probs, targets, from_logits=False)["mAP"] == pytest.approx(out["mAP"])


def test_multilabel_f1_hand_example():
    logits = np.array([[2.0, -1.0], [-3.0, 0.5]])
    targets = np.array([[1, 1], [0, 1]])
    # sigmoid >= 0.5 <=> logit >= 0 -> predictions [[1, 0], [0, 1]]
    # micro: TP 2, predicted 2, true 3 -> F1 = 2*2 / (2 + 3) = 0.8
    # per class: c0 TP 1, pred 1, true 1 -> 1.0 ; c1 TP 1, pred 1, true 2 -> 2/3 ; macro 5/6
    out = multilabel_scores(logits, targets)
    assert out["f1"] == pytest.approx(0.8)
    assert out["f1_macro"] == pytest.approx(5 / 6)
    # same numbers given as probabilities: 0.4 < 0.5 is not predicted
    probs = np.array([[0.9, 0.4], [0.1, 0.6]])
    assert multilabel_scores(probs, targets, from_logits=False)["f1"] == pytest.approx(0.8)
    assert not math.isnan(out["mAP"])
    json.dumps(out, allow_nan=False)
