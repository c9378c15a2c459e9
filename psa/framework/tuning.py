"""Post-hoc tuning: recipe keys whose effect a method can recompute from a finished run's
stored files (CAM files, the walk's scores, the networks' weights) without rerunning any
step or writing into the run — the settings a user chooses on the masks they have.

A method registers a `Tuner` for the keys it can vary so; `psa tune` (psa/tune.py) takes a
grid of them, finds the tuner that covers its keys, and gets one row of metrics per point.
The dense CRF that refines a pseudo-mask source's scores is every source's, so its tuner is
registered here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import Recipe
from ..engine.report import Reporter
from ..errors import PsaError
from ..metrics import Confusion
from ..ops.scores import ScoreFile, to_probabilities
from .items import Item, items_for
from .masks import MaskSource
from .predictions import crf_label
from .registry import REGISTRY


@dataclass(frozen=True)
class TuneOptions:
    every: int = 1  # score every N-th image of the split
    source: str = "rw"  # the pseudo-mask source a tuner of masks reads (the CRF's, the confidence's)


@dataclass(frozen=True)
class Tuner:
    name: str
    keys: tuple[str, ...]  # the recipe keys (or sections) it varies
    columns: tuple[tuple[str, str], ...]  # (metric, title) of its rows, fractions shown as %
    # (the run's recipe, one recipe per point, options, reporter) -> one dict of metrics per point
    run: Callable[[Recipe, list[Recipe], TuneOptions, Reporter], list[dict]]
    help: str = ""


def tune_items(recipe: Recipe, split: str, every: int) -> list[Item]:
    """Every `every`-th image of `split`, which must have ground-truth masks."""
    items = items_for(recipe, [split])[::max(every, 1)]
    if not items[0].source.has_masks:
        raise PsaError(f"split {split!r} has no ground-truth masks to tune against")
    return items


def mask_source(recipe: Recipe, name: str) -> MaskSource:
    return REGISTRY.find(MaskSource, name, "--source")


def _crf(base: Recipe, points: list[Recipe], options: TuneOptions, reporter: Reporter) -> list[dict]:
    """The source's stored scores refined by each point's dense CRF, against the masks."""
    source = mask_source(base, options.source)
    if source.scores is None:
        raise PsaError(f"source {source.name!r} writes no class scores for the CRF to refine")
    items = tune_items(base, base.data.eval_split, options.every)
    classes = items[0].source.classes
    plain, refined = Confusion(len(classes)), [Confusion(len(classes)) for _ in points]
    reporter.start(f"tune the CRF of {source.name}", total=len(items))
    for position, item in enumerate(items, 1):
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        scores = ScoreFile.read(source.scores(base) / f"{item.image_id}.npz")
        full = scores.at_size(*gt.shape)
        plain.add(scores.lookup[full.argmax(0)], gt)
        probs = to_probabilities(full)
        for point, tally in zip(points, refined):
            tally.add(crf_label(image, probs, scores.lookup, point.refining_crf()), gt)
        reporter.update(position)
    reporter.finish()
    without = plain.scores(classes)["miou"]
    return [{"miou_crf": tally.scores(classes)["miou"], "miou": without} for tally in refined]


CRF = REGISTRY.add(Tuner("crf", ("crf", "mask_crf"), (("miou", "no CRF"), ("miou_crf", "with the CRF")), _crf,
                         "the dense CRF refining a source's masks (--source), on its stored scores"))
