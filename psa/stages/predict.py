"""Segment images with the trained segmentation network (or the CPS pair when the recipe's task
is cps): multi-scale + flip, optional CRF."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import Recipe
from ..data.base import read_rgb
from ..data.transforms import normalize
from ..engine.checkpoints import WEIGHTS_FILE
from ..engine.accel import make_accelerator, shard
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import atomic_write_json, save_label_png
from ..ops.crf import dense_crf
from ..models import CpsPredictor
from ..provenance import (
    Provenance, StageSpec, begin_stage, check_upstream, describe, difference, finish_stage, matches, read_record,
)
from ..tasks.cps import build_cps_pair
from ..tasks.seg import build_seg_model
from .common import items_for, load_trained, output_dirs
from .evaluate import SEG_PRED_DIR, network_pred_dir


def _record_of(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.provenance.json"


# What the predictions in <run>/seg/pred depend on (psa/provenance.py); a key this stage reads
# belongs here. `--crf`, `--out` and `--images` add to it (see `predict`).
SPEC = StageSpec(
    reads=("seg.scales", "seg.flip", "seg.split", "seg.head", "model.backbone", "model.freeze_bn",
           "model.freeze_stem", "run.mixed_precision", "data.val_split"),
    ignores=("run.seed",),
    record=lambda r: _record_of(r.stage_dir("seg") / SEG_PRED_DIR),
    outputs=lambda r: [r.stage_dir("seg") / SEG_PRED_DIR, r.stage_dir("seg") / f"{SEG_PRED_DIR}_done.json"],
    splits=lambda r: [r.seg.split or r.data.val_split],
    upstream=lambda r: ("train_seg",),
)
# The CPS pair's predictions: its training writes no provenance record, so the weights file's
# identity (size, mtime) enters the record instead (see `predict`): retrained weights recompute.
CPS_SPEC = StageSpec(
    reads=("cps.scales", "cps.flip", "cps.split", "cps.head", "cps.predict_with", "model.backbone",
           "model.freeze_bn", "model.freeze_stem", "run.mixed_precision", "data.val_split"),
    ignores=("run.seed",),
    record=lambda r: _record_of(network_pred_dir(r, "cps")),
    outputs=lambda r: [network_pred_dir(r, "cps")],
    splits=lambda r: [r.cps.split or r.data.val_split],
)


@torch.no_grad()
def multiscale_probabilities(model, image: np.ndarray, scales: Sequence[float], flip: bool,
                             device) -> torch.Tensor:
    """Mean of the softmax over scales (and flips, in the same batch) at the image size."""
    height, width = image.shape[:2]
    pil = Image.fromarray(image)
    total, passes = None, 0
    for scale in scales:
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        x = normalize(np.asarray(pil.resize(size, Image.BILINEAR))).to(device)
        batch = torch.stack([x, x.flip(-1)]) if flip else x[None]
        probs = F.interpolate(model(batch).float(), size=(height, width), mode="bilinear",
                              align_corners=False).softmax(1)
        if flip:
            probs[1] = probs[1].flip(-1)
        summed = probs.sum(0)
        total = summed if total is None else total + summed
        passes += probs.shape[0]
    return total / passes


class _ImageList:
    """Images given on the command line: a folder of images or a text file of paths."""

    EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp"}

    def __init__(self, where: str):
        path = Path(where)
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in self.EXTENSIONS)
        elif path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
            self.paths = [Path(line) if Path(line).is_absolute() else path.parent / line for line in lines]
        else:
            raise PsaError(f"--images: {where} is neither a folder nor a list file")
        if not self.paths:
            raise PsaError(f"--images: no images found in {where}")
        stems = [p.stem for p in self.paths]
        if len(set(stems)) != len(stems):
            raise PsaError(f"--images: two images share a file name stem in {where}")

    def items(self):
        return [(p.stem, lambda p=p: read_rgb(p)) for p in self.paths]


def _load_network(recipe: Recipe, source: str, classes=None) -> torch.nn.Module:
    """The trained seg network, or the CPS pair predicting with the mean of both networks'
    softmax (cps.predict_with: mean) or with the first network alone (first). `classes`: the
    split's, checked against the checkpoint's (None for an image folder)."""
    if source == "seg":
        return load_trained(recipe, "seg", lambda meta: build_seg_model(recipe, len(meta["classes"]),
                                                                         load_weights=False), classes=classes)
    pair = load_trained(recipe, "cps", lambda meta: build_cps_pair(recipe, len(meta["classes"]), load_weights=False),
                        classes=classes)
    return CpsPredictor(pair, recipe.cps.predict_with).eval()


def predict(recipe: Recipe, images: str | None = None, crf: bool = False, out_dir: str | None = None,
            reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    prov = Provenance(recipe)
    source = "cps" if recipe.task == "cps" else "seg"  # which network: the recipe's task says
    if source == "seg":
        check_upstream(recipe, "predict_seg", prov)  # a segmentation network the recipe no longer describes: refused
    accelerator = make_accelerator(recipe)
    cfg = getattr(recipe, source)
    default = network_pred_dir(recipe, source)
    folder = Path(out_dir) if out_dir else default.with_name(default.name + ("_crf" if crf else ""))
    if images:
        image_list = _ImageList(images)
        work = image_list.items()
    else:
        dataset_items = items_for(recipe, [cfg.split or recipe.data.val_split])
        work = [(it.image_id, lambda it=it: it.source.load_image(it.index)) for it in dataset_items]
    # this call's variant of the stage: its own record next to its folder, CRF keys if refined,
    # the image list instead of a data split
    base_spec, step = (CPS_SPEC, "predict_cps") if source == "cps" else (SPEC, "predict_seg")
    spec = dataclasses.replace(
        base_spec, reads=base_spec.reads + (("crf",) if crf else ()), record=lambda r: _record_of(folder),
        outputs=lambda r: [folder, folder.parent / f"{folder.name}_done.json"],
        splits=(lambda r: []) if images else base_spec.splits)
    extra = {"images": [str(p.resolve()) for p in image_list.paths]} if images else {}
    if source == "cps":
        weights = recipe.stage_dir("cps") / WEIGHTS_FILE
        if weights.is_file():
            extra["weights"] = f"{weights.stat().st_size} bytes, mtime_ns {weights.stat().st_mtime_ns}"
    extra = extra or None
    expected = prov.expected(step, spec=spec, extra=extra)
    current = matches(spec.record(recipe), expected, complete=False)
    recorded = read_record(spec.record(recipe))
    if out_dir is not None and not current and recorded is not None:  # every process, before any write
        raise PsaError(f"--out {folder} holds predictions made with other inputs "
                       f"({describe(difference(recorded, expected))}); choose another folder or empty it")
    mine = shard(work, accelerator)
    model = None  # loaded (and checked) only when there is something to compute
    if not current or not all((folder / f"{image_id}.png").is_file() for image_id, _ in mine):
        model = _load_network(recipe, source, classes=None if images else dataset_items[0].source.classes)
        model.to(accelerator.device)
    if accelerator.is_main_process:
        output_dirs(recipe, folder)
        # stale predictions in psa's own folders are removed and recomputed; a folder named
        # with --out is not ours to empty, so there they are refused
        begin_stage(recipe, step, prov, spec=spec, extra=extra, remove_stale=out_dir is None)
    accelerator.wait_for_everyone()

    started, done = time.perf_counter(), 0
    reporter.start("predict", total=len(mine))
    for position, (image_id, load) in enumerate(mine, 1):
        path = folder / f"{image_id}.png"
        if not path.is_file():
            image = load()
            with accelerator.autocast():
                probs = multiscale_probabilities(model, image, cfg.scales, cfg.flip,
                                                 accelerator.device).cpu().numpy()
            if crf:
                probs = dense_crf(image, probs, recipe.crf)
            save_label_png(path, probs.argmax(0).astype(np.uint8))
            done += 1
        reporter.update(position)
    reporter.finish()
    accelerator.wait_for_everyone()
    summary = {"images": len(work), "written_here": done, "folder": str(folder),
               "seconds": round(time.perf_counter() - started, 2)}
    if accelerator.is_main_process:
        atomic_write_json(folder.parent / f"{folder.name}_done.json", summary)
        finish_stage(recipe, step, expected, spec=spec)
    return summary

