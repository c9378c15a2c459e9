"""The random walk: each image's CAMs spread over AffinityNet's affinities → class scores,
pseudo masks (and, with `random_walk.crf`, masks refined by the dense CRF)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...config import Recipe
from ...constants import FEATURE_STRIDE
from ...data.transforms import normalize, pad_to_multiple
from ...engine.report import Reporter
from ...framework.cams import cam_export
from ...framework.items import default_splits, items_for
from ...framework.per_image import PerImageJob, run_per_image
from ...framework.step import Step
from ...io import save_label_png
from ...ops.cam import background_score
from ...ops.crf import dense_crf
from ...ops.random_walk import random_walk
from ...ops.scores import ScoreFile, to_probabilities
from .layout import walk_done, walk_folders


def walk_image(model, image: np.ndarray, cams: np.ndarray, recipe: Recipe, device) -> torch.Tensor:
    """(K+1, h, w) scores after the walk, at stride 8 of the padded image; channel 0 = bg."""
    x = pad_to_multiple(normalize(image), FEATURE_STRIDE)[None].to(device)
    affinity = model(x, recipe.random_walk.radius)[0].float()
    return walk_with_affinity(cams, affinity, recipe)


def walk_with_affinity(cams: np.ndarray, affinity: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """The walk of full-resolution CAMs (K, H, W) over any stride-8 affinity (pairs, h, w) of the
    padded image (learned, or built from the ground truth for the diagnosis' bound)."""
    rw = recipe.random_walk
    scores = np.concatenate([background_score(cams, rw.alpha)[None], cams])
    scores = torch.from_numpy(scores).to(affinity.device)
    height, width = (size * FEATURE_STRIDE for size in affinity.shape[-2:])
    scores = F.pad(scores, (0, width - scores.shape[-1], 0, height - scores.shape[-2]))
    small = F.avg_pool2d(scores[None], FEATURE_STRIDE)[0]
    return random_walk(small, affinity, beta=rw.beta, logt=rw.logt, radius=rw.radius, pairs=rw.pairs)


def run_random_walk(recipe: Recipe, step: Step, load_model, reporter: Reporter | None = None) -> dict:
    """`load_model(recipe, classes)`: the trained AffinityNet."""
    export = cam_export()
    folders = walk_folders(recipe, crf=recipe.random_walk.crf)
    items = items_for(recipe, default_splits(recipe, recipe.random_walk.split))

    def outputs_of(item) -> dict:
        return {name: folder / f"{item.image_id}.{'npz' if name == 'scores' else 'png'}"
                for name, folder in folders.items()}

    def compute(model, item, paths, accelerator) -> None:
        cam = export.read(recipe, item.image_id)
        image = item.source.load_image(item.index)
        with torch.no_grad(), accelerator.autocast():
            scores = ScoreFile(walk_image(model, image, cam.cams, recipe, accelerator.device), cam.class_ids)
        full = scores.at_size(*image.shape[:2])
        scores.write(paths["scores"])
        if "pseudo_crf" in paths:
            refined = dense_crf(image, to_probabilities(full), recipe.refining_crf())
            save_label_png(paths["pseudo_crf"], cam.lookup[refined.argmax(0)])
        save_label_png(paths["pseudo"], cam.lookup[full.argmax(0)])

    job = PerImageJob(step.name, "random walk", step.spec, items, outputs_of, list(folders.values()),
                      lambda accelerator: load_model(recipe, items[0].source.classes).to(accelerator.device),
                      compute, done_file=walk_done(recipe))
    return run_per_image(recipe, job, reporter)
