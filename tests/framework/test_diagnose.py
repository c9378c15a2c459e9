"""The diagnosis (psa/framework/diagnosis.py): the label and verdict arithmetic against
hand-made examples, and one run of the tool on a tiny synthetic run. The walk's bound is
tested with the affinity method (tests/methods/affinity/test_affinity_diagnosis.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import CORE_DEMO, run_cli
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


def test_diagnose_tool_on_a_finished_run(finished_run, tmp_path):
    """The tool on the shared tiny run: its CAM rows equal what the run's own evaluation of the
    CAMs computed from the same files, and every source's evaluations are listed."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    cam_eval = json.loads((run / "cam" / "eval" / "cam" / "metrics.json").read_text())
    rw_eval = json.loads((run / "affinity" / "eval" / "rw" / "metrics.json").read_text())
    done = run_cli("diagnose", str(run / "recipe.yaml"), f"run.dir={run}")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((run / "diagnose" / "diagnose.json").read_text())
    assert report["images"] == 16 and report["split_is_training_data"]
    assert report["cam"]["miou"] == pytest.approx(cam_eval["miou"])
    assert report["cam"]["best_miou"] == pytest.approx(cam_eval["best_sweep_miou"])
    for row in ("rw_learned", "rw_gt_affinity"):
        assert 0.0 <= report["affinity"][row]["miou"] <= 1.0
    for key in ("bg", "fg", "neg"):
        assert report["affinity"]["pair_accuracy"][key]["pairs"] > 0
    assert report["sources"]["rw"]["miou"] == rw_eval["miou"] and report["sources"]["rw"]["crf_miou"] is not None
    assert 0.0 <= report["confident_labels"]["precision"] <= 1.0
    assert set(report["classifier"]["ap"]) == set(list(cam_eval["iou"])[1:])  # foreground classes
    assert "ground-truth affinities: bound" in done.stdout and "bottleneck" in done.stdout
    assert list((run / "diagnose" / "tb").glob("events.out.tfevents.*"))

    missing = run_cli("diagnose", str(CORE_DEMO), f"run.dir={tmp_path / 'nothing'}")
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
