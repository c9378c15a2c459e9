"""IRN's instance pseudo masks and their evaluation, registered: per image an instance-id PNG
(pixel = instance k, 0 background) and a JSON of each instance's class, score and area; then
mAP^r at IoU 0.25 / 0.5 / 0.75 against the split's ground-truth instances (VOC's
SegmentationObject/, the synthetic set's, COCO's)."""

from __future__ import annotations

import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from ...config import Recipe
from ...constants import MAX_INSTANCES
from ...engine.report import Reporter
from ...errors import PsaError
from ...framework.cams import cam_export
from ...framework.items import default_splits, items_for
from ...framework.per_image import PerImageJob, run_per_image
from ...framework.step import Step
from ...io import atomic_write_json, read_label_png, save_label_png
from ...metrics import instance_ap
from ...provenance import Provenance, check_upstream, write_record
from .boundary import boundary_walk
from .instance_ops import cluster_centroids, detect_instances, find_centroids
from .layout import instances_folder, stage
from .training import IRN_STRIDE
from .walk import boundary_and_displacement, strided_cams

IOU_THRESHOLDS = (0.25, 0.5, 0.75)


def instances_of(cams: np.ndarray, class_ids: np.ndarray, boundary: torch.Tensor, displacement: np.ndarray,
                 image_shape: tuple[int, int], recipe: Recipe) -> list:
    """IRN's make_ins_seg_labels for one image: instance maps from the centroids, each
    instance's CAM walked on its own, the walked scores' segments scored."""
    cfg = recipe.irn
    groups = cluster_centroids(find_centroids(displacement, cfg.centroid_steps), displacement,
                               cfg.centroid_threshold)  # (I, h, w)
    small = strided_cams(cams, tuple(boundary.shape), boundary.device)  # (K, h, w)
    if not len(small):
        return []
    per_instance = small[:, None] * torch.from_numpy(groups).to(small)[None]  # (K, I, h, w)
    walked = boundary_walk(per_instance.flatten(0, 1), boundary, cfg.radius, cfg.beta, cfg.logt)
    height, width = image_shape
    up = F.interpolate(walked[None], scale_factor=IRN_STRIDE, mode="bilinear", align_corners=False)[0]
    up = up[:, :height, :width]
    up = up / max(float(up.max()), 1e-5)
    winner = torch.cat([torch.full((1, height, width), cfg.ins_bg_threshold, dtype=up.dtype), up]).argmax(0)
    masks = (winner[None] == torch.arange(1, len(up) + 1)[:, None, None]).numpy()
    classes = np.repeat(class_ids, len(groups))  # channel k·I + i: instance i of class k
    return detect_instances(up.numpy(), masks, classes, min_area=cfg.min_instance_area * height * width)


def make_instances(recipe: Recipe, step: Step, load_model, reporter: Reporter | None = None) -> dict:
    """`load_model(recipe, classes)`: the trained IRNet."""
    folder = instances_folder(recipe)
    items = items_for(recipe, default_splits(recipe, recipe.irn.split))
    classes = items[0].source.classes
    export = cam_export()

    def compute(model, item, paths, accelerator) -> None:
        cam = export.read(recipe, item.image_id)
        cams, class_ids = cam.cams, cam.class_ids
        image = item.load()
        with accelerator.autocast():
            boundary, displacement = boundary_and_displacement(model, image, accelerator.device)
        found = sorted(instances_of(cams, class_ids, boundary, displacement, image.shape[:2], recipe),
                       key=lambda inst: -inst.score)[:MAX_INSTANCES]
        ids = np.zeros(image.shape[:2], dtype=np.uint8)
        for k, inst in enumerate(found, 1):
            ids[inst.mask] = k
        atomic_write_json(paths["json"], {"image": item.image_id, "instances": [
            {"id": k, "class": inst.class_id, "class_name": classes[inst.class_id], "score": round(inst.score, 6),
             "area": int(inst.mask.sum())} for k, inst in enumerate(found, 1)]})
        save_label_png(paths["png"], ids)

    job = PerImageJob(step.name, "IRN instances", step.spec, items,
                      lambda item: {"png": folder / f"{item.image_id}.png", "json": folder / f"{item.image_id}.json"},
                      [folder], lambda accelerator: load_model(recipe, classes).to(accelerator.device), compute,
                      done_file=stage(recipe).done(step.name))
    return run_per_image(recipe, job, reporter)


def read_instances(folder, image_id: str) -> dict:
    """An instance PNG and its JSON → masks (N, H, W) bool, classes, scores."""
    png, meta = folder / f"{image_id}.png", folder / f"{image_id}.json"
    if not png.is_file() or not meta.is_file():
        raise PsaError(f"instance prediction missing: {png} (run the irn_instances step first)")
    ids = read_label_png(png, "instance map")
    entries = json.loads(meta.read_text())["instances"]
    masks = np.stack([ids == e["id"] for e in entries]) if entries else np.zeros((0, *ids.shape), dtype=bool)
    return {"masks": masks, "classes": np.array([e["class"] for e in entries], dtype=np.int64),
            "scores": np.array([e["score"] for e in entries], dtype=np.float64)}


def eval_folder(recipe: Recipe):
    return stage(recipe).eval("instances")


def evaluate_instances(recipe: Recipe, step: Step, reporter: Reporter | None = None) -> dict:
    """mAP^r of IRN's instance masks on data.eval_split at each IoU of IOU_THRESHOLDS."""
    reporter = reporter or Reporter()
    prov = Provenance(recipe)
    check_upstream(prov, step.name, step.spec)
    expected = prov.record(step)
    items = items_for(recipe, [recipe.data.eval_split])
    source = items[0].source
    if not source.has_instances:
        raise PsaError(f"split {recipe.data.eval_split!r} has no ground-truth instances to evaluate against "
                       "(VOC: SegmentationObject/<id>.png)")
    started = time.perf_counter()
    predictions, truth = [], []
    reporter.start("evaluate instances", total=len(items))
    for position, item in enumerate(items, 1):
        predictions.append(read_instances(instances_folder(recipe), item.image_id))
        gt = item.source.load_instances(item.index)
        keep = ~np.asarray(getattr(gt, "crowd", np.zeros(len(gt.labels), dtype=bool)))  # COCO's crowd regions
        truth.append({"masks": gt.masks[keep], "classes": gt.labels[keep]})
        reporter.update(position)
    reporter.finish()
    classes = list(source.classes)
    metrics = {"source": "irn_instances", "split": recipe.data.eval_split, "images": len(items)}
    for threshold in IOU_THRESHOLDS:
        scores = instance_ap(predictions, truth, len(classes), threshold)
        tag = f"{round(threshold * 100):d}"
        metrics[f"map_{tag}"] = scores["map"]
        metrics[f"ap_{tag}"] = dict(zip(classes[1:], scores["ap"]))
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_json(eval_folder(recipe) / "metrics.json", metrics)
    write_record(step.record(recipe), expected, complete=True)
    return metrics

