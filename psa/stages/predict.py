"""Segment images with the trained segmentation network (or the CPS pair when the recipe's task
is cps): multi-scale + flip, optional CRF."""

from __future__ import annotations

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
from ..engine.accel import make_accelerator, shard
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import atomic_write_json, save_label_png
from ..ops.crf import dense_crf
from ..models import CpsPredictor
from ..tasks.cps import build_cps_pair
from ..tasks.seg import build_seg_model
from .common import items_for, load_trained, output_dirs
from .evaluate import network_pred_dir


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


def _load_network(recipe: Recipe, source: str) -> torch.nn.Module:
    """The trained seg network, or the CPS pair predicting with the mean of both networks'
    softmax (cps.predict_with: mean) or with the first network alone (first)."""
    if source == "seg":
        return load_trained(recipe, "seg", lambda meta: build_seg_model(recipe, len(meta["classes"]),
                                                                         load_weights=False))
    pair = load_trained(recipe, "cps", lambda meta: build_cps_pair(recipe, len(meta["classes"]), load_weights=False))
    return CpsPredictor(pair, recipe.cps.predict_with).eval()


def predict(recipe: Recipe, images: str | None = None, crf: bool = False, out_dir: str | None = None,
            reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    accelerator = make_accelerator(recipe)
    source = "cps" if recipe.task == "cps" else "seg"  # which network: the recipe's task says
    cfg = getattr(recipe, source)
    default = network_pred_dir(recipe, source)
    folder = Path(out_dir) if out_dir else default.with_name(default.name + ("_crf" if crf else ""))
    if images:
        work = _ImageList(images).items()
    else:
        dataset_items = items_for(recipe, [cfg.split or recipe.data.val_split])
        work = [(it.image_id, lambda it=it: it.source.load_image(it.index)) for it in dataset_items]
    model = _load_network(recipe, source)
    model.to(accelerator.device)
    if accelerator.is_main_process:
        output_dirs(recipe, folder)
    accelerator.wait_for_everyone()

    mine = shard(work, accelerator)
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
    return summary

