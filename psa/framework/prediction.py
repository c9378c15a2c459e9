"""Segment images with a trained segmentation network (the seg method's, CPS's pair, any
registered `Network`): multi-scale + flip, optional CRF."""

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
from ..io import atomic_write_json, save_image, save_label_png, save_npz
from ..layout import prediction_done, prediction_extras, prediction_record
from ..ops.crf import dense_crf
from ..viz import colorize_label, legend
from .items import items_for
from .per_image import PerImageJob, run_per_image
from .refining_crf import REFINING_CRF_READS, refining_crf_unused
from .registry import REGISTRY
from .step import Network, OutputCount, Step


def prediction_step(name: str, task: str, network: Network, default: bool = True) -> Step:
    count = OutputCount(f"predicted masks ({task} network)", lambda r: prediction_done(network.folder(r)))
    return Step(name, network.spec(), lambda recipe, reporter: predict(recipe, network, reporter=reporter),
                task=task, default=default, predicts=network, count=count)


EXTRA_SUFFIX = {"classes": "json", "overlay": "png", "probabilities": "npz"}  # psa.layout.prediction_extras


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
        self.folder = path.resolve() if path.is_dir() else None

    def refuse_output_among_inputs(self, out: Path) -> None:
        """The masks must never land on or among the photos: a folder that is, holds or lies
        inside the input folder, or holds an input image, is refused."""
        out = out.expanduser().resolve()
        if self.folder is not None and (out == self.folder or self.folder in out.parents or out in self.folder.parents):
            relation = "is" if out == self.folder else "lies inside" if self.folder in out.parents else "holds"
            raise PsaError(f"--out {out} {relation} the input folder {self.folder}: the masks would mix with or "
                           "overwrite the photos; choose a folder outside it")
        inside = [p for p in self.paths if out == p.resolve().parent or out in p.resolve().parents]
        if inside:
            raise PsaError(f"--out {out} holds input image {inside[0]}: the masks could overwrite it; choose a "
                           "folder that holds none of the images")


def predict(recipe: Recipe, network: Optional[Network] = None, images: str | None = None, crf: bool = False,
            out_dir: str | None = None, reporter: Reporter | None = None, overlay: bool = False,
            probabilities: bool = False) -> dict:
    """Segment a split (default `<section>.split`, else data.val_split) or the images of a
    folder or list file (`images`) into `out_dir` (default: the network's folder, + "_crf").
    Per image: `<id>.png` (pixel = class index) and `classes/<id>.json` (the classes present
    and their pixel shares); `overlay/<id>.png` (image, mask and legend) with `overlay`,
    `probabilities/<id>.npz` (float16 softmax) with `probabilities`. An image of `images`
    that cannot be read is named, skipped and listed in the summary's "failed".
    `network`: default, the recipe's task's (`Registry.predictor`)."""
    network = network or REGISTRY.predictor(recipe.task)
    cfg = getattr(recipe, network.section)
    default = network.folder(recipe)
    folder = Path(out_dir) if out_dir else default.with_name(default.name + ("_crf" if crf else ""))
    if images:
        image_list = _ImageList(images)
        if out_dir:
            image_list.refuse_output_among_inputs(Path(out_dir))
        work = [_Image(path.stem, lambda path=path: read_rgb(path)) for path in image_list.paths]
        classes = None
    else:
        work = items_for(recipe, [cfg.split or recipe.data.val_split])
        classes = work[0].source.classes
    # this call's variant of the stage: its own record in its folder, CRF keys if refined,
    # the image list instead of a data split
    base = network.spec()
    spec = dataclasses.replace(
        base, reads=base.reads + (REFINING_CRF_READS if crf else ()), record=lambda r: prediction_record(folder),
        unused=(lambda r: (*base.unused(r), *refining_crf_unused(r))) if crf else base.unused,
        outputs=lambda r: [folder], splits=(lambda r: []) if images else base.splits)
    extra = {"images": [str(p.resolve()) for p in image_list.paths]} if images else None
    extras = prediction_extras(folder)
    wanted = {"classes": True, "overlay": overlay, "probabilities": probabilities}
    names: list = []  # the network's class names, known once it is loaded

    def outputs(item) -> dict[str, Path]:
        files = {"mask": folder / f"{item.image_id}.png"}
        for name, where in extras.items():
            if wanted[name]:
                files[name] = where / f"{item.image_id}.{EXTRA_SUFFIX[name]}"
        return files

    def load_model(accelerator):
        model = network.load(recipe, classes).to(accelerator.device)
        names.extend(classes or getattr(model, "class_names", None) or [])
        return model

    def compute(model, item, paths, accelerator) -> None:
        image = item.load()
        with accelerator.autocast():
            probs = multiscale_probabilities(model, image, cfg.scales, cfg.flip, accelerator.device).cpu().numpy()
        if crf:
            probs = dense_crf(image, probs, recipe.refining_crf())
        label = probs.argmax(0).astype(np.uint8)
        class_names = names or [f"class {k}" for k in range(probs.shape[0])]
        save_label_png(paths["mask"], label)
        atomic_write_json(paths["classes"], class_shares(item.image_id, label, class_names))
        if "overlay" in paths:
            save_image(paths["overlay"], overlay_picture(image, label, class_names))
        if "probabilities" in paths:
            save_npz(paths["probabilities"], probabilities=probs.astype(np.float16),
                     classes=np.asarray(class_names))

    job = PerImageJob(
        network.step, "predict", spec, work, outputs, [folder, *(extras[n] for n in extras if wanted[n])],
        load_model=load_model, compute=compute, done_file=prediction_done(folder), extra=extra,
        # stale predictions in psa's own folders are removed and recomputed; a folder named
        # with --out is not ours to empty, so there they are refused
        remove_stale=out_dir is None, summary={"folder": str(folder)},
        # one unreadable photo of a folder must not cost the others
        skip_failed=bool(images))
    return run_per_image(recipe, job, reporter)


def class_shares(image_id: str, label: np.ndarray, class_names) -> dict:
    """The classes present in a predicted mask, each with its share of the pixels."""
    counts = np.bincount(label.ravel(), minlength=len(class_names))
    present = [int(k) for k in np.flatnonzero(counts)]
    return {"id": image_id, "height": int(label.shape[0]), "width": int(label.shape[1]),
            "classes": [{"index": k, "name": class_names[k] if k < len(class_names) else str(k),
                         "share": round(float(counts[k]) / label.size, 6)} for k in present]}


def overlay_picture(image: np.ndarray, label: np.ndarray, class_names) -> np.ndarray:
    """The image with its mask in VOC colours blended over it, the legend of the classes present below."""
    blend = (0.5 * image.astype(np.float32) + 0.5 * colorize_label(label).astype(np.float32)).round().astype(np.uint8)
    strip = legend(list(class_names), present_ids=np.unique(label).tolist(), max_width=max(image.shape[1], 160))
    width = max(blend.shape[1], strip.shape[1])
    canvas = np.full((blend.shape[0] + strip.shape[0], width, 3), 255, np.uint8)
    canvas[:blend.shape[0], :blend.shape[1]] = blend
    canvas[blend.shape[0]:, :strip.shape[1]] = strip
    return canvas


@dataclass(frozen=True)
class _Image:
    """An image given on the command line, shaped like a split's item."""

    image_id: str
    read: Callable[[], np.ndarray]

    def load(self) -> np.ndarray:
        return self.read()
