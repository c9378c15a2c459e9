"""The CAM export: per image, the multi-scale + flip CAM of its labelled classes, the CAM
prediction at `cam.bg_threshold`, and the confident label map AffinityNet learns from."""

from __future__ import annotations

from pathlib import Path

import torch

from ...config import Recipe
from ...engine.report import Reporter
from ...framework.cams import CamFile
from ...framework.items import default_splits, items_for
from ...framework.per_image import PerImageJob, run_per_image
from ...framework.step import Step
from ...io import save_label_png
from ...models.fold_bn import fold_batch_norm
from ...ops.cam import cam_prediction, confident_labels, multiscale_cam
from .layout import export_done, export_folders


def export_cams(recipe: Recipe, step: Step, load_classifier, reporter: Reporter | None = None) -> dict:
    folders = export_folders(recipe)
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))

    def outputs_of(item) -> dict[str, Path]:
        return {name: folder / f"{item.image_id}.{'npz' if name == 'cams' else 'png'}"
                for name, folder in folders.items()}

    def load_model(accelerator):
        model = load_classifier(recipe, items[0].source.classes).to(accelerator.device)
        example = torch.rand(1, 3, 64, 64, device=accelerator.device)
        return fold_batch_norm(model, example, lambda net, x: net.forward_cam(x))[0]

    def compute(model, item, paths, accelerator) -> None:
        image = item.source.load_image(item.index)
        class_ids = item.source.image_labels(item.index)
        with accelerator.autocast():
            cams = multiscale_cam(model, image, class_ids - 1, recipe.cam.scales, recipe.cam.flip,
                                  accelerator.device).cpu().numpy()
        CamFile(cams, class_ids).write(paths["cams"])
        save_label_png(paths["pred"], cam_prediction(cams, class_ids, recipe.cam.bg_threshold))
        save_label_png(paths["labels"], confident_labels(
            image, cams, class_ids, recipe.cam.low_alpha, recipe.cam.high_alpha, recipe.crf))

    job = PerImageJob(step.name, "export CAMs", step.spec, items, outputs_of, list(folders.values()), load_model,
                      compute, done_file=export_done(recipe))
    return run_per_image(recipe, job, reporter)
