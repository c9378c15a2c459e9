"""Segment images with a trained segmentation network (the seg stage's, or the CPS pair's):
multi-scale + flip, optional CRF."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import Recipe
from ..data.base import read_rgb
from ..data.transforms import normalize
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import save_label_png
from ..layout import prediction_done, prediction_record
from ..ops.crf import dense_crf
from ..provenance import StageSpec
from .common import items_for
from .per_image import PerImageJob, run_per_image
from .registry import REGISTRY, OutputCount, Step


@dataclass(frozen=True)
class Network:
    """A trained network `tools/predict.py` segments with."""

    section: str  # the recipe section of its inference keys (scales, flip, split)
    step: str  # the prediction step writing its default folder (and its record)
    folder: Callable[[Recipe], Path]  # the default output folder
    # (recipe, classes of the split or None for an image folder) -> the model in eval mode
    load: Callable[[Recipe, Optional[Sequence[str]]], torch.nn.Module]
    reads: tuple[str, ...]  # recipe keys its predictions depend on (beyond crf)
    upstream: str  # the training step whose weights it loads

    def spec(self) -> StageSpec:
        """What the predictions in its default folder depend on (psa/provenance.py)."""
        return StageSpec(
            reads=self.reads, ignores=("run.seed",),
            record=lambda r: prediction_record(self.folder(r)),
            outputs=lambda r: [self.folder(r), prediction_done(self.folder(r))],
            splits=lambda r: [getattr(r, self.section).split or r.data.val_split],
            upstream=lambda r: (self.upstream,),
        )


def prediction_step(name: str, task: str, network: Network, default: bool = True) -> Step:
    count = OutputCount(f"predicted masks ({task} network)", lambda r: prediction_done(network.folder(r)))
    return Step(name, network.spec(), lambda recipe, reporter: predict(recipe, network, reporter=reporter),
                task=task, default=default, predictor=network, count=count)


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


def predict(recipe: Recipe, network: Optional[Network] = None, images: str | None = None, crf: bool = False,
            out_dir: str | None = None, reporter: Reporter | None = None) -> dict:
    """Segment a split (default `<section>.split`, else data.val_split) or the images of a
    folder or list file (`images`) into `out_dir` (default: the network's folder, + "_crf").
    `network`: default, the recipe's task's (psa/stages/registry.py `predictor`)."""
    network = network or REGISTRY.predictor(recipe.task)
    cfg = getattr(recipe, network.section)
    default = network.folder(recipe)
    folder = Path(out_dir) if out_dir else default.with_name(default.name + ("_crf" if crf else ""))
    if images:
        image_list = _ImageList(images)
        work = [_Image(path.stem, lambda path=path: read_rgb(path)) for path in image_list.paths]
        classes = None
    else:
        work = items_for(recipe, [cfg.split or recipe.data.val_split])
        classes = work[0].source.classes
    # this call's variant of the stage: its own record next to its folder, CRF keys if refined,
    # the image list instead of a data split
    base = network.spec()
    spec = dataclasses.replace(
        base, reads=base.reads + (("crf",) if crf else ()), record=lambda r: prediction_record(folder),
        outputs=lambda r: [folder, prediction_done(folder)], splits=(lambda r: []) if images else base.splits)
    extra = {"images": [str(p.resolve()) for p in image_list.paths]} if images else None

    def compute(model, item, paths, accelerator) -> None:
        image = item.load()
        with accelerator.autocast():
            probs = multiscale_probabilities(model, image, cfg.scales, cfg.flip, accelerator.device).cpu().numpy()
        if crf:
            probs = dense_crf(image, probs, recipe.crf)
        save_label_png(paths["mask"], probs.argmax(0).astype(np.uint8))

    job = PerImageJob(
        network.step, "predict", spec, work, lambda item: {"mask": folder / f"{item.image_id}.png"}, [folder],
        load_model=lambda accelerator: network.load(recipe, classes).to(accelerator.device), compute=compute,
        done_file=prediction_done(folder), extra=extra,
        # stale predictions in psa's own folders are removed and recomputed; a folder named
        # with --out is not ours to empty, so there they are refused
        remove_stale=out_dir is None, summary={"folder": str(folder)})
    return run_per_image(recipe, job, REGISTRY.provenance(recipe), reporter)


@dataclass(frozen=True)
class _Image:
    """An image given on the command line, shaped like a split's item."""

    image_id: str
    read: Callable[[], np.ndarray]

    def load(self) -> np.ndarray:
        return self.read()
