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
from ..tasks.cam import build_cam_model
from .common import default_splits, items_for, load_trained, output_dirs

CAMS_DIR, LABELS_DIR, PRED_DIR = "cams", "labels", "pred"
DONE_FILE = "export_done.json"


def load_cam_file(path) -> tuple[np.ndarray, np.ndarray]:
    """→ (cams (K, H, W) float32, class ids (K,) int64)."""
    with np.load(path) as data:
        return data["cams"].astype(np.float32), data["classes"].astype(np.int64)


def export_cams(recipe: Recipe, reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    accelerator = make_accelerator(recipe)
    stage = recipe.stage_dir("cam")
    folders = {name: stage / name for name in (CAMS_DIR, LABELS_DIR, PRED_DIR)}
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))
    model = load_trained(recipe, "cam", lambda meta: build_cam_model(recipe, len(meta["classes"]), load_weights=False))
    model.to(accelerator.device)
    if accelerator.is_main_process:
        output_dirs(recipe, *folders.values())
    accelerator.wait_for_everyone()

    mine = shard(items, accelerator)
    started, done, skipped = time.perf_counter(), 0, 0
    reporter.start("export CAMs", total=len(mine))
    for position, item in enumerate(mine, 1):
        paths = {
            CAMS_DIR: folders[CAMS_DIR] / f"{item.image_id}.npz",
            PRED_DIR: folders[PRED_DIR] / f"{item.image_id}.png",
            LABELS_DIR: folders[LABELS_DIR] / f"{item.image_id}.png",
        }
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
    return summary
