"""Diagnosis of a finished run: the bounds that say which stage holds the pseudo masks back.

For each image of the evaluation split (with ground truth):
- the CAM prediction at the recipe's background threshold and over the threshold sweep;
- the random walk over the learned affinities (when AffinityNet is trained);
- the same walk over affinities built from the ground-truth mask (same segment → 1, else 0):
  the best any affinity could do with these CAMs, so a low value blames the classifier;
- the confident labels' precision and coverage (what AffinityNet learns from);
- AffinityNet's accuracy on ground-truth pairs (bg / fg / neg, threshold 0.5);
- the classifier's per-class average precision from image-level scores.

It runs in one process (on the GPU when there is one): it is a report over ~100s of images,
not a production stage. Outputs: `<run.dir>/diagnose/diagnose.json` and TensorBoard text.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from ..config import Recipe
from ..constants import FEATURE_STRIDE, IGNORE_INDEX
from ..data.transforms import downsample_label, normalize, pad_to_multiple
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import atomic_write_json
from ..layout import RunLayout
from ..metrics import confusion_matrix, multilabel_scores, segmentation_scores
from ..ops.affinity_labels import label_affinity, pair_labels
from ..ops.cam import cam_prediction
from ..ops.walk_scores import upsample_scores
from ..tasks.affinity import confident_label_path
from .common import items_for, output_dirs
from .evaluate import sweep_thresholds
from .export_cams import load_cam_file, load_cam_net
from .random_walk import load_affinity_net, walk_with_affinity
PAIR_SETS = ("bg", "fg", "neg")
# a walk within this many mIoU points of its ground-truth bound has little left to gain
NEAR_BOUND = 0.03


def ground_truth_affinity(mask: np.ndarray, radius: int) -> tuple[np.ndarray, torch.Tensor]:
    """Stride-8 ground truth of the padded image (255 in the padding) and its affinities."""
    height, width = mask.shape
    padded = np.full((height + (-height % FEATURE_STRIDE), width + (-width % FEATURE_STRIDE)),
                     IGNORE_INDEX, dtype=np.uint8)
    padded[:height, :width] = mask
    small = downsample_label(padded, FEATURE_STRIDE)
    return small, label_affinity(small, radius)


def walk_prediction(cams: np.ndarray, affinity: torch.Tensor, recipe: Recipe, lookup: np.ndarray,
                    shape: tuple[int, int]) -> np.ndarray:
    scores = walk_with_affinity(cams, affinity, recipe)
    return lookup[upsample_scores(scores, *shape).argmax(0)]


class _Tally:
    """Running sums over the split."""

    def __init__(self, num_classes: int, thresholds: list[float]):
        shape = (num_classes, num_classes + 1)
        self.num = num_classes
        self.conf = {name: np.zeros(shape, np.int64) for name in ("cam", "rw", "rw_gt", "labels")}
        self.sweep = np.zeros((len(thresholds), *shape), np.int64)
        self.pairs = {key: {"pairs": 0, "correct": 0, "affinity_sum": 0.0} for key in PAIR_SETS}
        self.logits: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []

    def add(self, name: str, pred: np.ndarray, gt: np.ndarray) -> None:
        self.conf[name] += confusion_matrix(pred, gt, self.num)

    def add_pairs(self, affinity: torch.Tensor, small_gt: np.ndarray, radius: int) -> None:
        for key, mask in pair_labels(small_gt, radius).items():
            values = affinity[mask]
            same = key != "neg"
            self.pairs[key]["pairs"] += int(values.numel())
            self.pairs[key]["correct"] += int(((values > 0.5) == same).sum())
            self.pairs[key]["affinity_sum"] += float(values.sum())


def label_quality(conf: np.ndarray) -> dict:
    """Precision and coverage of a label map with 255 = no label, from its confusion matrix
    (the last column counts unlabelled pixels); overall, on background and on objects."""
    square = conf[:, :-1]

    def part(rows: slice, cols: slice, correct: float) -> dict:
        labelled, total = square[:, cols].sum(), conf[rows].sum()
        region = square[rows].sum()
        return {"precision": correct / labelled if labelled else None,
                "coverage": region / total if total else None}

    trace = float(np.trace(square))
    overall = part(slice(None), slice(None), trace)
    background = part(slice(0, 1), slice(0, 1), float(square[0, 0]))
    objects = part(slice(1, None), slice(1, None), trace - float(square[0, 0]))
    return {"precision": overall["precision"], "coverage": overall["coverage"],
            "bg_precision": background["precision"], "bg_coverage": background["coverage"],
            "fg_precision": objects["precision"], "fg_coverage": objects["coverage"]}


def class_edges(label: np.ndarray) -> np.ndarray:
    """bool: cells with a 4-neighbour of another class (both labelled, not IGNORE_INDEX)."""
    edges = np.zeros(label.shape, dtype=bool)
    valid = label != IGNORE_INDEX
    vertical = (label[1:] != label[:-1]) & valid[1:] & valid[:-1]
    edges[1:] |= vertical
    edges[:-1] |= vertical
    horizontal = (label[:, 1:] != label[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    return edges


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Each cell and its 8 neighbours: a one-cell tolerance."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    return out


def boundary_counts(boundary: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """IRN's boundary map (h, w) at stride 4 against the class edges of the ground truth taken
    at the same stride (nearest), one cell of tolerance: (predicted near an edge, predicted,
    edges near a prediction, edges)."""
    stride = -(-gt.shape[0] // boundary.shape[0])
    small = gt[stride // 2::stride, stride // 2::stride][:boundary.shape[0], :boundary.shape[1]]
    boundary = boundary[:small.shape[0], :small.shape[1]]
    predicted, edges = boundary > threshold, class_edges(small)
    return np.array([(predicted & _dilate(edges)).sum(), predicted.sum(), (edges & _dilate(predicted)).sum(),
                     edges.sum()], dtype=np.int64)


def bottleneck(report: dict) -> str:
    """One sentence: the stage to fix first, read off the bounds."""
    cam_best = report["cam"]["best_miou"] or 0.0
    bound = report["rw_gt_affinity"]["miou"] or 0.0
    learned = (report.get("rw_learned") or {}).get("miou")
    if bound < cam_best + NEAR_BOUND:
        return ("classifier: even ground-truth affinities lift these CAMs by less than "
                f"{100 * NEAR_BOUND:.0f} points; fix the CAMs (classifier, alpha, scales) first")
    if learned is None:
        return "affinity not trained yet: the walk could gain up to the ground-truth bound"
    if learned < bound - NEAR_BOUND:
        return ("affinity: the learned walk trails its ground-truth bound; see the confident "
                "labels and the pair accuracy")
    return "walk near its bound: gains now need better CAMs"


def diagnose(recipe: Recipe, split: str | None = None, reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    split = split or recipe.data.eval_split
    items = items_for(recipe, [split])
    if not items[0].source.has_masks:
        raise PsaError(f"split {split!r} has no ground-truth masks to diagnose against")
    classes = list(items[0].source.classes)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layout = RunLayout.of(recipe)
    cam_model = load_cam_net(recipe).to(device)
    affinity_trained = layout.stage("affinity").weights.is_file()
    affinity_model = load_affinity_net(recipe).to(device) if affinity_trained else None
    cam_dir = layout.cams
    out_dir = layout.diagnose
    output_dirs(recipe, out_dir.path)

    radius = recipe.random_walk.radius
    thresholds = sweep_thresholds(recipe)
    tally = _Tally(len(classes), thresholds)
    have_labels = True
    boundary_tally = np.zeros(4, dtype=np.int64)  # IRN's boundary maps, where the IRN walk wrote them
    started = time.perf_counter()
    reporter.start("diagnose", total=len(items))
    for position, item in enumerate(items, 1):
        cam_path = cam_dir / f"{item.image_id}.npz"
        if not cam_path.is_file():
            raise PsaError(f"CAM file missing: {cam_path}; run tools/export_cams.py first")
        cams, class_ids = load_cam_file(cam_path)
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        if cams.shape[1:] != gt.shape:
            raise PsaError(f"CAMs in {cam_path} are {cams.shape[1:]}, the mask is {gt.shape} "
                           f"(exported with another data.max_size?)")
        lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
        tally.add("cam", cam_prediction(cams, class_ids, recipe.cam.bg_threshold), gt)
        for t, threshold in enumerate(thresholds):
            tally.sweep[t] += confusion_matrix(cam_prediction(cams, class_ids, threshold), gt, len(classes))

        small_gt, gt_affinity = ground_truth_affinity(gt, radius)
        tally.add("rw_gt", walk_prediction(cams, gt_affinity.to(device), recipe, lookup, gt.shape), gt)
        x = pad_to_multiple(normalize(image), FEATURE_STRIDE)[None].to(device)
        with torch.no_grad():
            if affinity_model is not None:
                affinity = affinity_model(x, radius)[0].float()
                tally.add("rw", walk_prediction(cams, affinity, recipe, lookup, gt.shape), gt)
                tally.add_pairs(affinity.cpu(), small_gt, radius)
            tally.logits.append(cam_model(x).float().cpu().numpy()[0])
        target = np.zeros(len(classes) - 1, dtype=np.int64)
        target[item.source.image_labels(item.index) - 1] = 1
        tally.targets.append(target)

        boundary_path = layout.boundaries / f"{item.image_id}.png"
        if boundary_path.is_file():
            boundary_tally += boundary_counts(_read_png(boundary_path) / 255.0, gt)

        label_path = confident_label_path(recipe, item.image_id)
        if label_path.is_file():
            labels = _read_png(label_path)
            if labels.shape != gt.shape:
                raise PsaError(f"confident label {label_path} is {labels.shape}, the mask is {gt.shape}")
            tally.add("labels", labels, gt)
        else:
            have_labels = False
        reporter.update(position)
    reporter.finish()

    report = _report(recipe, tally, classes, thresholds, split, len(items), affinity_trained, have_labels)
    near_edge, predicted, found, edges = boundary_tally.tolist()
    report["irn_boundary"] = {"precision": near_edge / predicted if predicted else None,
                              "recall": found / edges if edges else None, "edge_cells": edges,
                              "threshold": 0.5} if edges else None
    report["irn"] = _eval_miou(recipe, "irn", stage="irn")
    report["irn_crf"] = _eval_miou(recipe, "irn_crf", stage="irn")
    report["seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_json(out_dir / "diagnose.json", report)
    _write_tensorboard(out_dir, report)
    return report


def _read_png(path):
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image)


def _report(recipe: Recipe, tally: _Tally, classes: list, thresholds: list, split: str, images: int,
            affinity_trained: bool, have_labels: bool) -> dict:
    scores = {name: segmentation_scores(conf, classes) for name, conf in tally.conf.items()}
    sweep = {str(t): segmentation_scores(c, classes)["miou"] for t, c in zip(thresholds, tally.sweep)}
    best = max(sweep, key=lambda k: -1 if sweep[k] is None else sweep[k]) if sweep else None
    classifier = multilabel_scores(np.stack(tally.logits), np.stack(tally.targets))
    rw = recipe.random_walk
    report = {
        "split": split, "images": images,
        "split_is_training_data": split == recipe.data.train_split,
        "walk": {"alpha": rw.alpha, "beta": rw.beta, "logt": rw.logt, "radius": rw.radius},
        "cam": {"bg_threshold": recipe.cam.bg_threshold, "miou": scores["cam"]["miou"],
                "best_bg_threshold": float(best) if best else None,
                "best_miou": sweep[best] if best else None, "sweep": sweep},
        "rw_learned": {"miou": scores["rw"]["miou"]} if affinity_trained else None,
        "rw_gt_affinity": {"miou": scores["rw_gt"]["miou"]},
        "rw_crf": _eval_miou(recipe, "rw_crf"),
        "confident_labels": label_quality(tally.conf["labels"]) if have_labels else None,
        "pair_accuracy": {key: {"pairs": p["pairs"],
                                "accuracy": p["correct"] / p["pairs"] if p["pairs"] else None,
                                "mean_affinity": p["affinity_sum"] / p["pairs"] if p["pairs"] else None}
                          for key, p in tally.pairs.items()} if affinity_trained else None,
        "classifier": {"mAP": classifier["mAP"],
                       "ap": {name: ap for name, ap in zip(classes[1:], classifier["ap"])}},
        "iou": {"cam": scores["cam"]["iou"], "rw_gt_affinity": scores["rw_gt"]["iou"],
                **({"rw_learned": scores["rw"]["iou"]} if affinity_trained else {})},
    }
    report["bottleneck"] = bottleneck(report)
    return report


def _eval_miou(recipe: Recipe, name: str, stage: str = "affinity") -> float | None:
    """mIoU written by tools/eval.py (e.g. --crf, which the diagnosis does not redo)."""
    path = RunLayout.of(recipe).stage(stage).eval(name) / "metrics.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("miou")
    except (OSError, ValueError):
        return None


def summary_rows(report: dict) -> list[tuple[str, float | None]]:
    """(row, mIoU) in the order a reader follows the pipeline; one source for CLI and TB."""
    cam = report["cam"]
    return [
        (f"CAM (bg threshold {cam['bg_threshold']})", cam["miou"]),
        (f"CAM (best bg threshold {cam['best_bg_threshold']})", cam["best_miou"]),
        ("CAM + random walk (learned affinities)", (report["rw_learned"] or {}).get("miou")),
        ("CAM + random walk + dCRF (tools/eval.py --crf)", report["rw_crf"]),
        ("CAM + random walk (ground-truth affinities: bound)", report["rw_gt_affinity"]["miou"]),
        *([("CAM + IRN boundary walk (tools/eval.py --source irn)", report["irn"]),
           ("CAM + IRN boundary walk + dCRF", report["irn_crf"])] if report.get("irn") is not None else []),
    ]


def _write_tensorboard(out_dir, report: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}"

    lines = ["| stage | mIoU % |", "|---|---:|"] + [f"| {row} | {pct(v)} |" for row, v in summary_rows(report)]
    lines += ["", f"**bottleneck:** {report['bottleneck']}"]
    with SummaryWriter(log_dir=str(out_dir.tensorboard)) as writer:
        writer.add_text("diagnose/summary", "\n".join(lines), 0)
        writer.add_text("diagnose/json", "```\n" + json.dumps(report, indent=1) + "\n```", 0)
