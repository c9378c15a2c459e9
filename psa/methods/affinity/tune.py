"""The walk's settings tuned on a finished run: AffinityNet's features are computed once per
image, then every point walks the stored CAMs over the learned affinities at its radius, and
over the ground-truth affinities (the point's bound)."""

from __future__ import annotations

import torch

from ...config import Recipe
from ...constants import FEATURE_STRIDE
from ...data.transforms import normalize, pad_to_multiple
from ...engine.report import Reporter
from ...framework.cams import cam_export
from ...framework.tuning import TuneOptions, Tuner, tune_items
from ...metrics import Confusion
from .diagnosis import ground_truth_affinity, walk_prediction
from .layout import stage
from .ops import pair_affinity


def tune_walk(load_model):
    """`load_model(recipe)`: the trained AffinityNet (without it, the bounds alone)."""
    def run(base: Recipe, points: list[Recipe], options: TuneOptions, reporter: Reporter) -> list[dict]:
        export = cam_export()
        items = tune_items(base, base.data.eval_split, options.every)
        classes = items[0].source.classes
        model = load_model(base) if stage(base).weights.is_file() else None
        learned = [Confusion(len(classes)) for _ in points]
        bound = [Confusion(len(classes)) for _ in points]
        reporter.start("tune the walk", total=len(items))
        for position, item in enumerate(items, 1):
            cam = export.read(base, item.image_id)
            image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
            features = None
            if model is not None:
                with torch.no_grad():
                    features = model.features(pad_to_multiple(normalize(image), FEATURE_STRIDE)[None])
            for point, walked, ceiling in zip(points, learned, bound):
                radius = point.random_walk.radius
                if features is not None:
                    affinity = pair_affinity(features, radius)[0].float()
                    walked.add(walk_prediction(cam.cams, affinity, point, cam.lookup, gt.shape), gt)
                _, gt_affinity = ground_truth_affinity(gt, radius)
                ceiling.add(walk_prediction(cam.cams, gt_affinity, point, cam.lookup, gt.shape), gt)
            reporter.update(position)
        reporter.finish()
        return [{"miou": walked.scores(classes)["miou"] if model is not None else None,
                 "bound": ceiling.scores(classes)["miou"]} for walked, ceiling in zip(learned, bound)]
    return run


def walk_tuner(load_model) -> Tuner:
    return Tuner("walk", ("random_walk.alpha", "random_walk.beta", "random_walk.logt", "random_walk.radius"),
                 (("miou", "walk"), ("bound", "gt-affinity bound")), tune_walk(load_model),
                 "the random walk over the learned and the ground-truth affinities")
