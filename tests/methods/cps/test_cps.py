"""Cross Pseudo Supervision: the loss against hand computations, the CutMix boxes, training,
resume, prediction with the pair, and real 2-process DDP."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, TINY_OVERRIDES, assert_resumed_like_straight, stage_dir
from psa import load_recipe
from psa.constants import IGNORE_INDEX
from psa.engine.checkpoints import load_weights
from psa.framework.training import train_task
from psa.errors import PsaError
from psa.methods.cps.model import CpsPredictor
from psa.methods.cps.training import box_masks, cps_loss

# ----------------------------------------------------------------- the loss, by hand

CLASSES = 3


class PixelPair(nn.Module):
    """Two per-pixel linear "networks" (1×1 convs) that remember what they were given."""

    def __init__(self, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.first = nn.Conv2d(3, CLASSES, 1, bias=False)
        self.second = nn.Conv2d(3, CLASSES, 1, bias=False)
        with torch.no_grad():
            self.first.weight.copy_(torch.randn(CLASSES, 3, 1, 1, generator=generator) * 3)
            self.second.weight.copy_(torch.randn(CLASSES, 3, 1, 1, generator=generator) * 3)
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.first(x), self.second(x)


def _scores(weight: torch.Tensor, pixel: list[float]) -> list[float]:
    w = weight.view(CLASSES, 3).tolist()
    return [sum(w[k][c] * pixel[c] for c in range(3)) for k in range(CLASSES)]


def _ce(scores: list[float], target: int) -> float:
    return math.log(sum(math.exp(s) for s in scores)) - scores[target]


def _argmax(scores: list[float]) -> int:
    return max(range(CLASSES), key=lambda k: scores[k])


def _pixel(images: torch.Tensor, n: int, y: int, x: int) -> list[float]:
    return images[n, :, y, x].tolist()


def _batch(seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    labeled_images = torch.randn(2, 3, 2, 3, generator=generator)
    masks = torch.tensor([[[0, 1, 2], [IGNORE_INDEX, 1, 0]],
                          [[2, 2, IGNORE_INDEX], [0, 1, 1]]])
    images = torch.randn(3, 3, 2, 3, generator=generator)
    valid = torch.ones(3, 2, 3, dtype=torch.bool)
    valid[1, 0, 2] = False  # a padded pixel: no pseudo label there
    return {"image": images, "valid": valid, "labeled": {"image": labeled_images, "mask": masks}}


def _supervised_by_hand(model: PixelPair, batch: dict) -> tuple[float, float]:
    images, masks = batch["labeled"]["image"], batch["labeled"]["mask"]
    terms = {"first": [], "second": []}
    for n in range(images.shape[0]):
        for y in range(2):
            for x in range(3):
                target = int(masks[n, y, x])
                if target == IGNORE_INDEX:
                    continue
                for name in terms:
                    terms[name].append(_ce(_scores(getattr(model, name).weight, _pixel(images, n, y, x)), target))
    return sum(terms["first"]) / len(terms["first"]), sum(terms["second"]) / len(terms["second"])


def test_cps_loss_is_supervised_ce_plus_lambda_times_each_network_learning_the_others_argmax():
    model, batch = PixelPair(), _batch()
    loss, scalars = cps_loss(model, batch, weight=1.5)
    sup_first, sup_second = _supervised_by_hand(model, batch)
    images, valid = batch["image"], batch["valid"]
    first_learns, second_learns, disagreements = [], [], 0
    for n in range(3):
        for y in range(2):
            for x in range(3):
                if not valid[n, y, x]:
                    continue
                s1 = _scores(model.first.weight, _pixel(images, n, y, x))
                s2 = _scores(model.second.weight, _pixel(images, n, y, x))
                first_learns.append(_ce(s1, _argmax(s2)))
                second_learns.append(_ce(s2, _argmax(s1)))
                disagreements += _argmax(s1) != _argmax(s2)
    assert disagreements > 0  # else the two directions could be swapped unnoticed
    cross = sum(first_learns) / len(first_learns) + sum(second_learns) / len(second_learns)
    expected = sup_first + sup_second + 1.5 * cross
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert scalars["sup_first"].item() == pytest.approx(sup_first, rel=1e-5)
    assert scalars["sup_second"].item() == pytest.approx(sup_second, rel=1e-5)
    assert scalars["cps"].item() == pytest.approx(cross, rel=1e-5)
    # one forward with gradients, the labelled images first
    assert len(model.inputs) == 1
    assert torch.equal(model.inputs[0], torch.cat([batch["labeled"]["image"], images]))


def test_the_targets_carry_no_gradient():
    """Each network's gradient from the cross term is that of CE against fixed labels."""
    model, batch = PixelPair(), _batch()
    loss, _ = cps_loss(model, batch, weight=1.0)
    loss.backward()
    reference = PixelPair()
    images = torch.cat([batch["labeled"]["image"], batch["image"]])
    with torch.no_grad():
        fixed = [out[2:].argmax(1).masked_fill(~batch["valid"], IGNORE_INDEX) for out in reference(images)]
    first, second = reference(images)
    ce = nn.functional.cross_entropy
    total = (ce(first[:2], batch["labeled"]["mask"], ignore_index=IGNORE_INDEX)
             + ce(second[:2], batch["labeled"]["mask"], ignore_index=IGNORE_INDEX)
             + ce(first[2:], fixed[1], ignore_index=IGNORE_INDEX) + ce(second[2:], fixed[0], ignore_index=IGNORE_INDEX))
    total.backward()
    torch.testing.assert_close(model.first.weight.grad, reference.first.weight.grad)
    torch.testing.assert_close(model.second.weight.grad, reference.second.weight.grad)


