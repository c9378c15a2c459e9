"""Random walk: propagate each image's CAMs over the learned affinities → pseudo masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Recipe
from ..constants import FEATURE_STRIDE
from ..data.transforms import normalize, pad_to_multiple
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import save_label_png, save_npz
from ..layout import RunLayout
from ..ops.cam import background_score
from ..ops.crf import dense_crf
from ..ops.random_walk import random_walk
from ..ops.walk_scores import to_probabilities, upsample_scores
from ..provenance import StageSpec
from ..tasks.affinity import build_affinity_model
from .common import REFINING_CRF_READS, default_splits, items_for, load_trained, refining_crf_unused
from .export_cams import load_cam_file
from .per_image import PerImageJob, run_per_image
from .registry import REGISTRY


def _outputs(recipe: Recipe, crf: bool) -> dict[str, Path]:
    """The folders of the walk's files: pseudo masks, scores, and (with `crf`) refined masks."""
    layout = RunLayout.of(recipe)
    folders = {"pseudo": layout.pseudo_masks(), "scores": layout.walk_scores}
    if crf:
        folders["pseudo_crf"] = layout.pseudo_masks(crf=True)
    return folders


NAME = "random_walk"  # the step (registered in psa/stages/affinity.py)

# What the pseudo masks depend on (psa/provenance.py); a key this stage reads belongs here.
SPEC = StageSpec(
    reads=("random_walk", *REFINING_CRF_READS, "model.backbone", "model.freeze_bn", "model.freeze_stem",
           "affinity.init", "affinity.radius", "run.mixed_precision", "data.train_split", "data.eval_split"),
    ignores=("run.seed",),
    record=lambda r: RunLayout.of(r).walk_record,
    outputs=lambda r: [*_outputs(r, crf=True).values(), RunLayout.of(r).walk_done],
    splits=lambda r: default_splits(r, r.random_walk.split),
    upstream=lambda r: ("train_affinity", "export_cams"),
    unused=refining_crf_unused,
)


def load_affinity_net(recipe: Recipe, classes=None):
    """The trained AffinityNet, refused in one line when made for other classes or another radius."""
    return load_trained(recipe, "affinity", lambda meta: build_affinity_model(recipe, load_weights_=False),
                        classes=classes, fits={"affinity.radius": ("radius", recipe.affinity.radius)})


def walk_scores(model, image: np.ndarray, cams: np.ndarray, recipe: Recipe, device) -> torch.Tensor:
    """(K+1, h, w) scores after the walk, at stride 8 of the padded image; channel 0 = bg."""
    x = pad_to_multiple(normalize(image), FEATURE_STRIDE)[None].to(device)
    affinity = model(x, recipe.random_walk.radius)[0].float()
    return walk_with_affinity(cams, affinity, recipe)


def walk_with_affinity(cams: np.ndarray, affinity: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """The walk of full-resolution CAMs (K, H, W) over any stride-8 affinity (pairs, h, w) of the
    padded image (learned, or built from ground truth by `psa.stages.diagnose`)."""
    rw = recipe.random_walk
    scores = np.concatenate([background_score(cams, rw.alpha)[None], cams])
    scores = torch.from_numpy(scores).to(affinity.device)
    height, width = (size * FEATURE_STRIDE for size in affinity.shape[-2:])
    scores = F.pad(scores, (0, width - scores.shape[-1], 0, height - scores.shape[-2]))
    small = F.avg_pool2d(scores[None], FEATURE_STRIDE)[0]
    return random_walk(small, affinity, beta=rw.beta, logt=rw.logt, radius=rw.radius, pairs=rw.pairs)


def run_random_walk(recipe: Recipe, reporter: Reporter | None = None) -> dict:
    cam_dir = RunLayout.of(recipe).cams
    folders = _outputs(recipe, crf=recipe.random_walk.crf)
    items = items_for(recipe, default_splits(recipe, recipe.random_walk.split))

    def outputs_of(item) -> dict:
        return {name: folder / f"{item.image_id}.{'npz' if name == 'scores' else 'png'}"
                for name, folder in folders.items()}

    def load_model(accelerator):
        return load_affinity_net(recipe, items[0].source.classes).to(accelerator.device)

    def compute(model, item, paths, accelerator) -> None:
        cam_path = cam_dir / f"{item.image_id}.npz"
        if not cam_path.is_file():
            raise PsaError(f"CAM file missing: {cam_path}; run tools/export_cams.py first")
        cams, class_ids = load_cam_file(cam_path)
        image = item.source.load_image(item.index)
        with torch.no_grad(), accelerator.autocast():
            scores = walk_scores(model, image, cams, recipe, accelerator.device)
        lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
        full = upsample_scores(scores, *image.shape[:2])
        save_npz(paths["scores"], scores=scores.cpu().numpy().astype(np.float16), classes=class_ids)
        if "pseudo_crf" in paths:
            refined = dense_crf(image, to_probabilities(full), recipe.refining_crf())
            save_label_png(paths["pseudo_crf"], lookup[refined.argmax(0)])
        save_label_png(paths["pseudo"], lookup[full.argmax(0)])

    job = PerImageJob(NAME, "random walk", SPEC, items, outputs_of, list(folders.values()), load_model,
                      compute, done_file=RunLayout.of(recipe).walk_done)
    return run_per_image(recipe, job, REGISTRY.provenance(recipe), reporter)
