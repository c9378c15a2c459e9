"""Evaluation: score CAM predictions, random-walk masks, segmentation predictions or any
folder of PNG label maps against a split's ground truth.

The confusion matrix is summed over the whole split. Under several processes each image
belongs to exactly one shard (no sampler padding), and the per-process matrices are summed
once at the end, so every pixel counts once.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import Recipe
from ..errors import PsaError
from ..engine.accel import make_accelerator, shard, sum_over_processes
from ..engine.report import Reporter
from ..io import atomic_write_json, remove_stale_temp_files, save_image
from ..metrics import confusion_matrix, segmentation_scores
from ..ops.cam import cam_prediction
from ..ops.crf import dense_crf
from ..provenance import Provenance, StageSpec, check_upstream, remove_output, write_record
from ..viz import colorize_label, iou_bar_chart, side_by_side
from .common import items_for
from .export_cams import CAMS_DIR, load_cam_file
from .random_walk import PSEUDO_DIR, SCORES_DIR, to_probabilities, upsample_scores

SOURCE_OF_TASK = {"cam": "cam", "affinity": "rw", "seg": "seg", "cps": "cps"}
STAGE_OF_SOURCE = {source: stage for stage, source in SOURCE_OF_TASK.items()}
SOURCES = tuple(STAGE_OF_SOURCE)  # what tools/eval.py --source accepts
NETWORK_SOURCES = ("seg", "cps")  # label maps written by tools/predict.py
SEG_PRED_DIR = "pred"  # under <run>/seg/, written by tools/predict.py


def network_pred_dir(recipe: Recipe, source: str) -> Path:
    """Where tools/predict.py writes a network's label maps: <run>/seg/pred, or for the CPS
    pair <run>/cps/pred_mean | pred_first (cps.predict_with), so the two never mix."""
    if source == "cps":
        return recipe.stage_dir("cps") / f"{SEG_PRED_DIR}_{recipe.cps.predict_with}"
    return recipe.stage_dir("seg") / SEG_PRED_DIR


def eval_name(recipe: Recipe, source: str, crf: bool, pred_dir: str | None) -> str:
    base = f"pred_{Path(pred_dir).name}" if pred_dir else (
        f"cps_{recipe.cps.predict_with}" if source == "cps" else source)
    return base + ("_crf" if crf else "")


def _default_split(recipe: Recipe, source: str, pred_dir: str | None) -> str:
    return recipe.data.val_split if source in NETWORK_SOURCES and pred_dir is None else recipe.data.eval_split


def eval_spec(source: str, crf: bool = False, pred_dir: str | None = None, split: str | None = None) -> StageSpec:
    """What an evaluation's metrics depend on (psa/provenance.py); a key it reads belongs here.
    Recorded in eval/<name>/provenance.json."""
    reads = ["eval.num_pictures", "run.mixed_precision"]
    if source == "cam" and pred_dir is None:
        reads += ["cam.bg_threshold"] + ([] if crf else ["eval.bg_sweep"])
    if source == "cps" and pred_dir is None:
        reads.append("cps.predict_with")  # names the prediction folder; the network is checked by its metadata
    if crf:
        reads.append("crf")
    if split is None:
        reads.append("data.val_split" if source in NETWORK_SOURCES and pred_dir is None else "data.eval_split")
    upstream = () if pred_dir else {"cam": ("export_cams",), "rw": ("random_walk",), "seg": ("predict_seg",),
                                    "cps": ()}[source]

    def folder(recipe: Recipe) -> Path:
        return recipe.stage_dir(STAGE_OF_SOURCE.get(source, recipe.task)) / "eval" / eval_name(
            recipe, source, crf, pred_dir)

    def splits(recipe: Recipe) -> list[str]:
        return [split or _default_split(recipe, source, pred_dir)]

    return StageSpec(reads=tuple(reads), ignores=("run.seed",), record=lambda r: folder(r) / "provenance.json",
                     outputs=lambda r: [folder(r)], splits=splits, upstream=lambda r: upstream)


def sweep_thresholds(recipe: Recipe) -> list[float]:
    start, stop, step = recipe.eval.bg_sweep
    count = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 6) for i in range(count)]


def evaluate(recipe: Recipe, source: str | None = None, crf: bool = False, pred_dir: str | None = None,
             split: str | None = None, reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    source = source or SOURCE_OF_TASK[recipe.task]
    if pred_dir is None and source not in SOURCES:
        raise PsaError(f"unknown prediction source {source!r}; choose one of {', '.join(SOURCES)} or --pred DIR")
    if crf and (pred_dir is not None or source in NETWORK_SOURCES):
        raise PsaError("--crf needs class scores: it works with the cam and rw sources "
                       "(for the segmentation networks use tools/predict.py --crf)")
    spec = eval_spec(source, crf, pred_dir, split)
    name = eval_name(recipe, source, crf, pred_dir)
    step = f"eval_{name}"
    prov = Provenance(recipe)
    check_upstream(recipe, step, prov, spec)  # predictions made for another recipe: refused, naming the key
    expected = prov.expected(step, spec=spec, extra={"pred_dir": str(Path(pred_dir).resolve())} if pred_dir else None)
    split = split or _default_split(recipe, source, pred_dir)
    stage = recipe.stage_dir(STAGE_OF_SOURCE.get(source, recipe.task))
    out_dir = stage / "eval" / name

    accelerator = make_accelerator(recipe)
    items = items_for(recipe, [split])
    classes = items[0].source.classes
    if not items[0].source.has_masks:
        raise PsaError(f"split {split!r} has no ground-truth masks to evaluate against")
    predictor = _Predictor(recipe, source, pred_dir, crf)
    thresholds = sweep_thresholds(recipe) if source == "cam" and not crf and pred_dir is None else []

    num = len(classes)
    # one extra column counts predictions outside the class range (misses for the gt class)
    conf = np.zeros((num, num + 1), dtype=np.int64)
    sweep = np.zeros((len(thresholds), num, num + 1), dtype=np.int64)
    mine = shard(items, accelerator)
    pictures = []
    started = time.perf_counter()
    reporter.start(f"evaluate {name}", total=len(mine))
    for position, (item, gt, pred, extra) in enumerate(predictor.run(mine), 1):
        if pred.shape != gt.shape:
            raise PsaError(f"prediction for {item.image_id} is {pred.shape}, ground truth is {gt.shape}")
        conf += confusion_matrix(pred, gt, num)
        for t, threshold in enumerate(thresholds):
            sweep[t] += confusion_matrix(cam_prediction(*extra, threshold), gt, num)
        if accelerator.is_main_process and len(pictures) < recipe.eval.num_pictures:
            pictures.append((item, gt, pred))
        reporter.update(position)
    reporter.finish()
    conf = sum_over_processes(accelerator, conf)
    sweep = sum_over_processes(accelerator, sweep)

    metrics = segmentation_scores(conf, classes)
    metrics.update({"source": name, "split": split, "images": len(items),
                    "seconds": round(time.perf_counter() - started, 2)})
    if thresholds:
        table = {str(t): segmentation_scores(c, classes)["miou"] for t, c in zip(thresholds, sweep)}
        best = max(table, key=lambda k: -1 if table[k] is None else table[k])
        metrics["bg_sweep"] = table
        metrics["best_bg_threshold"] = float(best)
        metrics["best_sweep_miou"] = table[best]
    if accelerator.is_main_process:
        if out_dir.is_symlink():  # shared by a sweep with a run whose result this is not: ours now
            out_dir.unlink()
        remove_output(out_dir / "pictures")  # pictures of an earlier evaluation are not this one's
        _write_outputs(out_dir, stage, metrics, pictures, classes)
        write_record(spec.record(recipe), expected, complete=True)
    accelerator.wait_for_everyone()
    return metrics


class _Predictor:
    """Yields (item, gt, prediction, extra) per image; CRF work goes to a process pool."""

    def __init__(self, recipe: Recipe, source: str, pred_dir: str | None, crf: bool):
        self.recipe, self.source, self.crf = recipe, source, crf
        if pred_dir is not None:
            self.folder = Path(pred_dir)
            if not self.folder.is_dir():
                raise PsaError(f"prediction folder not found: {pred_dir}")
        else:
            self.folder = {
                "cam": lambda: recipe.stage_dir("cam") / CAMS_DIR,
                "rw": lambda: recipe.stage_dir("affinity") / (SCORES_DIR if crf else PSEUDO_DIR),
                "seg": lambda: network_pred_dir(recipe, "seg"),
                "cps": lambda: network_pred_dir(recipe, "cps"),
            }[source]()  # only the source's own keys are read (provenance)
        self.kind = ("png" if pred_dir is not None or source in NETWORK_SOURCES or (source == "rw" and not crf)
                     else source)

    def _path(self, image_id: str) -> Path:
        path = self.folder / f"{image_id}.{'png' if self.kind == 'png' else 'npz'}"
        if not path.is_file():
            raise PsaError(f"prediction missing: {path} (run the stage that writes it first)")
        return path

    def _scores(self, item, image_shape) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (K+1, H, W), lookup local index → class id)."""
        path = self._path(item.image_id)
        if self.kind == "cam":
            cams, class_ids = load_cam_file(path)
            bg = np.full((1, *cams.shape[1:]), self.recipe.cam.bg_threshold, dtype=np.float32)
            scores = np.concatenate([bg, cams])
        else:
            with np.load(path) as data:
                small, class_ids = torch.from_numpy(data["scores"].astype(np.float32)), data["classes"]
            scores = upsample_scores(small, *image_shape)
        if scores.shape[1:] != image_shape:
            raise PsaError(f"scores in {path} are {scores.shape[1:]}, the image is {image_shape}")
        return to_probabilities(scores), np.concatenate([[0], class_ids]).astype(np.uint8)

    def run(self, items):
        if self.crf:
            yield from self._run_crf(items)
            return
        for item in items:
            gt = item.source.load_mask(item.index)
            if self.kind == "png":
                path = self._path(item.image_id)
                try:
                    pred = np.asarray(Image.open(path))
                except OSError as err:
                    raise PsaError(f"cannot read prediction {path}: {err}") from None
                yield item, gt, pred, None
            else:  # cam
                cams, class_ids = load_cam_file(self._path(item.image_id))
                yield item, gt, cam_prediction(cams, class_ids, self.recipe.cam.bg_threshold), (cams, class_ids)

    def _run_crf(self, items):
        workers = self.recipe.eval.crf_workers or max(1, (os.cpu_count() or 1))
        if workers == 1:
            for item in items:
                image = item.source.load_image(item.index)
                probs, lookup = self._scores(item, image.shape[:2])
                yield item, item.source.load_mask(item.index), _crf_label(image, probs, lookup, self.recipe.crf), None
            return
        # fork: the children only run numpy + pydensecrf, never torch
        context = multiprocessing.get_context("fork")
        window = 2 * workers
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            pending = []
            for item in items:
                image = item.source.load_image(item.index)
                probs, lookup = self._scores(item, image.shape[:2])
                pending.append((item, pool.submit(_crf_label, image, probs, lookup, self.recipe.crf)))
                if len(pending) >= window:
                    done_item, future = pending.pop(0)
                    yield done_item, done_item.source.load_mask(done_item.index), future.result(), None
            for done_item, future in pending:
                yield done_item, done_item.source.load_mask(done_item.index), future.result(), None


