"""CAM export: per image, the multi-scale + flip CAM of the labelled classes, a CAM
prediction at `cam.bg_threshold`, and the confident label map for AffinityNet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import Recipe
from ..engine.report import Reporter
from ..io import save_label_png, save_npz
from ..layout import RunLayout
from ..models.fold_bn import fold_batch_norm
from ..ops.cam import cam_prediction, confident_labels, multiscale_cam
from ..provenance import StageSpec
from ..tasks.cam import build_cam_model
from .common import default_splits, items_for, load_trained
from .per_image import PerImageJob, run_per_image
from .registry import REGISTRY


def _outputs(recipe: Recipe) -> dict[str, Path]:
    layout = RunLayout.of(recipe)
    return {"cams": layout.cams, "pred": layout.cam_predictions, "labels": layout.confident_labels}


NAME = "export_cams"  # the step (registered in psa/stages/cam.py)

# What the exported files depend on (psa/provenance.py); a key this stage reads belongs here.
SPEC = StageSpec(
    reads=("cam.scales", "cam.flip", "cam.low_alpha", "cam.high_alpha", "cam.bg_threshold", "cam.export_split",
           "crf", "model.backbone", "model.freeze_bn", "model.freeze_stem", "run.mixed_precision",
           "data.train_split", "data.eval_split"),
    ignores=("run.seed",),
    record=lambda r: RunLayout.of(r).export_record,
    outputs=lambda r: [*_outputs(r).values(), RunLayout.of(r).export_done],
    splits=lambda r: default_splits(r, r.cam.export_split),
    upstream=lambda r: ("train_cam",),
)


def load_cam_file(path) -> tuple[np.ndarray, np.ndarray]:
    """→ (cams (K, H, W) float32, class ids (K,) int64)."""
    with np.load(path) as data:
        return data["cams"].astype(np.float32), data["classes"].astype(np.int64)


def load_cam_net(recipe: Recipe, classes=None):
    """The trained CAM classifier, refused in one line when made for other classes."""
    return load_trained(recipe, "cam", lambda meta: build_cam_model(recipe, len(meta["classes"]), load_weights=False),
                        classes=classes)


def export_cams(recipe: Recipe, reporter: Reporter | None = None) -> dict:
    folders = _outputs(recipe)
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))

    def outputs_of(item) -> dict:
        return {name: folder / f"{item.image_id}.{'npz' if name == 'cams' else 'png'}"
                for name, folder in folders.items()}

    def load_model(accelerator):
        model = load_cam_net(recipe, items[0].source.classes).to(accelerator.device)
        example = torch.rand(1, 3, 64, 64, device=accelerator.device)
        return fold_batch_norm(model, example, lambda net, x: net.forward_cam(x))[0]

    def compute(model, item, paths, accelerator) -> None:
        image = item.source.load_image(item.index)
        class_ids = item.source.image_labels(item.index)
        with accelerator.autocast():
            cams = multiscale_cam(model, image, class_ids - 1, recipe.cam.scales, recipe.cam.flip,
                                  accelerator.device).cpu().numpy()
        save_npz(paths["cams"], cams=cams.astype(np.float16), classes=class_ids)
        save_label_png(paths["pred"], cam_prediction(cams, class_ids, recipe.cam.bg_threshold))
        save_label_png(paths["labels"], confident_labels(
            image, cams, class_ids, recipe.cam.low_alpha, recipe.cam.high_alpha, recipe.crf))

    job = PerImageJob(NAME, "export CAMs", SPEC, items, outputs_of, list(folders.values()), load_model,
                      compute, done_file=RunLayout.of(recipe).export_done)
    return run_per_image(recipe, job, REGISTRY.provenance(recipe), reporter)
