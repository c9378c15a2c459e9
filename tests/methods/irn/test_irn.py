"""IRN on the engine: its operators against brute-force loops and direct ports of IRN's
index code, its training (loss falls, resume is bit-exact) and its steps through the pipeline."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from conftest import assert_resumed_like_straight
from psa.methods.irn.section import LabelCrfConfig
from psa.methods.irn.layout import instances_folder, relation_labels_folder, stage, walk_folders
from psa.ops.affinity_labels import pair_labels
from psa.methods.irn.boundary import boundary_walk, irn_loss, line_points, path_max_affinity
from psa.ops.neighbors import pair_offsets
from psa.methods.irn.relation_labels import relation_labels

# ----------------------------------------------------------------------------- ports of IRN's index code
# (jiwoon-ahn/irn misc/indexing.py, voc12/dataloader.py, step/cam_to_ir_label.py, written again
# from their text as independent references)


def irn_search_dirs(radius):
    dirs = [(0, x) for x in range(1, radius)]
    dirs += [(y, x) for y in range(1, radius) for x in range(-radius + 1, radius) if x * x + y * y < radius ** 2]
    return dirs


def irn_path(direction):
    length_sq = direction[0] ** 2 + direction[1] ** 2
    min_y, max_y = sorted((0, direction[0]))
    min_x, max_x = sorted((0, direction[1]))
    return {(y, x) for y in range(min_y, max_y + 1) for x in range(min_x, max_x + 1)
            if (direction[0] * x - direction[1] * y) ** 2 / length_sq < 1}


def irn_pair_indices(radius, height, width):
    """PathIndex.get_path_indices' (src, dst) flat indices, one array per direction."""
    floor = int(np.ceil(radius) - 1)
    full = np.arange(height * width).reshape(height, width)
    rows, cols = height - floor, width - 2 * floor
    src = full[:rows, floor:floor + cols].reshape(-1)
    dsts = [full[dy:dy + rows, floor + dx:floor + dx + cols].reshape(-1) for dy, dx in irn_search_dirs(radius)]
    return src, dsts


def irn_affinity_labels(label, radius):
    """GetAffinityLabelFromIndices: sets of (src, dst) pairs that are bg-positive, fg-positive, negative."""
    src, dsts = irn_pair_indices(radius, *label.shape)
    flat = label.reshape(-1)
    found = {"bg": set(), "fg": set(), "neg": set()}
    for dst in dsts:
        a, b = flat[src], flat[dst]
        valid = (a < 255) & (b < 255)
        for kind, mask in (("bg", (a == b) & valid & (a == 0)), ("fg", (a == b) & valid & (a > 0)),
                           ("neg", (a != b) & valid)):
            found[kind] |= set(zip(src[mask].tolist(), dst[mask].tolist()))
    return found


def psa_pair_sets(pairs, radius, width):
    """psa's pair labels (K, H, W) as sets of (src, dst) flat indices."""
    offsets = np.asarray(pair_offsets(radius))
    found = {}
    for kind, mask in pairs.items():
        k, y, x = np.nonzero(mask.numpy())
        found[kind] = set(zip((y * width + x).tolist(), ((y + offsets[k, 0]) * width + x + offsets[k, 1]).tolist()))
    return found


def irn_dense_walk(cams, edge, radius, beta, exp_times):
    """propagate_to_edge with a dense HW×HW matrix (IRN's formulation)."""
    height, width = edge.shape
    padded = np.pad(edge, ((0, radius), (radius, radius)), constant_values=1.0)
    ph, pw = padded.shape
    dense = np.eye(ph * pw)
    src, dsts = irn_pair_indices(radius, ph, pw)
    flat = padded.reshape(-1)
    for direction, dst in zip(irn_search_dirs(radius), dsts):
        path = list(irn_path(direction))
        sy, sx = np.divmod(src, pw)
        best = np.max([flat[(sy + py) * pw + sx + px] for py, px in path], axis=0)
        dense[src, dst] = 1 - best
        dense[dst, src] = 1 - best
    dense = dense.reshape(ph, pw, ph, pw)[:-radius, radius:-radius, :-radius, radius:-radius]
    dense = dense.reshape(height * width, height * width) ** beta
    trans = dense / dense.sum(axis=0, keepdims=True)
    for _ in range(exp_times):
        trans = trans @ trans
    seeds = (cams * (1 - edge)).reshape(len(cams), -1)
    return (seeds @ trans).reshape(cams.shape)


