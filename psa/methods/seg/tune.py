"""`seg.min_confidence` tuned on a finished walk: per threshold, the share of the training
images' labelled pixels the network would still learn from (the masks `seg.labels` names,
of the source `seg.masks`), and how right those pixels are."""

from __future__ import annotations

import numpy as np

from ...config import Recipe
from ...constants import IGNORE_INDEX
from ...engine.report import Reporter
from ...framework.segmentation import mask_source
from ...framework.tuning import TuneOptions, Tuner, tune_items
from ...errors import PsaError
from ...io import read_label_png
from ...metrics import Confusion
from ...ops.scores import top_class_probability


def tune_confidence(base: Recipe, points: list[Recipe], options: TuneOptions, reporter: Reporter) -> list[dict]:
    source = mask_source(base, "seg")
    if source is None or source.scores is None:
        raise PsaError("seg.min_confidence needs pseudo labels (seg.labels) from a source with class scores")
    items = tune_items(base, base.data.train_split, options.every)
    classes = items[0].source.classes
    tallies = [Confusion(len(classes)) for _ in points]
    kept, labelled = np.zeros(len(points)), 0
    reporter.start("tune the label confidence", total=len(items))
    for position, item in enumerate(items, 1):
        gt = item.source.load_mask(item.index)
        mask = read_label_png(source.folder(base, base.seg.labels) / f"{item.image_id}.png", "pseudo mask",
                              gt.shape, against="the ground truth")
        confidence = top_class_probability(source.scores(base) / f"{item.image_id}.npz", gt.shape)
        valid = (gt != IGNORE_INDEX) & (mask != IGNORE_INDEX)
        labelled += int(valid.sum())
        for k, (point, tally) in enumerate(zip(points, tallies)):
            keep = valid & (confidence >= point.seg.min_confidence)
            kept[k] += int(keep.sum())
            tally.add(np.where(keep, mask, IGNORE_INDEX), np.where(keep, gt, IGNORE_INDEX))
        reporter.update(position)
    reporter.finish()
    return [{"kept": float(count / max(labelled, 1)), "miou": tally.scores(classes)["miou"],
             "pixel_acc": tally.scores(classes)["pixel_acc"]} for count, tally in zip(kept, tallies)]


CONFIDENCE = Tuner("confidence", ("seg.min_confidence",),
                   (("kept", "pixels kept"), ("miou", "their mIoU"), ("pixel_acc", "their accuracy")),
                   tune_confidence, "which of the pseudo masks' pixels the network learns from")
