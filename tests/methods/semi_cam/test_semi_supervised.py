"""Semi-supervised CAM classifier: FixMatch and MixMatch for multi-label image labels."""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch

from conftest import assert_resumed_like_straight, stage_dir

from psa.methods.cam.section import CamConfig
from psa.methods.semi_cam.section import VARIANTS, FixMatchConfig, MixMatchConfig
from psa.methods.semi_cam.strong_augment import GEOMETRIC_OPS, PhotometricRandAugment, photometric_randaugment
from psa.engine.checkpoints import load_weights
from psa.framework.training import train_task
from psa.errors import PsaError
from psa.engine.optim import linear_rampup
from psa.methods.semi_cam.ops import (
    align_distribution, confident_pseudo_labels, masked_bce, mixmatch_lambda, mixup, prior_caps,
    sharpen,
)
from psa.methods.cam.training import build_cam_task
from psa.methods.semi_cam.variants import FixMatchUnlabeled, fixmatch_loss, mixmatch_loss

SEMI = ("cam.labeled.fraction=0.5", "cam.train.batch_size=4", "cam.fixmatch.mu=1", "cam.mixmatch.mu=1")


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_fixmatch_masks_each_class_and_averages_over_all_entries():
    probs = torch.tensor([[0.97, 0.50, 0.02], [0.90, 0.04, 0.99]])
    targets, mask = confident_pseudo_labels(probs, tau_pos=0.95, tau_neg=0.05)
    # 0.97, 0.99 confident present; 0.02, 0.04 confident absent; 0.50, 0.90 ignored
    assert targets.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert mask.tolist() == [[1, 0, 1], [0, 1, 1]]
    strong = torch.tensor([[2.0, -1.0, 0.5], [0.3, -3.0, 1.5]])
    by_hand = (_bce(2.0, 1) + _bce(0.5, 0) + _bce(-3.0, 0) + _bce(1.5, 1)) / 6
    assert masked_bce(strong, targets, mask).item() == pytest.approx(by_hand, rel=1e-6)


def test_prior_caps_keep_each_class_to_its_labelled_share_of_the_batch():
    generator = torch.Generator().manual_seed(0)
    batch = torch.rand(10, 3, generator=generator)
    priors = torch.tensor([0.25, 0.0, 0.625])
    mine = batch[4:7]  # this process's rows of the global batch
    may_pos, may_neg = prior_caps(mine, batch, priors)
    for c, prior in enumerate(priors.tolist()):  # brute force: rank each row in its column
        column = batch[:, c].tolist()
        top = sorted(column, reverse=True)[:math.ceil(prior * 10)]
        bottom = sorted(column)[:math.floor((1 - prior) * 10)]
        for r in range(3):
            assert bool(may_pos[r, c]) == (mine[r, c].item() in top)
            assert bool(may_neg[r, c]) == (mine[r, c].item() in bottom)
    # class 0: 3 of 10 (ceil 2.5) may be positive, 7 negative; class 1: none positive
    may_pos, may_neg = prior_caps(batch, batch, priors)
    assert may_pos.sum(0).tolist() == [3, 0, 7] and may_neg.sum(0).tolist() == [7, 10, 3]
    # an exact product stays exact despite float32 (0.35 × 20 = 7.0000001 in float32)
    column = torch.rand(20, 1, generator=generator)
    may_pos, may_neg = prior_caps(column, column, torch.tensor([0.35]))
    assert (may_pos.sum().item(), may_neg.sum().item()) == (7, 13)
    # the caps only narrow the thresholds: confident entries must pass both
    probs = torch.tensor([[0.99, 0.98], [0.97, 0.01], [0.96, 0.02], [0.01, 0.03]])
    caps = prior_caps(probs, probs, torch.tensor([0.5, 0.25]))
    targets, mask = confident_pseudo_labels(probs, 0.95, 0.05, caps)
    assert targets.tolist() == [[1, 1], [1, 0], [0, 0], [0, 0]]
    assert mask.tolist() == [[1, 1], [1, 1], [0, 1], [1, 1]]