# ----------------------------------------------------------------------------- operators


@pytest.mark.parametrize("radius", [2, 5, 10])
def test_line_points_are_irns_paths(radius):
    for direction in irn_search_dirs(radius):
        assert set(line_points(*direction)) == irn_path(direction), direction
    assert list(pair_offsets(radius)) == irn_search_dirs(radius)  # the same pairs, in IRN's order


def test_path_max_affinity_equals_a_brute_force_loop_over_each_line():
    rng = np.random.default_rng(0)
    boundary = rng.random((7, 9))
    radius = 4
    got = path_max_affinity(torch.from_numpy(boundary), radius).numpy()
    for k, (dy, dx) in enumerate(pair_offsets(radius)):
        for y in range(7):
            for x in range(9):
                ty, tx = y + dy, x + dx
                if not (0 <= ty < 7 and 0 <= tx < 9):
                    assert got[k, y, x] == 0, (k, y, x)
                    continue
                on_line = [boundary[py, px] for py in range(min(y, ty), max(y, ty) + 1)
                           for px in range(min(x, tx), max(x, tx) + 1)
                           if abs(dy * (px - x) - dx * (py - y)) / math.hypot(dy, dx) < 1]
                assert got[k, y, x] == pytest.approx(1 - max(on_line), abs=1e-12), (k, y, x)


@pytest.mark.parametrize("seed", [0, 1])
def test_pair_sets_equal_irns_index_code_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    label = rng.choice([0, 1, 2, 255], size=(14, 17), p=[0.4, 0.25, 0.25, 0.1]).astype(np.int64)
    radius = 5
    ours = psa_pair_sets(pair_labels(torch.from_numpy(label), radius, pairs="reference"), radius, 17)
    theirs = irn_affinity_labels(label, radius)
    for kind in ("bg", "fg", "neg"):
        assert ours[kind] == theirs[kind], kind
    assert theirs["neg"] and theirs["fg"] and theirs["bg"]


def test_relation_labels_equal_irns_cam_to_ir_label():
    pydensecrf = pytest.importorskip("pydensecrf.densecrf")
    from pydensecrf.utils import unary_from_labels

    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    cams = rng.random((2, 20, 24)).astype(np.float32) ** 3
    keys = np.array([0, 4, 7])  # background, then the image's classes

    def crf_inference_label(img, labels, n_labels):
        d = pydensecrf.DenseCRF2D(img.shape[1], img.shape[0], n_labels)
        d.setUnaryEnergy(unary_from_labels(labels, n_labels, gt_prob=0.7, zero_unsure=False))
        d.addPairwiseGaussian(sxy=3, compat=3)
        d.addPairwiseBilateral(sxy=50, srgb=5, rgbim=np.ascontiguousarray(np.copy(img)), compat=10)
        return np.argmax(np.array(d.inference(10)).reshape((n_labels, *img.shape[:2])), axis=0)

    fg = keys[crf_inference_label(image, np.argmax(np.pad(cams, ((1, 0), (0, 0), (0, 0)), constant_values=0.30), 0), 3)]
    bg = keys[crf_inference_label(image, np.argmax(np.pad(cams, ((1, 0), (0, 0), (0, 0)), constant_values=0.05), 0), 3)]
    expected = fg.copy()
    expected[fg == 0] = 255
    expected[bg + fg == 0] = 0
    got = relation_labels(image, cams, keys[1:], 0.30, 0.05, LabelCrfConfig())
    np.testing.assert_array_equal(got, expected)
    assert set(np.unique(got)) - {0, 4, 7, 255} == set()


