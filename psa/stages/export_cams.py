"""CAM export: per image, the multi-scale + flip CAM of the labelled classes, a CAM
prediction at `cam.bg_threshold`, and the confident label map for AffinityNet."""

from __future__ import annotations

import time

import numpy as np

from ..config import Recipe
from ..engine.accel import make_accelerator, shard
from ..engine.report import Reporter
from ..io import atomic_write_json, save_label_png, save_npz
from ..ops.cam import cam_prediction, confident_labels, multiscale_cam
from ..provenance import Provenance, StageSpec, begin_stage, check_upstream, finish_stage, matches
from ..tasks.cam import build_cam_model
from .common import default_splits, items_for, load_trained, output_dirs

CAMS_DIR, LABELS_DIR, PRED_DIR = "cams", "labels", "pred"
DONE_FILE = "export_done.json"

# What the exported files depend on (psa/provenance.py); a key this stage reads belongs here.
SPEC = StageSpec(
    reads=("cam.scales", "cam.flip", "cam.low_alpha", "cam.high_alpha", "cam.bg_threshold", "cam.export_split",
           "crf", "model.backbone", "model.freeze_bn", "model.freeze_stem", "run.mixed_precision",
           "data.train_split", "data.eval_split"),
    ignores=("run.seed",),
    record=lambda r: r.stage_dir("cam") / "export.provenance.json",
    outputs=lambda r: [r.stage_dir("cam") / name for name in (CAMS_DIR, LABELS_DIR, PRED_DIR, DONE_FILE)],
    splits=lambda r: default_splits(r, r.cam.export_split),
    upstream=lambda r: ("train_cam",),
)


def load_cam_file(path) -> tuple[np.ndarray, np.ndarray]:
    """→ (cams (K, H, W) float32, class ids (K,) int64)."""
    with np.load(path) as data:
        return data["cams"].astype(np.float32), data["classes"].astype(np.int64)


def export_cams(recipe: Recipe, reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    prov = Provenance(recipe)
    check_upstream(recipe, "export_cams", prov)  # CAMs of a classifier the recipe no longer describes: refused
    accelerator = make_accelerator(recipe)
    stage = recipe.stage_dir("cam")
    folders = {name: stage / name for name in (CAMS_DIR, LABELS_DIR, PRED_DIR)}
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))
    current = matches(SPEC.record(recipe), prov.expected("export_cams"), complete=False)
    mine = shard(items, accelerator)

    def outputs_of(item) -> dict:
        return {
            CAMS_DIR: folders[CAMS_DIR] / f"{item.image_id}.npz",
            PRED_DIR: folders[PRED_DIR] / f"{item.image_id}.png",
            LABELS_DIR: folders[LABELS_DIR] / f"{item.image_id}.png",
        }

    # the model is loaded (and checked) only when there is something to compute: a finished,
    # unchanged export is skipped from file names alone
    todo = not current or not all(p.is_file() for item in mine for p in outputs_of(item).values())
    model = None
    if todo:
        model = load_trained(recipe, "cam", lambda meta: build_cam_model(recipe, len(meta["classes"]), load_weights=False),
                             classes=items[0].source.classes)
        model.to(accelerator.device)
    if accelerator.is_main_process:
        output_dirs(recipe, *folders.values())
        expected, reason = begin_stage(recipe, "export_cams", prov)  # stale outputs removed: recomputed
        if reason:
            reporter.log(reason)
    accelerator.wait_for_everyone()

    started, done, skipped = time.perf_counter(), 0, 0
    reporter.start("export CAMs", total=len(mine))
    for position, item in enumerate(mine, 1):
        paths = outputs_of(item)
        if all(p.is_file() for p in paths.values()):
            skipped += 1
        else:
            image = item.source.load_image(item.index)
            class_ids = item.source.image_labels(item.index)
            with accelerator.autocast():
                cams = multiscale_cam(model, image, class_ids - 1, recipe.cam.scales, recipe.cam.flip,
                                      accelerator.device).cpu().numpy()
            save_npz(paths[CAMS_DIR], cams=cams.astype(np.float16), classes=class_ids)
            save_label_png(paths[PRED_DIR], cam_prediction(cams, class_ids, recipe.cam.bg_threshold))
            save_label_png(paths[LABELS_DIR], confident_labels(
                image, cams, class_ids, recipe.cam.low_alpha, recipe.cam.high_alpha, recipe.crf))
            done += 1
        reporter.update(position)
    reporter.finish()
    accelerator.wait_for_everyone()
    summary = {"images": len(items), "written_here": done, "skipped_here": skipped,
               "seconds": round(time.perf_counter() - started, 2), "processes": accelerator.num_processes}
    if accelerator.is_main_process:
        atomic_write_json(stage / DONE_FILE, summary)
        finish_stage(recipe, "export_cams", expected)
    return summary
