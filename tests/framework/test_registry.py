"""The registry: every list of steps is read from it, the plan's order is the steps'
dependency order, and a method is a folder: the toy refinement method in ./toy_refine,
outside psa/, loaded by a recipe's `methods` key, runs through the pipeline, feeds the
segmentation network, and appears in the summary and the diagnosis, with no psa file
naming it."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, load_cam_file, run_cli, tool_command
from psa.errors import PsaError
from psa.framework.masks import MaskSource
from psa.framework.registry import REGISTRY, Registry
from psa.framework.step import Step
from psa.provenance import StepSpec, read_record

TOY = Path(__file__).resolve().parent / "toy_refine"
TOY_STEPS = ["train_cam", "export_cams", "eval_cam", "toy_seeds", "eval_toy", "train_seg", "predict_seg", "eval_seg"]


def toy_recipe(tmp_path: Path, *extra: str) -> Path:
    """A recipe file that loads the toy from its folder and trains the segmentation network on it."""
    path = tmp_path / "toy.yaml"
    path.write_text(f"_base_: {CORE_DEMO}\nmethods: [{TOY}]\nseg: {{masks: toy}}\n"
                    f"pipeline: {{steps: [{', '.join(TOY_STEPS)}]}}\n")
    return path


def pipeline(recipe: Path, run: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    done = subprocess.run(tool_command("pipeline", str(recipe), *TINY_OVERRIDES, "cam.train.epochs=1",
                                       "seg.train.epochs=1", f"run.dir={run}", *args),
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    return done, re.findall(r"✓ (\w+) in [\d.]+ s", done.stdout)


@pytest.mark.slow
def test_a_method_folder_outside_psa_feeds_the_seg_network_the_summary_and_the_diagnosis(tmp_path):
    recipe, run = toy_recipe(tmp_path), tmp_path / "run"
    done, ran = pipeline(recipe, run)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert ran == TOY_STEPS  # in dependency order: the toy after the export, before the network it feeds

    # its masks are its rule applied to the exported CAMs, image by image, computed here anew
    for path in sorted((run / "cam" / "cams").glob("*.npz")):
        cams, class_ids = load_cam_file(path)
        background = (1.0 - cams.max(axis=0)) ** 16.0 if len(cams) else np.ones(cams.shape[1:])
        expected = np.concatenate([[0], class_ids])[np.concatenate([background[None], cams]).argmax(0)]
        written = np.asarray(Image.open(run / "toy" / "masks" / f"{path.stem}.png"))
        np.testing.assert_array_equal(written, expected)
    # the segmentation network learned from them: its record's upstream is the toy's step
    assert list(read_record(run / "seg" / "train.provenance.json")["upstream"]) == ["toy_seeds"]
    summary = json.loads((run / "pipeline" / "summary.json").read_text())
    toy_miou = json.loads((run / "toy" / "eval" / "toy" / "metrics.json").read_text())["miou"]
    assert summary["CAM seeds (no walk)"]["miou"] == toy_miou and "CAM seeds (no walk)" in done.stdout

    diagnosis = subprocess.run(tool_command("diagnose", str(recipe), *TINY_OVERRIDES, f"run.dir={run}"),
                               capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert diagnosis.returncode == 0, diagnosis.stderr[-2000:]
    report = json.loads((run / "diagnose" / "diagnose.json").read_text())
    assert report["sources"]["toy"] == {"label": "CAM seeds (no walk)", "miou": toy_miou, "crf_miou": None}

    # a key of its section reruns it and its evaluation alone; further down the network trained
    # on the old masks is refused, naming the key, before anything runs
    again, ran = pipeline(recipe, run, "toy.alpha=4", "--until", "eval_toy")
    assert again.returncode == 0 and ran == ["toy_seeds", "eval_toy"], again.stdout[-2000:]
    refused, ran = pipeline(recipe, run, "toy.alpha=8")
    assert refused.returncode == 2 and ran == []
    assert "seg/model.pt was trained with other inputs: toy.alpha was 16.0, the recipe now says 8.0" in refused.stderr

    # no psa file names it
    named = [str(p) for p in (ROOT / "psa").rglob("*.py") if "toy" in p.read_text()]
    assert named == []


def test_a_method_key_without_its_method_is_unknown(tmp_path):
    path = tmp_path / "no_toy.yaml"
    path.write_text(f"_base_: {CORE_DEMO}\ntoy: {{alpha: 4}}\n")
    done = subprocess.run(tool_command("pipeline", str(path), f"run.dir={tmp_path / 'run'}"),
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "unknown recipe key 'toy'" in done.stderr and "Traceback" not in done.stderr


def test_task_step_and_source_names_come_from_the_registry(tiny_recipe):
    """The core's methods (IRN and CPS add theirs: tests/methods/)."""
    tasks = REGISTRY.tasks()
    assert [task for task in tasks if task in ("cam", "affinity", "seg")] == ["cam", "affinity", "seg"]
    assert REGISTRY.default_steps() == ["train_cam", "export_cams", "eval_cam", "train_affinity", "random_walk",
                                        "eval_rw", "eval_rw_crf", "train_seg", "predict_seg", "eval_seg"]
    assert {"cam", "rw", "seg"} <= set(REGISTRY.sources())
    assert "rw" in [source.name for source in REGISTRY.all(MaskSource)]
    with pytest.raises(PsaError, match=rf"recipe key 'task' must be one of {', '.join(tasks)}, got 'segg' "
                                       r"\(did you mean 'seg'\?\)"):
        REGISTRY.check_recipe(tiny_recipe("task=segg"))
    with pytest.raises(PsaError, match=r"'pipeline.steps' has unknown step 'eval_rw_cfr' \(did you mean 'eval_rw_crf'"):
        REGISTRY.check_recipe(tiny_recipe("pipeline.steps=[train_cam,eval_rw_cfr]"))