def test_the_sparse_boundary_walk_equals_irns_dense_walk():
    rng = np.random.default_rng(1)
    edge = rng.random((9, 11)) ** 4
    cams = rng.random((2, 9, 11))
    dense = irn_dense_walk(cams, edge, radius=5, beta=10, exp_times=4)
    sparse = boundary_walk(torch.from_numpy(cams), torch.from_numpy(edge), radius=5, beta=10.0, logt=4).numpy()
    assert np.abs(sparse - dense).max() / np.abs(dense).max() < 1e-4


def test_the_loss_is_irns_on_a_hand_made_case():
    """No boundary: every affinity is 1, so positives cost -log(1 + 1e-5) and negatives
    -log(1e-5); a displacement field pointing at one centroid makes the fg term 0 and the
    bg term |D(i) - D(j)|/2 = the pair's offset length in L1 / 2."""
    radius, size = 3, 6
    label = torch.zeros((1, size, size), dtype=torch.long)
    label[0, :, 3:] = 1  # left half background, right half object 1
    pairs = pair_labels(label, radius)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    field = torch.stack([2.0 - ys, 4.0 - xs])[None].float()  # D(p) = c - p
    logits = torch.full((1, 1, size, size), -1e4)
    loss, parts = irn_loss(logits, field, pairs, radius)
    assert parts["bg_loss"] == pytest.approx(-math.log(1 + 1e-5), abs=1e-6)
    assert parts["neg_loss"] == pytest.approx(-math.log(1e-5), rel=1e-3)  # float32: 1 + 1e-5 - 1
    assert parts["dp_fg_loss"] == pytest.approx(0.0, abs=1e-6)
    offsets = torch.tensor(pair_offsets(radius)).float()
    bg = pairs["bg"][0].float()
    expected_bg = (offsets.abs().sum(1)[:, None, None] * bg).sum() / (2 * bg.sum())
    assert parts["dp_bg_loss"] == pytest.approx(float(expected_bg), rel=1e-5)
    pos = (parts["bg_loss"] + parts["fg_loss"]) / 2
    assert loss == pytest.approx(float((pos + parts["neg_loss"]) / 2 + (parts["dp_fg_loss"] + parts["dp_bg_loss"]) / 2))


# ----------------------------------------------------------------------------- training and the steps

IRN_TINY = ("irn.crop_size=48", "irn.train.batch_size=8", "irn.train.epochs=2", "irn.train.optimizer=adamw",
            "irn.train.lr=0.001", "irn.train_radius=4", "irn.radius=3", "irn.logt=3", "eval.crf_workers=1")


def _relation_labels_from_gt(recipe):
    """Relation labels from the masks, with an ignored band at each boundary (what the CRF leaves)."""
    from psa.data import build_source
    from psa.io import save_label_png

    source = build_source(recipe.data, recipe.data.train_split)
    folder = relation_labels_folder(recipe)
    for index, image_id in enumerate(source.ids):
        mask = source.load_mask(index).copy()
        padded = np.pad(mask, 1, mode="edge")
        edges = np.zeros(mask.shape, dtype=bool)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                edges |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]] != mask
        mask[edges] = 255
        save_label_png(folder / f"{image_id}.png", mask)


@pytest.mark.slow
def test_training_lowers_the_loss_and_resumes_bit_exactly(tiny_recipe, tmp_path):
    from psa.framework.training import train_task

    common = (*IRN_TINY, "run.deterministic=true", "irn.train.checkpoint_every=1", "irn.train.epochs=3",
              "irn.init=imagenet")  # a frozen random backbone: no CAM classifier needed
    straight = tiny_recipe(*common, run_dir=tmp_path / "straight")
    _relation_labels_from_gt(straight)
    reference = train_task(straight, "irn")
    assert reference.steps == 6
    assert np.mean(reference.losses[-2:]) < np.mean(reference.losses[:2]), reference.losses
    split = tiny_recipe(*common, "irn.train.max_steps=3", run_dir=tmp_path / "split")
    _relation_labels_from_gt(split)
    assert train_task(split, "irn").steps == 3
    resumed = dataclasses.replace(split, irn=dataclasses.replace(
        split.irn, train=dataclasses.replace(split.irn.train, max_steps=0)))
    second = train_task(resumed, "irn")
    assert second.resumed_from == 3
    meta = assert_resumed_like_straight(reference, second, "irn")
    assert meta["radius"] == 4 and meta["output_stride"] == 16


