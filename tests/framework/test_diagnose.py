"""The diagnosis (psa/framework/diagnosis.py): the label and verdict arithmetic against
hand-made examples, and one run of the tool on a tiny synthetic run. The walk's bound is
tested with the affinity method (tests/methods/affinity/test_affinity_diagnosis.py)."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, tool_command
from psa.framework.diagnosis import Bound, bottleneck
from psa.metrics import boundary_counts, class_edges, confusion_matrix, label_quality


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
    (0.30, 0.50, None, "affinity not trained"),
    (0.30, 0.50, 0.35, "affinity: trails"),
    (0.30, 0.50, 0.49, "near its bound"),
])
def test_bottleneck_reads_the_bounds(cam, bound, learned, word):
    assert word in bottleneck(cam, [Bound("affinity", bound, learned, trails="trails")])


def test_the_bottleneck_reads_the_highest_bound_of_several():
    bounds = [Bound("affinity", 0.40, 0.39), Bound("irn", 0.60, 0.45, trails="boundaries")]
    assert bottleneck(0.38, bounds) == "irn: boundaries"
    assert bottleneck(0.38, []).startswith("no refinement bound measured")


@pytest.mark.slow
def test_diagnose_tool_on_a_tiny_run(tiny_recipe, tmp_path):
    """CAM net and AffinityNet trained briefly on 16 synthetic images, then the tool: its CAM
    row must equal what tools/eval.py computes independently from the same files."""
    from psa.framework.training import train_task
    from psa.framework.evaluation import evaluate
    from conftest import export_cams

    run = tmp_path / "run"
    overrides = ["cam.train.epochs=1", "affinity.train.epochs=1"]
    recipe = tiny_recipe(*overrides, "task=cam", run_dir=run)
    train_task(recipe, "cam")
    export_cams(recipe)
    affinity = tiny_recipe(*overrides, "task=affinity", run_dir=run)
    train_task(affinity, "affinity")
    cam_eval = evaluate(recipe, "cam")

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = [str(CORE_DEMO), *TINY_OVERRIDES, *overrides, f"run.dir={run}"]
    done = subprocess.run(tool_command("diagnose", *args), capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((run / "diagnose" / "diagnose.json").read_text())
    assert report["images"] == 16 and report["split_is_training_data"]
    assert report["cam"]["miou"] == pytest.approx(cam_eval["miou"])
    assert report["cam"]["best_miou"] == pytest.approx(cam_eval["best_sweep_miou"])
    for row in ("rw_learned", "rw_gt_affinity"):
        assert 0.0 <= report["affinity"][row]["miou"] <= 1.0
    for key in ("bg", "fg", "neg"):
        assert report["affinity"]["pair_accuracy"][key]["pairs"] > 0
    # every registered pseudo-mask source is listed, with what its evaluations wrote (none ran)
    assert report["sources"]["rw"] == {"label": "CAM + random walk", "miou": None, "crf_miou": None}
    assert 0.0 <= report["confident_labels"]["precision"] <= 1.0
    assert set(report["classifier"]["ap"]) == set(list(cam_eval["iou"])[1:])  # foreground classes
    assert "ground-truth affinities: bound" in done.stdout and "bottleneck" in done.stdout
    assert list((run / "diagnose" / "tb").glob("events.out.tfevents.*"))

    missing = subprocess.run(tool_command("diagnose", str(CORE_DEMO),
                                          f"run.dir={tmp_path / 'nothing'}"), capture_output=True, text=True,
                             timeout=120, env=env, cwd=ROOT)
    assert missing.returncode == 2 and "error:" in missing.stderr and "model.pt" in missing.stderr


def test_boundary_counts_on_a_hand_made_case():
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
