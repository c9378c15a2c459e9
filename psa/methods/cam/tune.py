"""The CAM stage's settings tuned on a finished run: the confident labels' alphas (two dense
CRFs per point over the stored CAMs) and the export's scales (the trained classifier run
again at each point's scales)."""

from __future__ import annotations

import time

import torch

from ...config import Recipe
from ...engine.report import Reporter
from ...framework.cams import cam_export, classifier
from ...framework.evaluation import sweep_thresholds
from ...framework.tuning import TuneOptions, Tuner, tune_items
from ...metrics import Confusion, ThresholdSweep, label_quality
from ...ops.cam import cam_prediction, confident_labels, multiscale_cam


def tune_labels(base: Recipe, points: list[Recipe], options: TuneOptions, reporter: Reporter) -> list[dict]:
    export = cam_export()
    items = tune_items(base, base.data.eval_split, options.every)
    classes = items[0].source.classes
    tallies = [Confusion(len(classes)) for _ in points]
    reporter.start("tune the confident labels", total=len(items))
    for position, item in enumerate(items, 1):
        cam = export.read(base, item.image_id)
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        for point, tally in zip(points, tallies):
            tally.add(confident_labels(image, cam.cams, cam.class_ids, point.cam.low_alpha, point.cam.high_alpha,
                                       point.crf), gt)
        reporter.update(position)
    reporter.finish()
    return [label_quality(tally.matrix) for tally in tallies]


def tune_scales(base: Recipe, points: list[Recipe], options: TuneOptions, reporter: Reporter) -> list[dict]:
    items = tune_items(base, base.data.eval_split, options.every)
    classes = items[0].source.classes
    model = classifier().load(base, classes)
    found = [(Confusion(len(classes)), ThresholdSweep(sweep_thresholds(base), len(classes)), [0.0]) for _ in points]
    reporter.start("tune the CAM scales", total=len(items))
    for position, item in enumerate(items, 1):
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        class_ids = item.source.image_labels(item.index)
        for point, (at_threshold, sweep, seconds) in zip(points, found):
            started = time.perf_counter()
            with torch.no_grad():
                cams = multiscale_cam(model, image, class_ids - 1, point.cam.scales, point.cam.flip).numpy()
            seconds[0] += time.perf_counter() - started
            at_threshold.add(cam_prediction(cams, class_ids, point.cam.bg_threshold), gt)
            sweep.add(lambda t: cam_prediction(cams, class_ids, t), gt)
        reporter.update(position)
    reporter.finish()
    rows = []
    for at_threshold, sweep, seconds in found:
        best = sweep.best(classes)
        rows.append({"miou": at_threshold.scores(classes)["miou"], "best_miou": sweep.table(classes)[best],
                     "best_bg_threshold": best, "seconds_per_image": round(seconds[0] / len(items), 3)})
    return rows


LABELS = Tuner("labels", ("cam.low_alpha", "cam.high_alpha"),
               (("fg_precision", "fg precision"), ("fg_coverage", "fg coverage"), ("bg_precision", "bg precision"),
                ("bg_coverage", "bg coverage"), ("precision", "precision"), ("coverage", "coverage")),
               tune_labels, "the confident labels AffinityNet and IRN learn from, over the stored CAMs")
SCALES = Tuner("scales", ("cam.scales", "cam.flip"),
               (("miou", "CAM"), ("best_miou", "CAM best bg"), ("best_bg_threshold", "best bg"),
                ("seconds_per_image", "s / image")),
               tune_scales, "the CAM export's scales, with the trained classifier")