def test_distribution_alignment_is_remixmatch_on_each_bernoulli():
    probs = torch.tensor([[0.9, 0.2], [0.6, 0.01], [0.3, 0.05]])
    priors = torch.tensor([0.25, 0.5])
    aligned = align_distribution(probs, probs, priors)
    # ReMixMatch by hand: p·π/m over the outcomes (p, 1 - p), normalised
    for c, prior in enumerate(priors.tolist()):
        mean = probs[:, c].mean().item()
        for r in range(3):
            p = probs[r, c].item()
            present, absent = p * prior / mean, (1 - p) * (1 - prior) / (1 - mean)
            assert aligned[r, c].item() == pytest.approx(present / (present + absent), rel=1e-5)
    # the over-predicted class 0 (mean 0.6, share 0.25) loses, the under-predicted one gains;
    # the order within a class stays
    assert (aligned[:, 0] < probs[:, 0]).all() and (aligned[:, 1] > probs[:, 1]).all()
    assert torch.equal(aligned.argsort(0), probs.argsort(0))
    # a class no labelled image has stays finite and goes to (almost) absent
    aligned = align_distribution(probs, probs, torch.tensor([0.0, 1.0]))
    assert torch.isfinite(aligned).all() and (aligned[:, 0] < 1e-3).all() and (aligned[:, 1] > 0.99).all()


