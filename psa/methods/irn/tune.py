"""IRN's semantic background plane (`irn.sem_bg_threshold`) tuned on a finished boundary
walk: its stored scores (already divided by their maximum) with each point's plane."""

from __future__ import annotations

from ...config import Recipe
from ...engine.report import Reporter
from ...framework.tuning import TuneOptions, Tuner, tune_items
from ...metrics import Confusion
from ...ops.scores import ScoreFile
from .layout import walk_folders


def tune_background(base: Recipe, points: list[Recipe], options: TuneOptions, reporter: Reporter) -> list[dict]:
    items = tune_items(base, base.data.eval_split, options.every)
    classes = items[0].source.classes
    tallies = [Confusion(len(classes)) for _ in points]
    reporter.start("tune IRN's background", total=len(items))
    for position, item in enumerate(items, 1):
        gt = item.source.load_mask(item.index)
        scores = ScoreFile.read(walk_folders(base)["scores"] / f"{item.image_id}.npz")
        for point, tally in zip(points, tallies):
            scores.scores[0] = point.irn.sem_bg_threshold
            tally.add(scores.lookup[scores.at_size(*gt.shape).argmax(0)], gt)
        reporter.update(position)
    reporter.finish()
    return [{"miou": tally.scores(classes)["miou"]} for tally in tallies]


BACKGROUND = Tuner("background", ("irn.sem_bg_threshold",), (("miou", "IRN walk"),), tune_background,
                   "the background plane of IRN's walked scores")
