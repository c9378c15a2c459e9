"""IRN's relation labels (`step/cam_to_ir_label.py`): confident foreground and background
from the exported CAMs, refined by IRN's label CRF; what IRNet learns its pairs from."""

from __future__ import annotations

from ...config import Recipe
from ...engine.report import Reporter
from ...framework.cams import cam_export
from ...framework.items import items_for
from ...framework.per_image import PerImageJob, run_per_image
from ...framework.step import Step
from ...io import save_label_png
from .layout import relation_labels_folder, stage
from .relation_labels import relation_labels


def make_relation_labels(recipe: Recipe, step: Step, reporter: Reporter | None = None) -> dict:
    folder = relation_labels_folder(recipe)
    cfg, export = recipe.irn, cam_export()

    def compute(model, item, paths, accelerator) -> None:
        cam = export.read(recipe, item.image_id)
        label = relation_labels(item.load(), cam.cams, cam.class_ids, cfg.fg_threshold, cfg.bg_threshold, cfg.crf)
        save_label_png(paths["label"], label)

    job = PerImageJob(step.name, "relation labels", step.spec, items_for(recipe, [recipe.data.train_split]),
                      lambda item: {"label": folder / f"{item.image_id}.png"}, [folder],
                      load_model=lambda accelerator: None, compute=compute, done_file=stage(recipe).done(step.name))
    return run_per_image(recipe, job, reporter)
