"""The training engine on each stage: losses drop, resume continues exactly, outputs exist."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import pytest

from conftest import assert_resumed_like_straight, stage_dir

from psa.data import build_source
from psa.engine.checkpoints import WEIGHTS_FILE, complete_checkpoints, load_weights
from psa.framework.training import train_task
from psa.io import save_label_png


def _train(recipe, task):
    return train_task(recipe, task)


def _early_late(losses, n=4):
    return float(np.mean(losses[:n])), float(np.mean(losses[-n:]))


def test_cam_training_lowers_the_loss(tiny_recipe):
    recipe = tiny_recipe("cam.train.epochs=12")
    result = _train(recipe, "cam")
    assert result.steps == 24 and len(result.losses) == 24
    early, late = _early_late(result.losses)
    assert late < early - 0.05, result.losses
    state, meta = load_weights(result.weights, "cam", "resnet10t")
    assert meta["classes"][0] == "background" and meta["steps"] == 24
    assert any(k.startswith("classifier") for k in state)
    # the run folder records what ran
    run_info = (stage_dir(recipe, "cam") / "run_info.json").read_text()
    assert '"world_size": 1' in run_info
    assert (stage_dir(recipe, "cam").parent / "recipe.yaml").is_file()


def test_resume_continues_to_the_same_weights(tiny_recipe, tmp_path):
    common = ("run.deterministic=true", "cam.train.epochs=3", "cam.train.checkpoint_every=2")
    straight = tiny_recipe(*common, run_dir=tmp_path / "straight")
    reference = _train(straight, "cam")

    split = tiny_recipe(*common, "cam.train.max_steps=3", run_dir=tmp_path / "split")
    first = _train(split, "cam")
    assert first.steps == 3
    assert [p.name for p in complete_checkpoints(stage_dir(split, "cam") / "checkpoints")][-1] == "step_00000003"
    second = _train(dataclasses.replace(split, cam=dataclasses.replace(
        split.cam, train=dataclasses.replace(split.cam.train, max_steps=0))), "cam")
    assert second.resumed_from == 3 and second.steps == reference.steps == 6
    assert_resumed_like_straight(reference, second, "cam")


def _write_confident_labels_from_gt(recipe):
    """Stand-in for the CAM export: gt masks with an uncertain band, as confident labels."""
    source = build_source(recipe.data, recipe.data.train_split)
    for index, image_id in enumerate(source.ids):
        mask = source.load_mask(index).copy()
        mask[:, : mask.shape[1] // 6] = 255
        save_label_png(stage_dir(recipe, "cam") / "labels" / f"{image_id}.png", mask)


def test_affinity_training_lowers_the_loss(tiny_recipe):
    recipe = tiny_recipe("affinity.train.epochs=10", "affinity.train.lr=0.02")
    _write_confident_labels_from_gt(recipe)
    result = _train(recipe, "affinity")
    early, late = _early_late(result.losses)
    assert late < early, result.losses
    _, meta = load_weights(result.weights, "affinity", "resnet10t")
    assert meta["radius"] == 5


def test_seg_training_on_ground_truth_lowers_the_loss(tiny_recipe):
    recipe = tiny_recipe("seg.labels=gt", "seg.train.epochs=10", "seg.train.lr=0.01")
    result = _train(recipe, "seg")
    early, late = _early_late(result.losses)
    assert late < early, result.losses
    assert (stage_dir(recipe, "seg") / WEIGHTS_FILE).is_file()


def test_too_little_free_disk_stops_before_anything_is_written(tiny_recipe):
    import shutil

    from psa.errors import PsaError
    from conftest import export_cams

    recipe = tiny_recipe("run.min_free_mb=1000000000")  # a petabyte: more than any test disk
    free_mb = shutil.disk_usage("/").free // 2**20
    assert free_mb < 1000000000
    with pytest.raises(PsaError, match=r"MB free on the disk of .*run.min_free_mb"):
        _train(recipe, "cam")
    assert not (stage_dir(recipe, "cam")).exists()
    # the inference stages check too, before creating their output folders
    trained = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, min_free_mb=0))
    smoke = dataclasses.replace(trained, cam=dataclasses.replace(
        trained.cam, train=dataclasses.replace(trained.cam.train, max_steps=1)))
    _train(smoke, "cam")
    with pytest.raises(PsaError, match="run.min_free_mb"):
        export_cams(dataclasses.replace(smoke, run=recipe.run))  # the recipe that trained it, little disk
    assert not (stage_dir(recipe, "cam") / "cams").exists()


def _with_side_stream(builder):
    """The CAM task plus a second stream of the same images whose loss is added (as a
    semi-supervised task adds its unlabelled batch)."""
    from psa.engine.side_stream import SideData
    from psa.framework.classifier import cam_loss

    def build(recipe):
        spec = builder(recipe)
        spec.side = {"extra": SideData(spec.dataset, batch_size=4, key="test.extra_batch")}

        def loss_fn(model, batch):
            assert batch["extra"]["image"].shape[0] == 4
            main, _ = cam_loss(model, batch)
            side, _ = cam_loss(model, batch["extra"])
            return main + side, {"side": side.detach()}

        spec.loss_fn = loss_fn
        return spec

    return build


def test_resume_with_a_side_stream_continues_to_the_same_weights(tiny_recipe, tmp_path):
    import json

    from psa.methods.cam.training import build_cam_task

    # 16 images, batch 8: 2 steps an epoch; the side stream (batch 4) has 4 batches an epoch,
    # so the resumed run must re-enter the side stream mid-epoch at the right batch
    common = ("run.deterministic=true", "cam.train.epochs=3", "cam.train.checkpoint_every=1")
    straight = tiny_recipe(*common, run_dir=tmp_path / "straight")
    reference = train_task(straight, "cam", build=_with_side_stream(build_cam_task))
    split = tiny_recipe(*common, "cam.train.max_steps=3", run_dir=tmp_path / "split")
    train_task(split, "cam", build=_with_side_stream(build_cam_task))
    resumed_recipe = dataclasses.replace(split, cam=dataclasses.replace(
        split.cam, train=dataclasses.replace(split.cam.train, max_steps=0)))
    second = train_task(resumed_recipe, "cam", build=_with_side_stream(build_cam_task))
    assert second.resumed_from == 3 and second.steps == reference.steps == 6
    assert_resumed_like_straight(reference, second, "cam")
    info = json.loads((stage_dir(split, "cam") / "run_info.json").read_text())
    assert info["batch"] == {"global": 8, "per_process": 8, "extra": {"global": 4, "per_process": 4}}


@pytest.mark.slow
def test_channels_last_trains_the_same_model_in_nhwc(tiny_recipe, tmp_path):
    """run.channels_last is opt-in: same first-step loss (same network, another memory
    layout), weights in NHWC during training, checkpoints and model.pt still load."""
    import dataclasses

    from psa.engine.checkpoints import load_weights
    from psa.framework.training import train_task
    from psa.methods.cam.training import build_cam_task

    models = {}

    def capturing(name):
        def build(recipe):
            spec = build_cam_task(recipe)
            models[name] = spec.model
            return spec
        return build

    results = {}
    for name, flag in (("nchw", "false"), ("nhwc", "true")):
        recipe = tiny_recipe(f"run.channels_last={flag}", "cam.train.max_steps=2", "model.freeze_bn=true",
                             run_dir=tmp_path / name)
        results[name] = train_task(recipe, "cam", build=capturing(name))
    weight = models["nhwc"].backbone.body.state_dict()["conv1.0.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert models["nchw"].backbone.body.state_dict()["conv1.0.weight"].is_contiguous()
    assert results["nhwc"].losses[0] == pytest.approx(results["nchw"].losses[0], rel=1e-4)
    state, _ = load_weights(results["nhwc"].weights, "cam", "resnet10t")
    assert state["classifier.weight"].shape == models["nchw"].classifier.weight.shape