@pytest.mark.slow
def test_the_irn_steps_run_through_the_pipeline_and_the_seg_network_learns_from_them(tiny_recipe, tmp_path):
    from PIL import Image

    from psa.engine.report import Reporter
    from psa.pipeline import run
    from psa.provenance import read_record

    steps = ("pipeline.steps=[train_cam,export_cams,irn_labels,train_irn,irn_walk,eval_irn,eval_irn_crf,"
             "irn_instances,eval_irn_instances,train_seg,predict_seg,eval_seg]")
    recipe = tiny_recipe(*IRN_TINY, steps, "cam.train.epochs=4", "cam.train.lr=0.003", "irn.train.epochs=1", "seg.train.epochs=1",
                         "irn.init=cam", "irn.dense_crf=true", "seg.masks=irn", run_dir=tmp_path / "run")
    result = run(recipe, Reporter())
    assert result.ran == ["train_cam", "export_cams", "irn_labels", "train_irn", "irn_walk", "eval_irn",
                          "eval_irn_crf", "irn_instances", "eval_irn_instances", "train_seg", "predict_seg", "eval_seg"]
    folders = walk_folders(recipe)
    masks = sorted(folders["pseudo"].glob("*.png"))
    assert len(masks) == 16 and np.asarray(Image.open(masks[0])).shape == (48, 48)
    assert len(list(folders["pseudo_crf"].glob("*.png"))) == 16
    boundary = np.asarray(Image.open(sorted(folders["boundary"].glob("*.png"))[0]))
    assert boundary.shape == (12, 12)  # stride 4
    assert {"CAM + IRN boundary walk", "CAM + IRN boundary walk + dCRF",
            "IRN instance masks: mAP^r at IoU 0.5 (%)"} <= set(result.summary)
    # instances: an id PNG and a JSON per image, the JSON naming each id of the PNG once
    import json

    first = sorted(instances_folder(recipe).glob("*.json"))[0]
    listed = json.loads(first.read_text())["instances"]
    ids = np.asarray(Image.open(first.with_suffix(".png")))
    assert sorted(e["id"] for e in listed) == sorted(set(np.unique(ids)) - {0})
    assert all(e["area"] == int((ids == e["id"]).sum()) and 0 <= e["score"] <= 1 for e in listed)
    # the segmentation network learnt from IRN's masks: its record names the source and its step
    record = read_record(tmp_path / "run" / "seg" / "train.provenance.json")
    assert record["inputs"]["seg.masks"] == "irn" and list(record["upstream"]) == ["irn_walk"]
    assert run(recipe, Reporter()).ran == []
    # its background plane tuned on the stored scores: at the recipe's value, the walk's masks
    # (up to their float16 scores); another value moves them
    from psa.tune import run as tune

    rows = tune(str(tmp_path / "run" / "recipe.yaml"), [f"irn.sem_bg_threshold={recipe.irn.sem_bg_threshold},0.02"]).rows
    irn_miou = json.loads((tmp_path / "run" / "irn" / "eval" / "irn" / "metrics.json").read_text())["miou"]
    assert rows[0]["miou"] == pytest.approx(irn_miou, abs=2e-3) and rows[1]["miou"] != rows[0]["miou"]
    # a walk setting reruns the walk, its evaluations and everything trained on its masks
    changed = tiny_recipe(*IRN_TINY, steps, "cam.train.epochs=4", "cam.train.lr=0.003", "irn.train.epochs=1", "seg.train.epochs=1",
                          "irn.init=cam", "irn.dense_crf=true", "seg.masks=irn", "irn.beta=4",
                          run_dir=tmp_path / "run")
    from psa.errors import PsaError

    with pytest.raises(PsaError, match=r"seg/model.pt was trained with other inputs: irn.beta was 10.0"):
        run(changed, Reporter())


