"""Evaluation against hand-made ground truth: the numbers, the files, and 2 processes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from psa import load_recipe
from psa.io import save_label_png
from psa.framework.evaluation import evaluate
from conftest import launch

CLASSES = ["background", "cat", "dog", "cow"]  # cow appears nowhere


def _voc(root, masks: dict[str, np.ndarray]):
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    for image_id, mask in masks.items():
        Image.fromarray(np.full((*mask.shape, 3), 128, np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        save_label_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(masks) + "\n")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")


def _recipe(tmp_path, root):
    path = tmp_path / "r.yaml"
    path.write_text(f"data: {{kind: voc, root: {root}, train_split: train, eval_split: train}}\n"
                    f"run: {{dir: {tmp_path / 'run'}, num_workers: 0}}\neval: {{num_pictures: 1}}\n")
    return load_recipe(path)


def test_metrics_match_a_hand_computation(tmp_path):
    gt_a = np.array([[0, 0, 1, 1],
                     [0, 0, 1, 1],
                     [255, 255, 2, 2]], np.uint8)
    pred_a = np.array([[0, 1, 1, 1],
                       [0, 0, 1, 0],
                       [1, 1, 2, 0]], np.uint8)
    gt_b = np.array([[2, 2], [0, 255]], np.uint8)
    pred_b = np.array([[2, 1], [0, 2]], np.uint8)
    _voc(tmp_path / "voc", {"a": gt_a, "b": gt_b})
    preds = tmp_path / "preds"
    save_label_png(preds / "a.png", pred_a)
    save_label_png(preds / "b.png", pred_b)
    metrics = evaluate(_recipe(tmp_path, tmp_path / "voc"), pred_dir=str(preds))
    # valid gt pixels: a has 10 (two 255), b has 3 → 13
    # background: gt 5 (a: 4, b: 1); TP 4 (a: 3, b: 1); predicted bg on valid gt:
    #   a (0,0) (1,0) (1,1) (1,3) (2,3) = 5, b (1,0) = 1 → 6; IoU = 4 / (5 + 6 - 4) = 4/7
    # cat: gt 4; TP 3; predicted cat on valid gt: a 4 (row0: 3, row1: 1) + b 1 = 5 → 3/(4+5-3) = 3/6
    # dog: gt 4 (a: 2, b: 2); TP 2 (a: 1, b: 1); predicted dog: a 1 + b 1 = 2 → 2/(4+2-2) = 2/4
    # cow: absent from gt and prediction → left out of the mean
    assert metrics["num_pixels"] == 13
    assert metrics["iou"]["background"] == pytest.approx(4 / 7)
    assert metrics["iou"]["cat"] == pytest.approx(3 / 6)
    assert metrics["iou"]["dog"] == pytest.approx(2 / 4)
    assert metrics["iou"]["cow"] is None
    assert metrics["miou"] == pytest.approx((4 / 7 + 3 / 6 + 2 / 4) / 3)
    assert metrics["pixel_acc"] == pytest.approx(9 / 13)
    assert metrics["precision"]["cat"] == pytest.approx(3 / 5)
    assert metrics["recall"]["dog"] == pytest.approx(2 / 4)
    out = tmp_path / "run" / "cam" / "eval" / "pred_preds"
    assert json.loads((out / "metrics.json").read_text())["miou"] == pytest.approx(metrics["miou"])
    assert (out / "iou_chart.png").is_file() and len(list((out / "pictures").glob("*.png"))) == 1


def test_a_prediction_of_the_wrong_size_is_named(tmp_path):
    _voc(tmp_path / "voc", {"a": np.zeros((3, 4), np.uint8)})
    save_label_png(tmp_path / "preds" / "a.png", np.zeros((4, 4), np.uint8))
    from psa.errors import PsaError

    with pytest.raises(PsaError, match="prediction for a"):
        evaluate(_recipe(tmp_path, tmp_path / "voc"), pred_dir=str(tmp_path / "preds"))


@pytest.mark.slow
def test_two_processes_count_each_pixel_once(tmp_path):
    rng = np.random.default_rng(0)
    masks = {f"im{i}": rng.choice([0, 1, 2, 255], size=(6 + i, 7)).astype(np.uint8) for i in range(5)}
    preds = {k: rng.integers(0, 3, size=m.shape).astype(np.uint8) for k, m in masks.items()}
    _voc(tmp_path / "voc", masks)
    for image_id, pred in preds.items():
        save_label_png(tmp_path / "preds" / f"{image_id}.png", pred)
    recipe_path = tmp_path / "r.yaml"
    _recipe(tmp_path, tmp_path / "voc")
    single = evaluate(_recipe(tmp_path, tmp_path / "voc"), pred_dir=str(tmp_path / "preds"))
    out = tmp_path / "run" / "cam" / "eval" / "pred_preds" / "metrics.json"
    out.unlink()
    result = launch(ROOT / "tools" / "eval.py", str(recipe_path), "--pred", str(tmp_path / "preds"))
    assert result.returncode == 0, result.stderr[-3000:]
    double = json.loads(out.read_text())
    valid = sum(int((m != 255).sum()) for m in masks.values())
    assert single["num_pixels"] == double["num_pixels"] == valid  # 5 images over 2 ranks: no padding
    assert double["miou"] == pytest.approx(single["miou"])
    assert double["iou"] == pytest.approx(single["iou"])