def test_cutmix_mixes_the_images_and_the_other_networks_predictions_on_the_unmixed_images():
    model, batch = PixelPair(seed=3), _batch(seed=4)
    images, valid = batch["image"], batch["valid"]
    boxes = torch.zeros(3, 2, 3, dtype=torch.bool)
    boxes[0, :, :2] = True       # image 0 takes its left two columns from image 1
    boxes[1, 0, :2] = True       # image 1 takes (0,0), (0,1) from image 2 and keeps its padded (0,2)
    boxes[2, 1, 2] = True        # image 2 takes (1,2) from image 0 (wraps around)
    loss, scalars = cps_loss(model, batch, weight=0.5, cutmix_area=0.25, boxes=boxes)

    def source(n, y, x):  # which unmixed image pixel (n, y, x) of the mixed batch comes from
        return (n + 1) % 3 if boxes[n, y, x] else n

    # the first call, without gradients, sees the unmixed images; the second the mixed ones
    assert len(model.inputs) == 2 and torch.equal(model.inputs[0], images)
    mixed = model.inputs[1][2:]
    first_learns, second_learns = [], []
    for n in range(3):
        for y in range(2):
            for x in range(3):
                m = source(n, y, x)
                assert mixed[n, :, y, x].tolist() == images[m, :, y, x].tolist()
                if not valid[m, y, x]:
                    continue
                plain = _pixel(images, m, y, x)  # the targets: predictions on the unmixed image
                target_from_first = _argmax(_scores(model.first.weight, plain))
                target_from_second = _argmax(_scores(model.second.weight, plain))
                first_learns.append(_ce(_scores(model.first.weight, _pixel(mixed, n, y, x)), target_from_second))
                second_learns.append(_ce(_scores(model.second.weight, _pixel(mixed, n, y, x)), target_from_first))
    assert len(first_learns) == 17  # 18 pixels, one of them from the padded pixel of image 1
    sup_first, sup_second = _supervised_by_hand(model, batch)
    cross = sum(first_learns) / len(first_learns) + sum(second_learns) / len(second_learns)
    assert scalars["cps"].item() == pytest.approx(cross, rel=1e-5)
    assert loss.item() == pytest.approx(sup_first + sup_second + 0.5 * cross, rel=1e-5)