# ----------------------------------------------------------------------------- instances


def test_centroids_and_their_grouping_on_a_hand_made_field():
    from psa.methods.irn.instance_ops import cluster_centroids, find_centroids

    height, width = 10, 16
    ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    centre_x = np.where(xs < 8, 3.0, 12.0)  # two objects: the left half points at (5, 3), the right at (5, 12)
    field = np.stack([5.0 - ys, centre_x - xs]).astype(np.float32) * 0.5  # half the way each step
    centroids = find_centroids(field, iterations=60)
    np.testing.assert_array_equal(centroids[0], np.full((height, width), 5))
    np.testing.assert_array_equal(centroids[1], centre_x.astype(np.int32))
    groups = cluster_centroids(centroids, field, threshold=1.5)  # two separate weak discs (radius 3)
    assert groups.shape == (2, height, width)
    np.testing.assert_array_equal(groups[0], xs < 8)
    np.testing.assert_array_equal(groups[1], xs >= 8)


def test_detected_instances_are_the_connected_segments_scored_by_their_peak():
    from psa.methods.irn.instance_ops import detect_instances

    mask = np.zeros((1, 6, 9), dtype=bool)
    mask[0, 1:4, 1:3] = True  # 6 pixels
    mask[0, 2, 6] = True  # 1 pixel, not 4-connected to the first
    scores = np.arange(54, dtype=float).reshape(1, 6, 9) / 54
    found = detect_instances(scores, mask, np.array([7]), min_area=2)
    assert [(int(i.mask.sum()), i.class_id) for i in found] == [(6, 7), (1, 7)]
    assert found[0].score == pytest.approx(scores[0, 3, 2]) and found[1].score == 0.0  # a fragment scores 0


