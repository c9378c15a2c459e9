"""docs/custom-data.md, walked: a mask-free data set of the user's own (class names in
image_labels.txt) through the default pipeline, then a folder of photos (one of them corrupt)
through tools/predict.py; and what a rerun does when a label line or an image changes.

One finished run is made per module (8 + 4 tiny images, one step per network); every test
that edits the data set restores it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from conftest import CORE_DEMO, ROOT, Recording, TINY_OVERRIDES, tool_command
from psa import load_recipe
from psa.data import SyntheticSource
from psa.engine.report import Reporter
from psa.errors import PsaError
from psa.io import save_label_png
from psa.provenance import Provenance, read_record
from psa.framework.registry import REGISTRY

DEMO = CORE_DEMO
CLASSES = ["background", "cross", "disc", "triangle", "bars"]  # line 0: the background
SPLITS = {"train": 8, "val": 4}
EVALUATIONS = [s.name for s in REGISTRY if s.default and s.evaluates is not None]
WORK = [s.name for s in REGISTRY if s.default and s.evaluates is None]


def write_data_set(root: Path) -> None:
    """The guide's tree: JPEGImages/, classes.txt, image_labels.txt (by name), one list per
    split, and no masks."""
    lines = []
    for split, count in SPLITS.items():
        source = SyntheticSource(split, num_images=count, image_size=48, num_classes=4, max_objects=1)
        for index, image_id in enumerate(source.ids):
            path = root / "JPEGImages" / f"{image_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(source.load_image(index)).save(path, quality=95)
            lines.append(f"{image_id} " + " ".join(CLASSES[k] for k in source.image_labels(index)))
        listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("\n".join(source.ids) + "\n")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "image_labels.txt").write_text("\n".join(lines) + "\n")


def overrides(root: Path, run: Path) -> list[str]:
    return [*TINY_OVERRIDES, "data.kind=voc", f"data.root={root}", "data.train_split=train",
            "data.eval_split=train", "data.val_split=val", f"run.dir={run}", "cam.scales=[1.0]",
            "cam.train.epochs=1", "affinity.train.epochs=1", "seg.train.epochs=1", "cam.train.lr=0.001",
            "random_walk.logt=0", "eval.crf_workers=1",
            "pipeline.steps=null"]  # the registry's default steps, as a recipe without pipeline.steps


@pytest.fixture(scope="module")
def guide(tmp_path_factory):
    """(data root, run dir, overrides, the pipeline's result, its reporter's events)."""
    where = tmp_path_factory.mktemp("guide")
    root, run = where / "my_data", where / "runs" / "my_data"
    write_data_set(root)
    args = overrides(root, run)
    reporter = Recording()
    result = __import__("psa.pipeline", fromlist=["run"]).run(load_recipe(DEMO, args), reporter)
    return root, run, args, result, reporter.events


@pytest.fixture
def label_file(guide):
    """image_labels.txt, restored after the test."""
    path = guide[0] / "image_labels.txt"
    text = path.read_text()
    yield path
    path.write_text(text)


def run_tool(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(tool_command(*args), capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


# ----------------------------------------------------------------------------- the guide


@pytest.mark.slow
def test_the_guide_runs_a_mask_free_data_set_and_predicts_a_folder(guide, tmp_path):
    root, run, args, result, events = guide
    assert result.ran == WORK and result.skipped == []
    assert result.left_out == EVALUATIONS
    # said once, before anything ran
    said = [message for kind, message in events if kind == "log" and "no ground truth" in message]
    assert len(said) == 1 and events.index(("log", said[0])) < events.index(("start", "train_cam"))
    assert "eval_cam, eval_rw, eval_rw_crf (split 'train'); eval_seg (split 'val')" in said[0]
    # the summary lists what ran: the masks each per-image step wrote
    expected = {"CAMs and confident labels": {"outputs": 8, "split": "train"},
                "pseudo masks (random walk)": {"outputs": 8, "split": "train"},
                "predicted masks (seg network)": {"outputs": 4, "split": "val"}}
    assert result.summary == expected
    assert json.loads((run / "pipeline" / "summary.json").read_text()) == expected
    pseudo = sorted((run / "affinity" / "pseudo").glob("*.png"))
    assert len(pseudo) == 8
    assert all(set(np.unique(np.asarray(Image.open(p)))) <= set(range(len(CLASSES))) for p in pseudo)
    assert (run / "seg" / "model.pt").is_file()

    # predict a folder of photos, one of them corrupt: the others are written, that one is named
    photos, out = tmp_path / "photos", tmp_path / "masks"
    photos.mkdir()
    for image_id in ("syn_val_00000", "syn_val_00001", "syn_val_00002"):
        shutil.copy(root / "JPEGImages" / f"{image_id}.jpg", photos / f"{image_id}.jpg")
    (photos / "broken.jpg").write_bytes((root / "JPEGImages" / "syn_val_00003.jpg").read_bytes()[:200])
    done = run_tool("predict", str(DEMO), *args, "--images", str(photos), "--out", str(out), "--overlay",
                    "--probabilities")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: 1 of 4 images could not be read and were skipped") and \
        f"cannot read image {photos / 'broken.jpg'}" in lines[0], lines[0]
    good = ["syn_val_00000", "syn_val_00001", "syn_val_00002"]
    assert sorted(p.stem for p in out.glob("*.png")) == good
    assert sorted(p.stem for p in (out / "overlay").glob("*.png")) == good
    shares = json.loads((out / "classes" / "syn_val_00000.json").read_text())
    assert sum(c["share"] for c in shares["classes"]) == pytest.approx(1.0, abs=1e-4)
    assert {c["name"] for c in shares["classes"]} <= set(CLASSES)
    with np.load(out / "probabilities" / "syn_val_00000.npz") as saved:
        assert saved["probabilities"].shape == (5, 48, 48) and saved["probabilities"].dtype == np.float16
        assert saved["classes"].tolist() == CLASSES
        assert (saved["probabilities"].astype(np.float32).argmax(0) ==
                np.asarray(Image.open(out / "syn_val_00000.png"))).mean() > 0.99
    # the records are inside OUT: nothing was written beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks", "photos"]
    assert read_record(out / "predict.provenance.json")["complete"] is False  # a rerun retries broken.jpg
    assert list(json.loads((out / "predict_done.json").read_text())["failed"]) == ["broken"]


@pytest.mark.slow
def test_an_unchanged_rerun_skips_everything_without_reading_an_image(guide, monkeypatch):
    import psa.data.base
    import psa.pipeline
    from psa.data import VocSource

    def refuse(*args, **kwargs):
        raise AssertionError("an image was read on the skip path")

    monkeypatch.setattr(psa.data.base, "read_rgb", refuse)
    monkeypatch.setattr(VocSource, "load_image", refuse)
    monkeypatch.setattr(VocSource, "load_mask", refuse)
    result = psa.pipeline.run(load_recipe(DEMO, guide[2]), Reporter())
    assert result.ran == [] and result.skipped == WORK and result.left_out == EVALUATIONS


# ----------------------------------------------------------------------------- a changed data set


def fingerprints_on_disk(recipe) -> dict:
    return {name: read_record(REGISTRY.get(name).spec.record(recipe))["fingerprint"] for name in WORK}


def fingerprints_asked(recipe) -> dict:
    prov = Provenance(recipe)
    return {name: prov.record(REGISTRY.get(name))["fingerprint"] for name in WORK}


@pytest.mark.slow
def test_an_edited_label_line_reruns_everything_downstream_and_refuses_the_finished_training(guide, label_file):
    import psa.pipeline

    recipe = load_recipe(DEMO, guide[2])
    assert fingerprints_asked(recipe) == fingerprints_on_disk(recipe)
    lines = label_file.read_text().splitlines()
    first = lines[0].split()
    other = next(name for name in CLASSES[1:] if name not in first[1:])
    label_file.write_text("\n".join([" ".join([*first, other]), *lines[1:]]) + "\n")
    recipe = load_recipe(DEMO, guide[2])
    # every stage downstream of the labels (CAMs, pseudo masks, the networks, predictions)
    asked, recorded = fingerprints_asked(recipe), fingerprints_on_disk(recipe)
    assert [name for name in WORK if asked[name] == recorded[name]] == []
    # the finished classifier is not retrained silently: one line naming the label file
    with pytest.raises(PsaError) as info:
        psa.pipeline.run(recipe, Reporter())
    message = str(info.value)
    assert message.startswith(f"{guide[1] / 'cam' / 'model.pt'} was trained with other inputs: "
                              f"data.labels[train] changed: '{label_file}: 8 images, sha256 ")
    assert "\n" not in message and f"delete {guide[1] / 'cam'} to retrain" in message

    # a class named by its index instead of its name is the same label: nothing to redo
    renamed = [" ".join([tokens[0], *(str(CLASSES.index(t)) for t in tokens[1:])])
               for tokens in (line.split() for line in lines)]
    assert renamed != lines
    label_file.write_text("\n".join(renamed) + "\n")
    assert fingerprints_asked(load_recipe(DEMO, guide[2])) == recorded


@pytest.mark.slow
def test_a_changed_image_or_a_new_mask_changes_the_records(guide, tmp_path):
    root = guide[0]
    image = root / "JPEGImages" / "syn_train_00003.jpg"
    before = fingerprints_asked(load_recipe(DEMO, guide[2]))
    stat, original = image.stat(), image.read_bytes()
    try:
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the same bytes, copied anew
        assert fingerprints_asked(load_recipe(DEMO, guide[2])) == before
        image.write_bytes(original + b"\0")  # an edited photo
        after = fingerprints_asked(load_recipe(DEMO, guide[2]))
        assert [name for name in WORK if after[name] == before[name]] == []
        assert "data.images[train]" in read_record(REGISTRY.get("train_cam").spec.record(
            load_recipe(DEMO, guide[2])))["inputs"]
    finally:
        image.write_bytes(original)
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert fingerprints_asked(load_recipe(DEMO, guide[2])) == before

    # masks: a split gains evaluations once every image has one, and their content counts
    import psa.pipeline

    mask = root / "SegmentationClass" / "syn_val_00000.png"
    try:
        recipe = load_recipe(DEMO, guide[2])
        for index, image_id in enumerate(SyntheticSource("val", num_images=4, image_size=48, num_classes=4,
                                                         max_objects=1).ids):
            save_label_png(root / "SegmentationClass" / f"{image_id}.png", np.zeros((48, 48), np.uint8))
            if index == 2:  # three of four: still nothing to score
                assert psa.pipeline.unscorable(recipe, REGISTRY.selected(recipe))["val"] == ["eval_seg"]
        recipe = load_recipe(DEMO, guide[2])
        assert psa.pipeline.unscorable(recipe, REGISTRY.selected(recipe)) == {"train": EVALUATIONS[:3]}
        first = Provenance(recipe).record(REGISTRY.get("eval_seg"))["fingerprint"]
        save_label_png(mask, np.ones((48, 48), np.uint8))
        assert Provenance(load_recipe(DEMO, guide[2])).record(REGISTRY.get("eval_seg"))["fingerprint"] != first
    finally:
        shutil.rmtree(root / "SegmentationClass", ignore_errors=True)


# ----------------------------------------------------------------------------- the tools around it


@pytest.mark.slow
def test_rerunning_a_finished_training_says_so_and_shows_its_last_loss(guide):
    run = guide[1]
    weights = run / "seg" / "model.pt"
    stamp = weights.stat().st_mtime_ns
    done = run_tool("train", str(DEMO), *guide[2], "task=seg")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seg is already trained under this recipe: nothing to do" in done.stdout
    loss = read_record(run / "seg" / "train.provenance.json")["final_loss"]
    assert isinstance(loss, float) and f"{loss:.4f}" in done.stdout
    assert "nan" not in done.stdout.lower()
    assert weights.stat().st_mtime_ns == stamp  # nothing rewritten


@pytest.mark.slow
def test_print_config_shows_the_classes_and_stays_loadable(guide):
    done = run_tool("train", str(DEMO), *guide[2], "--print-config")
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["data"]["root"] == str(guide[0])
    assert f"# classes (5, index 0 = background), from {guide[0] / 'classes.txt'}:" in done.stdout
    assert "#   0 background, 1 cross, 2 disc, 3 triangle, 4 bars" in done.stdout


@pytest.mark.slow
def test_a_finished_run_sweeps_from_its_own_recipe_file(guide, monkeypatch):
    """docs/custom-data.md: `tools/sweep.py runs/X/recipe.yaml key=...` reuses the trainings."""
    import psa.framework.training
    import psa.sweep

    def no_training(*args, **kwargs):
        raise AssertionError("the sweep trained a network")

    monkeypatch.setattr(psa.framework.training, "train", no_training)
    run = guide[1]
    assert load_recipe(run / "recipe.yaml") == load_recipe(DEMO, guide[2])
    rows = psa.sweep.run(str(run / "recipe.yaml"), ["random_walk.beta=4,8"], Reporter(),
                         until="random_walk").rows
    assert [row["ran"] for row in rows] == [["random_walk"], []]  # beta 8 is the run itself
    assert len(list((Path(rows[0]["dir"]) / "affinity" / "pseudo").glob("*.png"))) == 8