def test_lambda_zero_is_supervised_only_and_never_forwards_the_unlabelled_images():
    model, batch = PixelPair(), _batch()
    loss, _ = cps_loss(model, batch, weight=0.0)
    assert loss.item() == pytest.approx(sum(_supervised_by_hand(model, batch)), rel=1e-5)
    assert len(model.inputs) == 1 and torch.equal(model.inputs[0], batch["labeled"]["image"])


def test_box_masks_are_one_box_of_a_quarter_of_the_image_at_random_places_and_shapes():
    height, width = 40, 64
    masks = box_masks(200, height, width, area=0.25, generator=torch.Generator().manual_seed(0))
    shapes, corners = set(), set()
    for mask in masks:
        rows, cols = mask.any(1), mask.any(0)
        # a single rectangle: exactly the outer product of its rows and columns
        assert torch.equal(mask, rows[:, None] & cols[None, :])
        box_h, box_w = int(rows.sum()), int(cols.sum())
        assert abs(box_h * box_w - 0.25 * height * width) <= box_h + box_w  # rounding of each side
        assert height * 0.25 - 1 <= box_h <= height and width * 0.25 - 1 <= box_w <= width
        shapes.add((box_h, box_w))
        corners.add((int(rows.float().argmax()), int(cols.float().argmax())))
    assert len(shapes) > 20 and len(corners) > 50
    assert 0.24 < masks.float().mean().item() < 0.26


# ----------------------------------------------------------------- the pair, trained

CPS_TINY = ("task=cps", "cps.crop_size=48", "cps.scales=[1.0]", "cps.labeled.fraction=0.25",
            "cps.train.batch_size=4", "cps.labeled_batch_size=4", "cps.train.lr=0.002")


def _cps_recipe(tmp_path, name, *overrides):
    return load_recipe(ROOT / "recipes" / "demo_cps.yaml",
                       [*TINY_OVERRIDES, *CPS_TINY, f"run.dir={tmp_path / name}", *overrides])


@pytest.mark.slow
def test_training_lowers_the_loss_and_the_pair_predicts_and_evaluates(tmp_path):
    from psa.data import build_source
    from psa.framework.evaluation import evaluate
    from psa.framework.prediction import predict

    recipe = _cps_recipe(tmp_path, "run", "cps.train.epochs=3", "cps.flip=false")
    result = train_task(recipe, "cps")
    # 16 images, 4 labelled: an epoch is the 12 unlabelled ones in batches of 4
    assert result.steps == 9
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3]) - 0.1, result.losses
    stage = stage_dir(recipe, "cps")
    labeled = (stage / "labeled.txt").read_text().split()
    unlabeled = (stage / "unlabeled.txt").read_text().split()
    assert len(labeled) == 4 and len(unlabeled) == 12
    assert sorted(labeled + unlabeled) == sorted(build_source(recipe.data, "train").ids)
    info = json.loads((stage / "run_info.json").read_text())
    assert info["batch"] == {"global": 4, "per_process": 4, "labeled": {"global": 4, "per_process": 4}}
    state, meta = load_weights(result.weights, "cps", "resnet10t")
    assert meta["networks"] == 2
    # initialised differently, so the two networks are not the same one twice
    assert not torch.equal(state["nets.0.head.branches.0.weight"], state["nets.1.head.branches.0.weight"])

    for mode in ("mean", "first"):
        chosen = dataclasses.replace(recipe, cps=dataclasses.replace(recipe.cps, predict_with=mode))
        summary = predict(chosen)
        assert summary["images"] == 6 and summary["folder"].endswith(f"pred_{mode}")
        metrics = evaluate(chosen)
        assert metrics["source"] == f"cps_{mode}" and metrics["split"] == "val" and metrics["images"] == 6
        assert (stage / "eval" / f"cps_{mode}" / "metrics.json").is_file()


