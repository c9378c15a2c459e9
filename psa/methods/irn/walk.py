"""IRN's semantic walk (`step/make_sem_seg_labels.py`): the CAMs at the boundary's stride 4,
walked over the boundary map's path-max affinities → scores, pseudo masks, boundary maps."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...config import Recipe
from ...data.transforms import normalize
from ...engine.report import Reporter
from ...framework.cams import cam_export
from ...framework.items import default_splits, items_for
from ...framework.per_image import PerImageJob, run_per_image
from ...framework.step import Step
from ...io import save_label_png
from ...ops.crf import dense_crf
from ...ops.scores import ScoreFile, to_probabilities
from .boundary import boundary_walk
from .layout import stage, walk_folders
from .training import IRN_STRIDE


@torch.no_grad()
def boundary_and_displacement(model, image: np.ndarray, device) -> tuple[torch.Tensor, np.ndarray]:
    """IRN's `EdgeDisplacement.forward` at stride 4: the boundary probability (h, w) from the
    image and its mirror image, sigmoid(e0 / 2 + flip(e1) / 2), and the displacement (2, h, w)
    of the image alone."""
    x = normalize(image).to(device)
    logits, displacement = model(torch.stack([x, x.flip(-1)]))
    boundary = torch.sigmoid(logits[0, 0].float() / 2 + logits[1, 0].float().flip(-1) / 2)
    return boundary, displacement[0].float().cpu().numpy()


def strided_cams(cams: np.ndarray, size: tuple[int, int], device) -> torch.Tensor:
    """Full-resolution CAMs (K, H, W) at the boundary's stride-4 size, each divided by its max."""
    small = torch.from_numpy(cams).to(device)[None]
    small = F.interpolate(small, size=size, mode="bilinear", align_corners=False)[0] if len(cams) else \
        small.new_zeros((0, *size))
    peak = small.flatten(1).max(dim=1).values if len(cams) else small.new_zeros(0)
    return small / (peak[:, None, None] + 1e-5)


def walk_boundary(cams: torch.Tensor, boundary: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """(K, h, w) stride-4 CAMs → (K+1, h, w) scores, channel 0 the background plane: IRN's
    walk, divided by the largest walked value (IRN takes it after the ×4 upsampling; bilinear
    upsampling keeps the maximum up to interpolation, so the two agree to rounding)."""
    cfg = recipe.irn
    walked = boundary_walk(cams, boundary, cfg.radius, cfg.beta, cfg.logt) if len(cams) else cams
    walked = walked / max(float(walked.max()) if walked.numel() else 0.0, 1e-5)
    plane = torch.full((1, *boundary.shape), cfg.sem_bg_threshold, dtype=walked.dtype, device=walked.device)
    return torch.cat([plane, walked])


def run_boundary_walk(recipe: Recipe, step: Step, load_model, reporter: Reporter | None = None) -> dict:
    """`load_model(recipe, classes)`: the trained IRNet."""
    export = cam_export()
    folders = walk_folders(recipe, crf=recipe.irn.dense_crf)
    items = items_for(recipe, default_splits(recipe, recipe.irn.split))

    def outputs_of(item) -> dict:
        return {name: folder / f"{item.image_id}.{'npz' if name == 'scores' else 'png'}"
                for name, folder in folders.items()}

    def compute(model, item, paths, accelerator) -> None:
        cam = export.read(recipe, item.image_id)
        image = item.load()
        with accelerator.autocast():
            boundary, _ = boundary_and_displacement(model, image, accelerator.device)
        walked = walk_boundary(strided_cams(cam.cams, tuple(boundary.shape), accelerator.device), boundary, recipe)
        scores = ScoreFile(walked, cam.class_ids, stride=IRN_STRIDE)
        full = scores.at_size(*image.shape[:2])
        scores.write(paths["scores"])
        save_label_png(paths["boundary"], np.round(boundary.cpu().numpy() * 255).astype(np.uint8))
        if "pseudo_crf" in paths:
            refined = dense_crf(image, to_probabilities(full), recipe.refining_crf())
            save_label_png(paths["pseudo_crf"], cam.lookup[refined.argmax(0)])
        save_label_png(paths["pseudo"], cam.lookup[full.argmax(0)])

    job = PerImageJob(step.name, "IRN boundary walk", step.spec, items, outputs_of, list(folders.values()),
                      lambda accelerator: load_model(recipe, items[0].source.classes).to(accelerator.device),
                      compute, done_file=stage(recipe).done(step.name))
    return run_per_image(recipe, job, reporter)
