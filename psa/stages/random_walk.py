"""Random walk: propagate each image's CAMs over the learned affinities → pseudo masks."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Recipe
from ..constants import FEATURE_STRIDE
from ..data.transforms import normalize, pad_to_multiple
from ..engine.accel import make_accelerator, shard
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import atomic_write_json, save_label_png, save_npz
from ..ops.cam import background_score
from ..ops.crf import dense_crf
from ..ops.random_walk import random_walk
from ..provenance import Provenance, StageSpec, begin_stage, check_upstream, finish_stage, matches
from ..tasks.affinity import build_affinity_model
from .common import default_splits, items_for, load_trained, output_dirs
from .export_cams import CAMS_DIR, load_cam_file

PSEUDO_DIR, PSEUDO_CRF_DIR, SCORES_DIR = "pseudo", "pseudo_crf", "rw_scores"
DONE_FILE = "random_walk_done.json"

# What the pseudo masks depend on (psa/provenance.py); a key this stage reads belongs here.
SPEC = StageSpec(
    reads=("random_walk", "crf", "model.backbone", "model.freeze_bn", "model.freeze_stem", "affinity.init",
           "affinity.radius", "run.mixed_precision", "data.train_split", "data.eval_split"),
    ignores=("run.seed",),
    record=lambda r: r.stage_dir("affinity") / "random_walk.provenance.json",
    outputs=lambda r: [r.stage_dir("affinity") / name for name in (PSEUDO_DIR, PSEUDO_CRF_DIR, SCORES_DIR, DONE_FILE)],
    splits=lambda r: default_splits(r, r.random_walk.split),
    upstream=lambda r: ("train_affinity", "export_cams"),
)


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


def upsample_scores(scores: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Stride-8 scores of the padded image → (C, height, width) float32 for the image itself."""
    padded = (scores.shape[-2] * FEATURE_STRIDE, scores.shape[-1] * FEATURE_STRIDE)
    up = F.interpolate(scores[None].float(), size=padded, mode="bilinear", align_corners=False)[0]
    return up[:, :height, :width].cpu().numpy()


def run_random_walk(recipe: Recipe, reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    prov = Provenance(recipe)
    check_upstream(recipe, "random_walk", prov)  # stale CAMs or AffinityNet: refused, naming the key
    accelerator = make_accelerator(recipe)
    stage = recipe.stage_dir("affinity")
    cam_dir = recipe.stage_dir("cam") / CAMS_DIR
    folders = {name: stage / name for name in (PSEUDO_DIR, SCORES_DIR)}
    if recipe.random_walk.crf:
        folders[PSEUDO_CRF_DIR] = stage / PSEUDO_CRF_DIR
    items = items_for(recipe, default_splits(recipe, recipe.random_walk.split))
    current = matches(SPEC.record(recipe), prov.expected("random_walk"), complete=False)
    mine = shard(items, accelerator)

    def outputs_of(item) -> dict:
        return {name: folder / f"{item.image_id}.{'npz' if name == SCORES_DIR else 'png'}"
                for name, folder in folders.items()}

    model = None  # loaded (and checked) only when there is something to compute
    if not current or not all(p.is_file() for item in mine for p in outputs_of(item).values()):
        model = load_trained(recipe, "affinity", lambda meta: build_affinity_model(recipe, load_weights_=False),
                             classes=items[0].source.classes)
        model.to(accelerator.device)
    if accelerator.is_main_process:
        output_dirs(recipe, *folders.values())
        expected, reason = begin_stage(recipe, "random_walk", prov)  # stale outputs removed: recomputed
        if reason:
            reporter.log(reason)
    accelerator.wait_for_everyone()

    started, done = time.perf_counter(), 0
    reporter.start("random walk", total=len(mine))
    for position, item in enumerate(mine, 1):
        paths = outputs_of(item)
        if not all(p.is_file() for p in paths.values()):
            cam_path = cam_dir / f"{item.image_id}.npz"
            if not cam_path.is_file():
                raise PsaError(f"CAM file missing: {cam_path}; run tools/export_cams.py first")
            cams, class_ids = load_cam_file(cam_path)
            image = item.source.load_image(item.index)
            with torch.no_grad(), accelerator.autocast():
                scores = walk_scores(model, image, cams, recipe, accelerator.device)
            lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
            full = upsample_scores(scores, *image.shape[:2])
            save_npz(paths[SCORES_DIR], scores=scores.cpu().numpy().astype(np.float16), classes=class_ids)
            if PSEUDO_CRF_DIR in paths:
                refined = dense_crf(image, to_probabilities(full), recipe.crf)
                save_label_png(paths[PSEUDO_CRF_DIR], lookup[refined.argmax(0)])
            save_label_png(paths[PSEUDO_DIR], lookup[full.argmax(0)])
            done += 1
        reporter.update(position)
    reporter.finish()
    accelerator.wait_for_everyone()
    summary = {"images": len(items), "written_here": done, "seconds": round(time.perf_counter() - started, 2),
               "processes": accelerator.num_processes}
    if accelerator.is_main_process:
        atomic_write_json(stage / DONE_FILE, summary)
        finish_stage(recipe, "random_walk", expected)
    return summary


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Non-negative scores → per-pixel distributions for the CRF unary."""
    scores = np.clip(scores, 0, None) + 1e-5
    return scores / scores.sum(axis=0, keepdims=True)