def test_the_predictor_averages_both_softmaxes_or_takes_the_first_network():
    from psa.methods.cps.model import CpsPair

    torch.manual_seed(0)
    nets = [nn.Conv2d(3, CLASSES, 1) for _ in range(2)]  # any two networks of class scores
    pair = CpsPair(*nets).eval()
    x = torch.randn(2, 3, 5, 7) * 4
    with torch.no_grad():
        first, second = nets[0](x), nets[1](x)
        mean = CpsPredictor(pair, "mean")(x).softmax(1)
        torch.testing.assert_close(mean, (first.softmax(1) + second.softmax(1)) / 2)
        torch.testing.assert_close(CpsPredictor(pair, "first")(x), first)


@pytest.mark.slow
def test_resume_with_cutmix_continues_to_the_same_weights(tmp_path):
    common = ("run.deterministic=true", "cps.train.epochs=1", "cps.train.checkpoint_every=2", "cps.cutmix=true")
    straight = _cps_recipe(tmp_path, "straight", *common)
    reference = train_task(straight, "cps")
    # 3 steps an epoch: stop inside it, then continue (the labelled stream is then in its 3rd epoch)
    split = _cps_recipe(tmp_path, "split", *common, "cps.train.max_steps=2")
    train_task(split, "cps")
    resumed = dataclasses.replace(split, cps=dataclasses.replace(
        split.cps, train=dataclasses.replace(split.cps.train, max_steps=0)))
    second = train_task(resumed, "cps")
    assert second.resumed_from == 2 and second.steps == reference.steps == 3
    assert_resumed_like_straight(reference, second, "cps")


@pytest.mark.slow
def test_two_process_ddp_keeps_both_networks_identical_across_ranks(tmp_path):
    from conftest import launch

    run = tmp_path / "ddp"
    result = launch(ROOT / "tests" / "scripts" / "ddp_train.py", str(ROOT / "recipes" / "demo_cps.yaml"),
                    *TINY_OVERRIDES, *CPS_TINY, f"run.dir={run}", "cps.train.epochs=1", "cps.cutmix=true",
                    "model.freeze_bn=true")  # CPU DDP: no SyncBatchNorm, see test_distributed.py
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(run / "rank0_of_2.pt", weights_only=True)
    rank1 = torch.load(run / "rank1_of_2.pt", weights_only=True)
    assert rank0.keys() == rank1.keys() and any(k.startswith("nets.1.") for k in rank0)
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    info = json.loads((run / "cps" / "run_info.json").read_text())
    assert info["world_size"] == 2
    assert info["batch"] == {"global": 4, "per_process": 2, "labeled": {"global": 4, "per_process": 2}}
    saved = torch.load(run / "cps" / "model.pt", weights_only=True)
    assert saved["meta"]["steps"] == 3  # as on one process
    # the pair is two different networks, identical across the ranks
    assert not torch.equal(rank0["nets.0.head.branches.0.weight"], rank0["nets.1.head.branches.0.weight"])


# ----------------------------------------------------------------- bad recipes


@pytest.mark.parametrize("override, message", [
    ("cps.weight=-1", "'cps.weight' must be >= 0"),
    ("cps.predict_with=both", "'cps.predict_with' must be one of mean, first, got 'both'"),
    ("cps.cutmix_area=1.5", "'cps.cutmix_area' must be in"),
    ("cps.labeled.fraction=0", "'cps.labeled.fraction' must be in"),
    ("cps.labels=crf", "'cps.labels' must be one of pseudo, pseudo_crf, gt, got 'crf'"),
    ("cps.labeled_batch_size=0", "'cps.labeled_batch_size' must be >= 1"),
])
def test_bad_cps_keys_are_named(override, message):
    with pytest.raises(PsaError, match=message):
        load_recipe(ROOT / "recipes" / "demo_cps.yaml", [override])