def _crf_label(image: np.ndarray, probs: np.ndarray, lookup: np.ndarray, crf_cfg) -> np.ndarray:
    return lookup[dense_crf(image, probs, crf_cfg).argmax(axis=0)]


def _write_outputs(out_dir: Path, stage: Path, metrics: dict, pictures: list, classes) -> None:
    for folder in (out_dir, out_dir / "pictures"):  # leftovers of a killed earlier run
        remove_stale_temp_files(folder)
    atomic_write_json(out_dir / "metrics.json", metrics)
    chart = iou_bar_chart(metrics["iou"], f"{metrics['source']}: mIoU {_pct(metrics['miou'])}")
    save_image(out_dir / "iou_chart.png", chart)
    panels = []
    for item, gt, pred in pictures:
        image = item.source.load_image(item.index)
        panel = side_by_side([_readable(p) for p in (image, colorize_label(gt), colorize_label(pred))],
                             titles=[item.image_id, "ground truth", metrics["source"]])
        save_image(out_dir / "pictures" / f"{item.image_id}.png", panel)
        panels.append(panel)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(stage / "tb")) as writer:
        tag = metrics["source"]
        if metrics["miou"] is not None:
            writer.add_scalar(f"eval/{tag}/miou", metrics["miou"], 0)
        writer.add_scalar(f"eval/{tag}/pixel_acc", metrics["pixel_acc"], 0)
        writer.add_image(f"eval/{tag}/iou_chart", chart, 0, dataformats="HWC")
        for index, panel in enumerate(panels[:4]):
            writer.add_image(f"eval/{tag}/picture_{index}", panel, 0, dataformats="HWC")


def _readable(picture: np.ndarray, min_height: int = 240) -> np.ndarray:
    """Small images (the demo's 96 px) are enlarged by an integer factor, pixels kept sharp."""
    factor = -(-min_height // picture.shape[0])
    if factor <= 1:
        return picture
    return np.asarray(Image.fromarray(picture).resize((picture.shape[1] * factor, picture.shape[0] * factor),
                                                      Image.NEAREST))


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