class FixedLogits(torch.nn.Module):
    """A "model" returning given logits for the (concatenated) batch it is called on."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        assert x.shape[0] == self.logits.shape[0]
        return self.logits


def test_fixmatch_loss_is_supervised_plus_weighted_confident_bce():
    labeled_logits = torch.tensor([[1.0, -2.0]])
    weak = torch.tensor([[4.0, 0.0]])  # sigmoid 0.982 (confident present), 0.5 (ignored)
    strong = torch.tensor([[-1.0, 3.0]])
    model = FixedLogits(torch.cat([labeled_logits, weak, strong]))
    batch = {"image": torch.zeros(1, 3, 8, 8), "target": torch.tensor([[1.0, 0.0]]),
             "unlabeled": {"weak": torch.zeros(1, 3, 8, 8), "strong": torch.zeros(1, 3, 8, 8)}, "step": 3}
    loss, scalars = fixmatch_loss(FixMatchConfig(lambda_u=2.0))(model, batch)
    supervised = (_bce(1.0, 1) + _bce(-2.0, 0)) / 2
    unsupervised = _bce(-1.0, 1) / 2
    assert loss.item() == pytest.approx(supervised + 2.0 * unsupervised, rel=1e-6)
    assert scalars["mask_rate"].item() == 0.5 and scalars["loss_unsup"].item() == pytest.approx(unsupervised)
    # warm-up: at step 3 of 12, a quarter of lambda_u
    loss, scalars = fixmatch_loss(FixMatchConfig(lambda_u=2.0, warmup_steps=12))(model, batch)
    assert scalars["lambda_u"] == pytest.approx(0.5)
    assert loss.item() == pytest.approx(supervised + 0.5 * unsupervised, rel=1e-6)
    # aligned to a share of 0.1 from a batch mean of 0.982, the 0.982 becomes 0.1: ignored
    aligned = FixMatchConfig(lambda_u=2.0, distribution_alignment=True)
    loss, scalars = fixmatch_loss(aligned, torch.tensor([0.1, 0.5]))(model, batch)
    assert scalars["mask_rate"].item() == 0.0 and loss.item() == pytest.approx(supervised, rel=1e-6)
    # with the caps too (ranked on the aligned batch): still nothing confident
    capped = dataclasses.replace(aligned, prior_cap=True)
    loss, scalars = fixmatch_loss(capped, torch.tensor([0.1, 0.5]))(model, batch)
    assert scalars["mask_rate"].item() == 0.0 and loss.item() == pytest.approx(supervised, rel=1e-6)


def test_fixmatch_soft_targets_are_the_sharpened_weak_probabilities():
    labeled_logits = torch.tensor([[1.0, -2.0]])
    weak = torch.tensor([[2.0, -4.0]])  # sigmoid 0.881 (confident present at 0.8), 0.018 (absent)
    strong = torch.tensor([[-1.0, 3.0]])
    model = FixedLogits(torch.cat([labeled_logits, weak, strong]))
    batch = {"image": torch.zeros(1, 3, 8, 8), "target": torch.tensor([[1.0, 0.0]]),
             "unlabeled": {"weak": torch.zeros(1, 3, 8, 8), "strong": torch.zeros(1, 3, 8, 8)}, "step": 0}
    supervised = (_bce(1.0, 1) + _bce(-2.0, 0)) / 2
    p_present, p_absent = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(4.0))
    for temperature in (1.0, 0.5):
        def sharp(p):
            return p ** (1 / temperature) / (p ** (1 / temperature) + (1 - p) ** (1 / temperature))
        cfg = FixMatchConfig(lambda_u=1.0, tau_pos=0.8, temperature=temperature)
        loss, scalars = fixmatch_loss(cfg)(model, batch)
        unsupervised = (_bce(-1.0, sharp(p_present)) + _bce(3.0, sharp(p_absent))) / 2
        assert loss.item() == pytest.approx(supervised + unsupervised, rel=1e-6)
        assert scalars["mask_rate"].item() == 1.0 and scalars["mask_rate_pos"].item() == 0.5
    # temperature 0 is the paper's hard 0/1 labels
    loss, _ = fixmatch_loss(FixMatchConfig(lambda_u=1.0, tau_pos=0.8))(model, batch)
    assert loss.item() == pytest.approx(supervised + (_bce(-1.0, 1) + _bce(3.0, 0)) / 2, rel=1e-6)


def test_an_ema_teacher_labels_the_weak_views():
    labeled_logits, strong = torch.tensor([[1.0, -2.0]]), torch.tensor([[-1.0, 3.0]])
    student = FixedLogits(torch.cat([labeled_logits, strong]))  # sees the labelled and strong views only
    teacher = FixedLogits(torch.tensor([[0.0, -4.0]]))  # 0.5 (ignored), 0.018 (confident absent)
    batch = {"image": torch.zeros(1, 3, 8, 8), "target": torch.tensor([[1.0, 0.0]]), "teacher": teacher,
             "unlabeled": {"weak": torch.zeros(1, 3, 8, 8), "strong": torch.zeros(1, 3, 8, 8)}, "step": 0}
    loss, scalars = fixmatch_loss(FixMatchConfig(lambda_u=2.0, teacher="ema"))(student, batch)
    supervised = (_bce(1.0, 1) + _bce(-2.0, 0)) / 2
    assert loss.item() == pytest.approx(supervised + 2.0 * _bce(3.0, 0) / 2, rel=1e-6)
    assert scalars["mask_rate"].item() == 0.5 and scalars["mask_rate_pos"].item() == 0.0
    # MixMatch guesses with the teacher: a teacher that says 0.5 everywhere gives guesses of 0.5
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    torch.nn.init.zeros_(flat[1].weight), torch.nn.init.zeros_(flat[1].bias)
    batch = {"image": torch.randn(2, 3, 4, 4), "target": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
             "unlabeled": {"views": torch.randn(2, 2, 3, 4, 4)}, "step": 5, "teacher": flat}
    _, scalars = mixmatch_loss(MixMatchConfig(k=2, teacher="ema"))(model, batch)
    assert scalars["mask_rate"].item() == 0.0  # no guess outside (0.05, 0.95): the teacher's, not the model's
    _, scalars = mixmatch_loss(MixMatchConfig(k=2, temperature=0.01))(model, batch)
    assert scalars["mask_rate"].item() > 0.0  # the model's own guesses, sharpened hard


def test_sharpening_each_class_as_a_bernoulli():
    p = torch.tensor([0.8, 0.5, 0.2, 0.99])
    by_hand = [0.8**2 / (0.8**2 + 0.2**2), 0.5, 0.2**2 / (0.2**2 + 0.8**2), 0.99**2 / (0.99**2 + 0.01**2)]
    assert sharpen(p, 0.5).tolist() == pytest.approx(by_hand, rel=1e-5)
    assert sharpen(p, 1.0).tolist() == pytest.approx(p.tolist(), rel=1e-5)
    assert sharpen(torch.tensor([1e-30, 1.0]), 0.01).tolist() == pytest.approx([0.0, 1.0], abs=1e-6)


def test_mixup_by_hand_and_lambda_at_least_a_half():
    x = torch.tensor([[0.0, 0.0], [2.0, 4.0], [8.0, 8.0]])
    y = torch.tensor([[1.0], [0.0], [0.5]])
    mixed_x, mixed_y = mixup(x, y, 0.75, torch.tensor([1, 2, 0]))
    assert mixed_x.tolist() == [[0.5, 1.0], [3.5, 5.0], [6.0, 6.0]]
    assert mixed_y.tolist() == [[0.75], [0.125], [0.625]]
    torch.manual_seed(0)
    draws = [mixmatch_lambda(0.75) for _ in range(200)]
    assert min(draws) >= 0.5 and max(draws) < 1 and np.std(draws) > 0.05
    torch.manual_seed(0)
    assert mixmatch_lambda(0.75) == draws[0]  # drawn from torch's RNG (saved with checkpoints)
    assert [linear_rampup(s, 10) for s in (0, 5, 10, 20)] == [0.0, 0.5, 1.0, 1.0] and linear_rampup(3, 0) == 1.0


@pytest.mark.parametrize("aligned", [False, True])
def test_mixmatch_loss_mixes_guesses_and_ramps_the_unlabelled_weight(aligned):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    batch = {"image": torch.randn(2, 3, 4, 4), "target": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
             "unlabeled": {"views": torch.randn(2, 3, 3, 4, 4)}, "step": 5}
    cfg = MixMatchConfig(k=3, temperature=0.5, alpha=0.75, lambda_u=10.0, rampup_steps=10,
                         distribution_alignment=aligned)
    shares = torch.tensor([0.1, 0.7])
    torch.manual_seed(1)
    loss, scalars = mixmatch_loss(cfg, shares)(model, batch)
    # by hand with the same random draws: λ first, then the permutation
    torch.manual_seed(1)
    lam = mixmatch_lambda(0.75)
    perm = torch.randperm(2 + 6)
    views = batch["unlabeled"]["views"]
    unlabeled = torch.cat([views[:, v] for v in range(3)])
    with torch.no_grad():
        guess = sum(torch.sigmoid(model(views[:, v])) for v in range(3)) / 3
    if aligned:  # ReMixMatch's p·share/mean over (present, absent), normalised
        mean = guess.mean(0)
        present, absent = guess * shares / mean, (1 - guess) * (1 - shares) / (1 - mean)
        guess = present / (present + absent)
    guess = guess**2 / (guess**2 + (1 - guess) ** 2)
    inputs = torch.cat([batch["image"], unlabeled])
    targets = torch.cat([batch["target"], guess, guess, guess])
    mixed_x = lam * inputs + (1 - lam) * inputs[perm]
    mixed_y = lam * targets + (1 - lam) * targets[perm]
    probs = torch.sigmoid(model(mixed_x))
    sup = -(mixed_y[:2] * probs[:2].log() + (1 - mixed_y[:2]) * (1 - probs[:2]).log()).mean()
    unsup = ((probs[2:] - mixed_y[2:]) ** 2).mean()
    assert scalars["lambda_u"] == 5.0
    assert loss.item() == pytest.approx((sup + 5.0 * unsup).item(), rel=1e-5)


def test_photometric_randaugment_has_no_geometric_op():
    space = PhotometricRandAugment()._augmentation_space(31, (32, 32))
    assert space and not set(space) & set(GEOMETRIC_OPS) and "Solarize" in space


def test_randaugment_space_narrows_the_ops():
    from torchvision.transforms import functional as TF

    image = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert np.array_equal(photometric_randaugment(image, 2, 30, ["Identity"]), image)
    # magnitude 10 of 31 bins: torchvision's solarize threshold is linspace(255, 0, 31)[10]
    threshold = float(torch.linspace(255.0, 0.0, 31)[10])
    expected = TF.solarize(torch.from_numpy(image).permute(2, 0, 1), threshold).permute(1, 2, 0).numpy()
    assert np.array_equal(photometric_randaugment(image, 1, 10, ["Solarize"]), expected)
    assert not np.array_equal(expected, image)
    with pytest.raises(ValueError, match="Rotate"):
        PhotometricRandAugment(["Rotate"])


def test_weak_and_strong_views_share_the_crop(tiny_recipe):
    from psa.data import build_source

    recipe = tiny_recipe("cam.color_jitter=[0,0,0,0]", "cam.fixmatch.randaugment_ops=0",
                         "cam.fixmatch.erasing_prob=1.0", "cam.resize_long=[60,70]")
    source = build_source(recipe.data, "train")
    views = FixMatchUnlabeled(source, [0, 1, 2], recipe.cam)
    for index in range(3):
        torch.manual_seed(index)
        sample = views[index]
        differs = (sample["weak"] != sample["strong"]).any(0)
        # without photometric ops the strong view is the weak one but for the erased rectangle
        rows, cols = differs.any(1).nonzero().flatten(), differs.any(0).nonzero().flatten()
        assert rows.numel() > 0
        box = (slice(int(rows.min()), int(rows.max()) + 1), slice(int(cols.min()), int(cols.max()) + 1))
        assert torch.all(sample["strong"][:, box[0], box[1]] == 0)
        outside = torch.ones_like(differs)
        outside[box] = False
        assert torch.equal(sample["weak"][:, outside], sample["strong"][:, outside])


@pytest.mark.parametrize("method", ["fixmatch", "mixmatch"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_recipe, method):
    recipe = tiny_recipe(*SEMI, f"cam.method={method}", "cam.fixmatch.tau_pos=0.6", "cam.fixmatch.tau_neg=0.4",
                         "cam.mixmatch.rampup_steps=0")
    torch.manual_seed(0)
    spec = build_cam_task(recipe)
    labeled = [spec.dataset[i] for i in range(2)]
    unlabeled = [spec.side["unlabeled"].dataset[i] for i in range(2)]
    batch = {key: torch.stack([s[key] for s in labeled]) for key in labeled[0]}
    batch["unlabeled"] = {key: torch.stack([s[key] for s in unlabeled]) for key in unlabeled[0]}
    batch["step"] = 0
    model = spec.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_at(seed):  # the same random draws (dropout, MixUp) before and after
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return spec.loss_fn(model, batch)

    before = loss_at(123)[0].item()
    for step in range(4):
        loss, _ = loss_at(step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss_at(123)[0].item() < before - 0.01


@pytest.mark.slow
@pytest.mark.parametrize("teacher", ["model", "ema"])
def test_fixmatch_resumes_to_the_same_weights_and_writes_its_split(tiny_recipe, tmp_path, teacher):
    # 8 labelled images, batch 4: 2 steps an epoch; 8 unlabelled, mu 1: the side stream too.
    # With the EMA teacher the average is checkpointed too, and it is the final model
    ema = ("cam.train.ema_decay=0.9", "cam.fixmatch.teacher=ema") if teacher == "ema" else ()
    common = (*SEMI, "cam.method=fixmatch", "run.deterministic=true", "cam.train.epochs=3",
              "cam.train.checkpoint_every=1", "cam.fixmatch.tau_pos=0.6", "cam.fixmatch.tau_neg=0.4", *ema)
    reference = train_task(tiny_recipe(*common, run_dir=tmp_path / "straight"), "cam")
    split = tiny_recipe(*common, "cam.train.max_steps=3", run_dir=tmp_path / "split")
    assert train_task(split, "cam").steps == 3
    resumed = dataclasses.replace(split, cam=dataclasses.replace(
        split.cam, train=dataclasses.replace(split.cam.train, max_steps=0)))
    second = train_task(resumed, "cam")
    assert second.resumed_from == 3 and second.steps == reference.steps == 6
    meta = assert_resumed_like_straight(reference, second, "cam")
    assert meta["method"] == "fixmatch" and (meta["labeled"], meta["unlabeled"]) == (8, 8)
    assert meta["ema_decay"] == (0.9 if teacher == "ema" else 0.0)
    stage = stage_dir(split, "cam")
    labeled = (stage / "labeled.txt").read_text().split()
    unlabeled = (stage / "unlabeled.txt").read_text().split()
    assert len(labeled) == len(unlabeled) == 8 and not set(labeled) & set(unlabeled)
    info = json.loads((stage / "run_info.json").read_text())
    assert info["batch"]["unlabeled"] == {"global": 4, "per_process": 4}
    # the classifier report scores the trained network on the eval split
    from psa.metrics import multilabel_scores
    from psa.framework.classify import evaluate_classifier

    metrics = evaluate_classifier(resumed, split="val")
    assert metrics["images"] == 6 and set(metrics["ap"]) == set(meta["classes"][1:])
    assert metrics["mAP"] == pytest.approx(multilabel_scores(*_logits_by_hand(resumed, "val"))["mAP"])
    assert (stage / "eval" / "classifier_val" / "metrics.json").is_file()


def _logits_by_hand(recipe, split):
    from psa.data import build_source
    from psa.data.transforms import normalize
    from psa.framework.classifier import build_cam_model

    source = build_source(recipe.data, split)
    state, meta = load_weights(stage_dir(recipe, "cam") / "model.pt", "cam", "resnet10t")
    model = build_cam_model(recipe, len(meta["classes"]), load_weights=False)
    model.load_state_dict(state)
    model.eval()
    logits, targets = [], []
    with torch.no_grad():
        for index in range(len(source)):
            logits.append(model(normalize(source.load_image(index))[None])[0])
            target = torch.zeros(len(meta["classes"]) - 1)
            target[torch.as_tensor(source.image_labels(index)) - 1] = 1
            targets.append(target)
    return torch.stack(logits), torch.stack(targets)


def test_too_few_unlabelled_images_stop_before_anything_is_written(tiny_recipe):
    recipe = tiny_recipe(*SEMI, "cam.method=fixmatch", "cam.fixmatch.mu=3")
    with pytest.raises(PsaError, match=r"'cam.fixmatch.mu': 8 unlabelled images are fewer than one batch of 3"):
        train_task(recipe, "cam")
    assert not stage_dir(recipe, "cam").exists()


@pytest.mark.parametrize("override, key", [
    ("cam.method=meanteacher", "cam.method"),
    ("cam.fixmatch.tau_pos=0.3", "cam.fixmatch.tau_pos"),
    ("cam.fixmatch.temperature=-1", "cam.fixmatch.temperature"),
    ("cam.mixmatch.temperature=0", "cam.mixmatch.temperature"),
    ("cam.labeled.fraction=0", "cam.labeled.fraction"),
    ("cam.fixmatch.teacher=student", "cam.fixmatch.teacher"),
    ("cam.method=mixmatch cam.mixmatch.teacher=ema", "cam.mixmatch.teacher"),
    ("cam.train.ema_decay=1.0", "cam.train.ema_decay"),
])
def test_bad_semi_supervised_settings_name_their_key(tiny_recipe, override, key):
    from psa.framework.registry import REGISTRY

    with pytest.raises(PsaError, match=f"recipe key '{key}'"):
        REGISTRY.check_recipe(tiny_recipe(*override.split()))  # cam.method's choices are the registry's


def test_every_semi_supervised_method_is_a_registered_cam_variant_with_its_section():
    from psa.framework.classifier import CamVariant
    from psa.framework.registry import REGISTRY

    variants = {variant.name: variant.section for variant in REGISTRY.all(CamVariant)}
    assert variants == {name: f"cam.{name}" for name in VARIANTS}


def test_supervised_default_is_the_plain_cam_task(tiny_recipe):
    from psa.framework.classifier import CamTrainDataset, cam_loss

    spec = build_cam_task(tiny_recipe())
    assert CamConfig().method == "supervised" and CamConfig().labeled.fraction == 1.0
    assert isinstance(spec.dataset, CamTrainDataset) and spec.loss_fn is cam_loss and not spec.side
    assert spec.write_files is None


@pytest.mark.slow
def test_prior_caps_under_two_processes_equal_one_process():
    import random
    import subprocess
    import sys

    from conftest import ROOT

    script = ROOT / "tests" / "scripts" / "gather_rows_check.py"
    result = subprocess.run([sys.executable, str(script), str(random.randint(20000, 40000))],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-2000:]
