"""`psa tune`: each tuner, at the finished run's own settings, gives what the run's evaluations
computed from its stored outputs; other settings move the numbers; the grid, the tuner's
choice and the written table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from psa import load_recipe
from psa.errors import PsaError
from psa.framework.registry import REGISTRY
from psa.framework.segmentation import SegTrainDataset
from psa.framework.tuning import TuneOptions, Tuner
from psa.io import read_label_png
from psa.metrics import confusion_matrix, label_quality, segmentation_scores
from psa.tune import find_tuner, run


def metrics(run_dir, path: str) -> dict:
    return json.loads((run_dir / path / "metrics.json").read_text())


def test_the_walk_at_the_runs_setting_is_its_pseudo_masks(finished_run):
    """Up to float rounding: the run walked in single-threaded image workers, the tuner walks
    with every thread."""
    recipe = finished_run / "recipe.yaml"
    alpha = load_recipe(recipe).random_walk.alpha
    rows = run(str(recipe), [f"random_walk.alpha={alpha:g},1"]).rows
    assert rows[0]["miou"] == pytest.approx(metrics(finished_run, "affinity/eval/rw")["miou"], abs=2e-3)
    assert rows[1]["miou"] != rows[0]["miou"] and rows[1]["bound"] != rows[0]["bound"]
    written = json.loads((finished_run / "tune" / "walk.json").read_text())
    assert written["rows"] == json.loads(json.dumps(rows)) and written["every"] == 1


def test_the_crf_at_the_runs_setting_is_its_crf_evaluation(finished_run):
    rows = run(str(finished_run / "recipe.yaml"), ["mask_crf.bilateral_compat=10,3"]).rows
    assert rows[0]["miou_crf"] == pytest.approx(metrics(finished_run, "affinity/eval/rw_crf")["miou"], abs=1e-12)
    assert rows[0]["miou"] == pytest.approx(metrics(finished_run, "affinity/eval/rw")["miou"], abs=1e-12)
    assert rows[1]["miou_crf"] != rows[0]["miou_crf"]


def test_the_labels_at_the_runs_alphas_are_the_exported_ones(finished_run):
    recipe = load_recipe(finished_run / "recipe.yaml")
    rows = run(str(finished_run / "recipe.yaml"),
               [f"cam.low_alpha={recipe.cam.low_alpha:g},1", f"cam.high_alpha={recipe.cam.high_alpha:g}"]).rows
    from psa.data import build_source

    source = build_source(recipe.data, recipe.data.eval_split)
    conf = sum(confusion_matrix(read_label_png(finished_run / "cam" / "labels" / f"{image_id}.png", "label"),
                                source.load_mask(index), len(source.classes))
               for index, image_id in enumerate(source.ids))
    quality = label_quality(conf)
    assert {key: rows[0][key] for key in quality} == pytest.approx(quality)
    assert rows[1]["fg_coverage"] != rows[0]["fg_coverage"]


def test_the_scales_at_the_runs_setting_are_its_cam_evaluation(finished_run):
    """Up to the export's float16 CAM files and its batch-norm folding."""
    recipe = load_recipe(finished_run / "recipe.yaml")
    scales = "[" + ",".join(f"{s:g}" for s in recipe.cam.scales) + "]"
    rows = run(str(finished_run / "recipe.yaml"), [f"cam.scales={scales},[1.0]"], TuneOptions(every=2)).rows
    every_other = run(str(finished_run / "recipe.yaml"), [f"cam.scales={scales},[0.5]"]).rows
    assert every_other[0]["miou"] == pytest.approx(metrics(finished_run, "cam/eval/cam")["miou"], abs=0.005)
    assert every_other[0]["best_miou"] == pytest.approx(metrics(finished_run, "cam/eval/cam")["best_sweep_miou"],
                                                        abs=0.005)
    assert rows[0]["seconds_per_image"] > 0 and rows[1]["miou"] != rows[0]["miou"]


def test_the_label_confidence_keeps_what_the_seg_dataset_keeps(finished_run):
    rows = run(str(finished_run / "recipe.yaml"), ["seg.min_confidence=0,0.6"]).rows
    assert rows[0]["kept"] == 1.0
    assert rows[0]["miou"] == pytest.approx(metrics(finished_run, "affinity/eval/rw")["miou"], abs=1e-12)
    # at 0.6: the pixels the segmentation network's dataset keeps, scored here by hand
    recipe = load_recipe(finished_run / "recipe.yaml", ["seg.min_confidence=0.6"])
    from psa.data import build_source

    source = build_source(recipe.data, recipe.data.train_split)
    dataset = SegTrainDataset(source, recipe)
    conf, kept, labelled = 0, 0, 0
    for index in range(len(source)):
        gt = source.load_mask(index)
        mask = dataset._mask(index, gt.shape)
        keep = (mask != 255) & (gt != 255)
        kept, labelled = kept + int(keep.sum()), labelled + int((gt != 255).sum())
        conf = conf + confusion_matrix(np.where(keep, mask, 255), np.where(keep, gt, 255), len(source.classes))
    assert rows[1]["kept"] == pytest.approx(kept / labelled) and rows[1]["kept"] < 1.0
    assert rows[1]["miou"] == pytest.approx(segmentation_scores(conf, source.classes)["miou"])


def test_a_grid_no_tuner_covers_is_one_line_naming_the_tuners():
    assert find_tuner(["random_walk.beta", "random_walk.logt"]).name == "walk"
    assert find_tuner(["mask_crf.bilateral_srgb"]).name == "crf"
    with pytest.raises(PsaError, match=r"no tuner varies random_walk.beta, cam.low_alpha together .*walk: "):
        find_tuner(["random_walk.beta", "cam.low_alpha"])
    assert {tuner.name for tuner in REGISTRY.all(Tuner)} >= {"walk", "crf", "labels", "scales", "confidence"}


def test_the_tool_prints_the_table_and_refuses_bad_input_in_one_line(finished_run):
    recipe = str(finished_run / "recipe.yaml")
    done = run_cli("tune", recipe, "random_walk.beta=4,8", "--every", "4")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "psa tune — walk" in done.stdout and "gt-affinity bound" in done.stdout
    bad = run_cli("tune", recipe, "run.seed=1,2")
    assert bad.returncode == 2 and "no tuner varies run.seed" in bad.stderr and "Traceback" not in bad.stderr