def test_instance_ap_on_hand_made_cases():
    from psa.metrics import instance_ap

    a = np.zeros((1, 4, 4), dtype=bool)
    a[0, :2, :2] = True
    b = np.zeros((1, 4, 4), dtype=bool)
    b[0, 2:, 2:] = True
    truth = [{"masks": np.concatenate([a, b]), "classes": np.array([1, 1])}]
    miss = np.zeros((1, 4, 4), dtype=bool)
    miss[0, 0, 3] = True
    # a hit ranked above a miss: precision 1 at recall 0.5 -> AP 0.5
    first = [{"masks": np.concatenate([a, miss]), "classes": np.array([1, 1]), "scores": np.array([0.9, 0.5])}]
    assert instance_ap(first, truth, 3)["ap"] == [0.5, None]
    # the miss ranked first: precision 0.5 at recall 0.5 -> AP 0.25
    second = [{"masks": np.concatenate([a, miss]), "classes": np.array([1, 1]), "scores": np.array([0.5, 0.9])}]
    assert instance_ap(second, truth, 3)["map"] == pytest.approx(0.25)
    # half of a (IoU 0.5) ranked first, then a itself, then b
    half = a.copy()
    half[0, 1, :2] = False
    third = [{"masks": np.concatenate([half, a, b]), "classes": np.array([1, 1, 1]), "scores": np.array([.9, .8, .7])}]
    # IoU >= 0.5: hit, duplicate (a is taken: false positive), hit -> precision 1, 1/2, 2/3 at recall
    # 1/2, 1/2, 1; area under the envelope = 1/2 · 1 + 1/2 · 2/3
    assert instance_ap(third, truth, 3, iou_threshold=0.5)["map"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    # IoU >= 0.75: miss, hit, hit -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1; envelope 2/3 throughout
    assert instance_ap(third, truth, 3, iou_threshold=0.75)["map"] == pytest.approx(2 / 3)


def test_synthetic_instances_round_trip_through_the_voc_layout(tmp_path):
    from psa.data import VocSource
    from psa.data import SyntheticSource, materialize_voc

    source = SyntheticSource("train", num_images=4, image_size=48, num_classes=5, max_objects=3)
    materialize_voc(source, tmp_path)
    voc = VocSource(tmp_path, "train")
    assert voc.has_instances
    for index in range(4):
        ours, theirs = source.load_instances(index), voc.load_instances(index)
        np.testing.assert_array_equal(ours.masks, theirs.masks)
        np.testing.assert_array_equal(ours.labels, theirs.labels)
        np.testing.assert_array_equal(np.sort(np.unique(ours.labels)), source.image_labels(index))


@pytest.mark.slow
def test_two_processes_train_irn_like_one_on_the_same_global_batch(tiny_recipe, tmp_path):
    """gloo DDP on 2 CPU processes against 1 process, same global batch of 8: the same losses
    and weights up to float reduction order (IRN's MeanShift statistics, running means of
    each process's own batches, are left out: they only shift the displacement at inference)."""
    import json

    from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES
    from psa.engine.checkpoints import load_weights
    from psa.framework.training import train_task
    from conftest import launch

    same = (*IRN_TINY, "model.freeze_bn=true", "irn.init=imagenet", "irn.train.optimizer=sgd", "irn.train.lr=0.05",
            "irn.train.momentum=0.9", "irn.train.epochs=2", "run.deterministic=true", "task=irn")
    single = tiny_recipe(*same, run_dir=tmp_path / "one")
    _relation_labels_from_gt(single)
    one = train_task(single, "irn")
    two_dir = tmp_path / "two"
    _relation_labels_from_gt(tiny_recipe(*same, run_dir=two_dir))
    result = launch(ROOT / "tests" / "scripts" / "ddp_train.py", str(CORE_DEMO),
                    *TINY_OVERRIDES, *same, f"run.dir={two_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((two_dir / "result_of_2.json").read_text())
    assert one.steps == two["steps"] == 4
    np.testing.assert_allclose(two["losses"], one.losses, rtol=1e-4)
    a, _ = load_weights(one.weights, "irn", "resnet10t")
    b, _ = load_weights(two_dir / "irn" / "model.pt", "irn", "resnet10t")
    learned = [k for k in a if not k.startswith("backbone.") and "running" not in k and "num_batches" not in k]
    assert learned
    differ = max((a[k].float() - b[k].float()).abs().max().item() for k in learned)
    # the displacement branch learns at 10x lr with momentum: float reduction order alone moves
    # its weights by up to ~1.4e-3 (of ~0.1) on some CPUs; a wrong gradient scale moves them by
    # a whole update. The losses above are the sharp check.
    assert differ < 5e-3, differ
    assert abs(one.losses[-1] - one.losses[0]) > 1e-3  # the heads did learn: equal weights are not trivial


@pytest.mark.parametrize("name", ["demo", "msrc", "irn"])
def test_the_recipes_with_irn_plan_its_steps_after_the_cam_export(name):
    """The demo and MSRC-v2 recipes add IRN to their core (recipes/_base_/); irn.yaml is IRN on VOC."""
    from conftest import ROOT
    from psa import load_recipe
    from psa.framework.registry import REGISTRY

    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    order = [step.name for step in REGISTRY.selected(recipe)]
    assert order.index("export_cams") < order.index("irn_labels") < order.index("train_irn") < order.index("irn_walk")
    assert recipe.irn.train.epochs >= 1


def test_seg_masks_irn_moves_the_seg_network_after_irns_walk(tiny_recipe):
    from psa.framework.registry import REGISTRY

    steps = ["train_seg", "irn_walk", "train_irn", "irn_labels", "export_cams", "train_cam"]
    by_rw = [step.name for step in REGISTRY.selected(tiny_recipe(f"pipeline.steps=[{','.join(steps)}]"))]
    assert by_rw == ["train_cam", "export_cams", "irn_labels", "train_irn", "irn_walk", "train_seg"]
    by_irn = [step.name for step in REGISTRY.ordered(tiny_recipe("seg.masks=irn"))]
    assert by_irn.index("train_seg") > by_irn.index("irn_walk") > by_irn.index("train_irn")
    assert REGISTRY.get("train_seg").spec.upstream(tiny_recipe("seg.masks=irn")) == (REGISTRY.get("irn_walk"),)
