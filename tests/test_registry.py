"""The stage registry: every list of steps is read from it, and a new step is one
registration made from outside psa (here, this test module), which the pipeline plans and
runs, provenance checks, the evaluation scores and the summary and sweep tables show."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from psa.engine.report import Reporter
from psa.errors import PsaError
from psa.io import save_label_png
from psa.layout import RunLayout
from psa.ops.cam import background_score
from psa.pipeline import run, summary_rows
from psa.provenance import StageSpec
from psa.stages.common import items_for
from psa.stages.evaluate import Predictions, evaluate, evaluation_step
from psa.stages.export_cams import load_cam_file
from psa.stages.per_image import PerImageJob, run_per_image
from psa.stages.registry import REGISTRY, Registry, Step, SummaryRow
from psa.sweep import columns

# ----------------------------------------------------------------------------- a toy method
# The walk's seeds without the walk: each pixel takes the strongest of the CAMs and the
# background score (1 - max CAM) ** random_walk.alpha. Everything below is what a method's
# own module would hold; no psa file knows of it.

TOY = "toy_seeds"


def toy_folder(recipe):
    return RunLayout.of(recipe).stage("toy") / "seeds"


TOY_SPEC = StageSpec(
    reads=("random_walk.alpha",), ignores=("run.seed",),
    record=lambda r: RunLayout.of(r).stage("toy").record(TOY),
    outputs=lambda r: [toy_folder(r)],
    splits=lambda r: [r.data.eval_split],
    upstream=lambda r: ("export_cams",),
)


def toy_labels(cams: np.ndarray, class_ids: np.ndarray, alpha: float) -> np.ndarray:
    scores = np.concatenate([background_score(cams, alpha)[None], cams])
    return np.concatenate([[0], class_ids]).astype(np.uint8)[scores.argmax(0)]


def run_toy(recipe, reporter):
    def compute(model, item, paths, accelerator):
        cams, class_ids = load_cam_file(RunLayout.of(recipe).cams / f"{item.image_id}.npz")
        save_label_png(paths["seeds"], toy_labels(cams, class_ids, recipe.random_walk.alpha))

    job = PerImageJob(TOY, "toy seeds", TOY_SPEC, items_for(recipe, [recipe.data.eval_split]),
                      lambda item: {"seeds": toy_folder(recipe) / f"{item.image_id}.png"}, [toy_folder(recipe)],
                      load_model=lambda accelerator: None, compute=compute)
    return run_per_image(recipe, job, REGISTRY.provenance(recipe), reporter)


TOY_PREDICTIONS = Predictions("toy", stage="toy", step=TOY, labels=toy_folder)


@pytest.fixture
def toy_method():
    REGISTRY.register(Step(TOY, TOY_SPEC, run_toy, task="cam"), after="eval_cam")
    REGISTRY.register(evaluation_step("eval_toy", TOY_PREDICTIONS, task="cam",
                                      rows=(SummaryRow("toy seeds", "seeds"),)), after=TOY)
    yield
    REGISTRY.unregister("eval_toy")
    REGISTRY.unregister(TOY)


STEPS = "pipeline.steps=[train_cam,export_cams,toy_seeds,eval_toy]"


def test_a_step_registered_outside_psa_runs_through_the_pipeline_provenance_and_evaluation(
        toy_method, tiny_recipe, tmp_path):
    recipe = tiny_recipe(STEPS, "cam.train.epochs=1", "random_walk.alpha=4", run_dir=tmp_path / "run")
    first = run(recipe, Reporter())
    assert first.ran == ["train_cam", "export_cams", TOY, "eval_toy"]

    # the toy's masks are its rule applied to the exported CAMs, image by image
    items = items_for(recipe, [recipe.data.eval_split])
    confusion_total = 0
    for item in items:
        cams, class_ids = load_cam_file(RunLayout.of(recipe).cams / f"{item.image_id}.npz")
        written = np.asarray(Image.open(toy_folder(recipe) / f"{item.image_id}.png"))
        np.testing.assert_array_equal(written, toy_labels(cams, class_ids, 4.0))
        gt = item.source.load_mask(item.index)
        confusion_total += int(((written == gt) & (gt != 255)).sum())
    # its evaluation is scored and shown in the summary under the row it registered
    metrics = evaluate(recipe, "toy")
    assert metrics["images"] == len(items) and metrics["split"] == recipe.data.eval_split
    assert metrics["pixel_acc"] == pytest.approx(
        confusion_total / sum(int((it.source.load_mask(it.index) != 255).sum()) for it in items))
    assert summary_rows(recipe)["toy seeds"]["miou"] == metrics["miou"]
    assert "eval_toy" in [c.step for c in columns()] and "toy" in REGISTRY.sources()

    # rerun like make: nothing runs; a key only the toy reads reruns the toy and its evaluation
    assert run(recipe, Reporter()).ran == []
    changed = tiny_recipe(STEPS, "cam.train.epochs=1", "random_walk.alpha=8", run_dir=tmp_path / "run")
    assert run(changed, Reporter()).ran == [TOY, "eval_toy"]

    # upstream outputs made with other inputs: the toy refuses them, naming the key
    stale = tiny_recipe("pipeline.steps=[toy_seeds]", "cam.train.epochs=1", "random_walk.alpha=8",
                        "cam.scales=[1.0]", run_dir=tmp_path / "run")
    with pytest.raises(PsaError, match=r"made with other inputs than toy_seeds needs: cam.scales was"):
        run(stale, Reporter())


def test_without_the_registration_the_step_is_unknown(tiny_recipe):
    with pytest.raises(PsaError, match=r"recipe key 'pipeline.steps' has unknown step 'toy_seeds'"):
        run(tiny_recipe(STEPS), Reporter())


def test_task_and_step_names_come_from_the_registry(tiny_recipe):
    assert REGISTRY.tasks() == ["cam", "affinity", "irn", "seg", "cps"]
    assert REGISTRY.default_steps() == ["train_cam", "export_cams", "eval_cam", "train_affinity", "random_walk",
                                        "eval_rw", "eval_rw_crf", "train_seg", "predict_seg", "eval_seg"]
    assert list(REGISTRY.sources()) == ["cam", "rw", "irn", "seg", "cps"]
    with pytest.raises(PsaError, match=r"recipe key 'task' must be one of cam, affinity, irn, seg, cps, got 'segg' "
                                       r"\(did you mean 'seg'\?\)"):
        REGISTRY.check_recipe(tiny_recipe("task=segg"))
    with pytest.raises(PsaError, match=r"'pipeline.steps' has unknown step 'eval_rw_cfr' \(did you mean 'eval_rw_crf'"):
        REGISTRY.check_recipe(tiny_recipe("pipeline.steps=[train_cam,eval_rw_cfr]"))


def test_a_bad_task_is_one_line_from_the_tool(tmp_path):
    import subprocess

    from conftest import ROOT, tool_command

    done = subprocess.run(tool_command("train", str(ROOT / "recipes" / "demo.yaml"), "task=nope",
                                       f"run.dir={tmp_path / 'run'}"), capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "recipe key 'task' must be one of" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


def test_register_orders_by_after_and_refuses_a_second_name():
    registry = Registry()

    def step(name):
        return Step(name, StageSpec(reads=(), record=lambda r: None), lambda r, rep: None)

    registry.register(step("a"))
    registry.register(step("c"))
    registry.register(step("b"), after="a")
    assert registry.names() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(step("b"))
    registry.unregister("b")
    assert registry.names() == ["a", "c"]


def test_every_registered_step_has_a_record_under_the_run_folder(tiny_recipe, tmp_path):
    recipe = tiny_recipe(run_dir=tmp_path / "run")
    for step in REGISTRY:
        assert step.spec.record(recipe).is_relative_to(tmp_path / "run"), step.name
        assert step.training is None or step.spec.training, step.name
    # a copy of the recipe with another run.dir moves every record with it
    moved = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, dir=str(tmp_path / "other")))
    assert all(step.spec.record(moved).is_relative_to(tmp_path / "other") for step in REGISTRY)