def test_all_images_labelled_or_a_labelled_batch_too_large_is_refused(tmp_path):
    recipe = _cps_recipe(tmp_path, "all", "cps.labeled.fraction=1.0")
    with pytest.raises(PsaError, match="CPS needs unlabelled"):
        train_task(recipe, "cps")
    recipe = _cps_recipe(tmp_path, "big", "cps.labeled_batch_size=8")
    with pytest.raises(PsaError, match="'cps.labeled_batch_size': 4 labeled images"):
        train_task(recipe, "cps")
    assert not (tmp_path / "big" / "cps").exists()


def test_the_warm_up_ramps_lambda_linearly_by_the_engines_step():
    from psa.methods.cps.model import CpsPair

    tiny = PixelPair()
    pair = CpsPair(tiny.first, tiny.second)
    weights = [cps_loss(pair, {**_batch(), "step": step}, weight=2.0, warmup_steps=2)[1].get("cps_weight")
               for step in range(4)]
    assert weights[0] is None  # λ = 0 at step 0: supervised only
    assert [float(w) for w in weights[1:]] == [1.0, 2.0, 2.0]


def test_with_grad_accum_the_warm_up_counts_optimizer_steps_not_micro_batches(tmp_path):
    """grad_accum 2: both micro-batches of optimizer step k get λ·min(1, k / warmup_steps)."""
    from psa.methods.cps.training import build_cps_task

    seen = []

    def recording(recipe):
        task = build_cps_task(recipe)
        loss_fn = task.loss_fn

        def loss(model, batch):
            value, scalars = loss_fn(model, batch)
            seen.append((batch["step"], float(scalars.get("cps_weight", 0.0))))
            return value, scalars
        task.loss_fn = loss
        return task

    # 12 unlabelled images in batches of 2: 6 micro-batches an epoch, 3 optimizer steps
    recipe = _cps_recipe(tmp_path, "accum", "cps.train.batch_size=2", "cps.train.grad_accum=2",
                         "cps.train.epochs=2", "cps.warmup_steps=4", "cps.weight=2.0")
    result = train_task(recipe, "cps", build=recording)
    assert result.steps == 6
    expected = [(step, 2.0 * min(1.0, step / 4)) for step in range(6) for _ in range(2)]
    assert seen == expected


def test_cps_training_has_a_provenance_record_that_refuses_other_inputs(tmp_path):
    from psa.provenance import read_record

    recipe = _cps_recipe(tmp_path, "run", "cps.train.max_steps=1")
    train_task(recipe, "cps")
    record = read_record(stage_dir(recipe, "cps") / "train.provenance.json")
    assert record["complete"] and record["inputs"]["cps.weight"] == 1.5
    changed = dataclasses.replace(recipe, cps=dataclasses.replace(recipe.cps, weight=0.5))
    with pytest.raises(PsaError, match="cps.weight was 1.5, the recipe now says 0.5"):
        train_task(changed, "cps")


def test_min_confidence_enters_the_pairs_record_only_when_set(tiny_recipe):
    """At its default the record is the one from before the key existed; seg's setting leaves it."""
    from psa.framework.registry import REGISTRY
    from psa.provenance import Provenance

    def record(*extra):
        return Provenance(tiny_recipe("cps.labels=pseudo", *extra)).record(REGISTRY.get("train_cps"))

    base = record()
    assert "cps.min_confidence" not in base["inputs"]
    assert record("seg.min_confidence=0.6") == base
    assert record("cps.min_confidence=0.6")["inputs"]["cps.min_confidence"] == 0.6


@pytest.mark.parametrize("override, key", [
    ("cps.labels=3", "cps.labels"),
    ("cps.labeled.fraction=0", "cps.labeled.fraction"),
    ("cps.crop_size=20", "cps.crop_size"),  # the segmentation network's check, under cps
    ("cps.cutmix_area=1.5", "cps.cutmix_area"),
])
def test_bad_cps_settings_name_their_key(tiny_recipe, override, key):
    with pytest.raises(PsaError, match=rf"^recipe key '{key}' "):
        tiny_recipe(override)