def test_the_plan_puts_each_step_after_what_it_is_made_from(tiny_recipe):
    steps = ["train_seg", "random_walk", "train_affinity", "export_cams", "train_cam"]
    order = [step.name for step in REGISTRY.selected(tiny_recipe(f"pipeline.steps=[{','.join(steps)}]"))]
    assert order == ["train_cam", "export_cams", "train_affinity", "random_walk", "train_seg"]
    gt = tiny_recipe("seg.labels=gt", f"pipeline.steps=[{','.join(steps)}]")
    assert REGISTRY.get("train_seg").spec.upstream(gt) == ()  # made from nothing: its method's ORDER places it
    assert [step.name for step in REGISTRY.selected(gt)] == order


def test_a_bad_task_is_one_line_from_the_tool(tmp_path):
    done = run_cli("train", str(CORE_DEMO), "task=nope", f"run.dir={tmp_path / 'run'}")
    assert done.returncode == 2 and "recipe key 'task' must be one of" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


def _step(name: str, *upstream: Step) -> Step:
    return Step(name, StepSpec(reads=(), record=lambda r: None, upstream=lambda r: upstream), lambda r, rep: None)


def test_ordering_puts_each_step_after_its_upstream_then_by_method_order():
    registry = Registry()
    with registry.registering("late", 30):
        c = registry.register(_step("c"))
    with registry.registering("early", 10):
        a = registry.register(_step("a"))
        b = registry.register(_step("b", c))  # made from c: after it, though its method comes first
    assert registry.names() == ["a", "b", "c"]  # registry order: by method, then registration
    assert [s.name for s in registry.ordered(None)] == ["a", "c", "b"]
    assert [s.name for s in registry.ordered(None, [a, b])] == ["a", "b"]
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(_step("b"))
    loop_a = _step("x")
    object.__setattr__(loop_a, "spec", dataclasses.replace(loop_a.spec, upstream=lambda r: (loop_b,)))
    loop_b = _step("y", loop_a)
    with registry.registering("early", 10):
        registry.register(loop_a)
        registry.register(loop_b)
    with pytest.raises(PsaError, match="x, y are each other's upstream"):
        registry.ordered(None)


def test_every_registered_step_has_a_record_under_the_run_folder(tiny_recipe, tmp_path):
    recipe = tiny_recipe(run_dir=tmp_path / "run")
    for step in REGISTRY:
        assert step.spec.record(recipe).is_relative_to(tmp_path / "run"), step.name
        assert (step.training is None) == (step.spec.weights is None), step.name
        assert step.method, step.name
    # a copy of the recipe with another run.dir moves every record with it
    moved = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, dir=str(tmp_path / "other")))
    assert all(step.spec.record(moved).is_relative_to(tmp_path / "other") for step in REGISTRY)
