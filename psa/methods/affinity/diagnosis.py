"""AffinityNet's part of the diagnosis: the walk over the learned affinities (once trained),
the same walk over affinities built from the ground-truth mask (same segment → 1, else 0) —
the best any affinity could do with these CAMs, so a low value blames the classifier — and
AffinityNet's accuracy on ground-truth pairs (bg / fg / neg, threshold 0.5)."""

from __future__ import annotations

import numpy as np
import torch

from ...config import Recipe
from ...constants import FEATURE_STRIDE, IGNORE_INDEX
from ...data.transforms import downsample_label, normalize, pad_to_multiple
from ...framework.diagnosis import Bound, DiagnosedImage, Finding, Table
from ...metrics import Confusion
from ...ops.affinity_labels import label_affinity, pair_labels
from ...ops.scores import upsample_scores
from .layout import stage
from .walk import walk_with_affinity

PAIR_SETS = ("bg", "fg", "neg")


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


class AffinityProbe:
    def __init__(self, recipe: Recipe, classes: list[str], device, model):
        self.recipe, self.classes, self.device, self.model = recipe, classes, device, model
        self.learned, self.bound = Confusion(len(classes)), Confusion(len(classes))
        self.pairs = {key: {"pairs": 0, "correct": 0, "affinity_sum": 0.0} for key in PAIR_SETS}

    def add(self, seen: DiagnosedImage) -> None:
        radius, cam = self.recipe.random_walk.radius, seen.cam
        small_gt, gt_affinity = ground_truth_affinity(seen.gt, radius)
        self.bound.add(walk_prediction(cam.cams, gt_affinity.to(self.device), self.recipe, cam.lookup,
                                       seen.gt.shape), seen.gt)
        if self.model is None:
            return
        x = pad_to_multiple(normalize(seen.image), FEATURE_STRIDE)[None].to(self.device)
        with torch.no_grad():
            affinity = self.model(x, radius)[0].float()
        self.learned.add(walk_prediction(cam.cams, affinity, self.recipe, cam.lookup, seen.gt.shape), seen.gt)
        affinity = affinity.cpu()
        for key, mask in pair_labels(small_gt, radius).items():
            values = affinity[mask]
            same = key != "neg"
            self.pairs[key]["pairs"] += int(values.numel())
            self.pairs[key]["correct"] += int(((values > 0.5) == same).sum())
            self.pairs[key]["affinity_sum"] += float(values.sum())

    def finish(self) -> Finding:
        trained = self.model is not None
        bound = self.bound.scores(self.classes)
        learned = self.learned.scores(self.classes) if trained else None
        rw = self.recipe.random_walk
        settings = f"alpha {rw.alpha:g}, beta {rw.beta:g}, t = 2^{rw.logt}, radius {rw.radius}"
        pairs = {key: {"pairs": p["pairs"], "accuracy": p["correct"] / p["pairs"] if p["pairs"] else None,
                       "mean_affinity": p["affinity_sum"] / p["pairs"] if p["pairs"] else None}
                 for key, p in self.pairs.items()} if trained else None
        report = {"walk": {"alpha": rw.alpha, "beta": rw.beta, "logt": rw.logt, "radius": rw.radius},
                  "rw_learned": {"miou": learned["miou"]} if trained else None,
                  "rw_gt_affinity": {"miou": bound["miou"]}, "pair_accuracy": pairs}
        tables = []
        if pairs is not None:
            tables.append(Table("AffinityNet on ground-truth pairs (same segment: affinity > 0.5)",
                                ["pairs", "count", "accuracy %", "mean affinity"],
                                [[key, str(p["pairs"]), _pct(p["accuracy"]),
                                  "n/a" if p["mean_affinity"] is None else f"{p['mean_affinity']:.3f}"]
                                 for key, p in pairs.items()]))
        iou = {"IoU RW": learned["iou"]} if trained else {}
        iou["IoU RW (gt aff.)"] = bound["iou"]
        return Finding(report, rows=[(f"CAM + random walk (learned affinities; {settings})",
                                      learned["miou"] if trained else None),
                                     ("CAM + random walk (ground-truth affinities: bound)", bound["miou"])],
                       bound=Bound("affinity", bound["miou"], learned["miou"] if trained else None,
                                   trails="the learned walk trails its ground-truth bound; see the confident "
                                          "labels and the pair accuracy"),
                       tables=tables, iou=iou)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def open_probe(load_model):
    """The Probe's `open`: the walk's bound always, the learned walk once AffinityNet is trained."""
    def start(recipe: Recipe, classes: list[str], device) -> AffinityProbe:
        model = load_model(recipe).to(device) if stage(recipe).weights.is_file() else None
        return AffinityProbe(recipe, classes, device, model)
    return start
