"""Evaluation: score CAM predictions, random-walk masks, segmentation predictions or any
folder of PNG label maps against a split's ground truth.

The confusion matrix is summed over the whole split. Under several processes each image
belongs to exactly one shard (no sampler padding), and the per-process matrices are summed
once at the end, so every pixel counts once.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from ..config import Recipe
from ..errors import PsaError
from ..engine.accel import make_accelerator, shard, sum_over_processes
from ..engine.cpu_workers import available_cores
from ..engine.report import Reporter
from ..io import atomic_write_json, remove_stale_temp_files, save_image
from ..layout import RunLayout, StageFolder
from ..metrics import confusion_matrix, segmentation_scores
from ..ops.cam import cam_prediction
from ..ops.crf import dense_crf
from ..ops.walk_scores import load_walk_scores, to_probabilities, upsample_scores
from ..provenance import StageSpec, check_upstream, remove_output, write_record
from ..viz import colorize_label, iou_bar_chart, side_by_side
from .common import REFINING_CRF_READS, items_for, refining_crf_unused
from .export_cams import load_cam_file
from .registry import REGISTRY, Step, SummaryRow


@dataclass(frozen=True)
class Predictions:
    """What an evaluation scores: the per-image predictions one step writes."""

    name: str  # what `tools/eval.py --source` calls it
    stage: str  # the stage folder whose eval/ receives the scores
    step: str  # the step that writes them: the evaluation's upstream
    labels: Callable[[Recipe], Path]  # the folder of <id>.png label maps (kind "cam": of CAM files)
    # png: label maps; cam: CAM files (argmax over the classes and the background threshold,
    # which the evaluation also sweeps)
    kind: str = "png"
    # class scores for --crf: a folder of CAM files ("cam") or of walk scores ("walk": npz with
    # scores (K+1, h, w), channel 0 the background, at the stride the file names, 8 by default)
    scores: Optional[Callable[[Recipe], Path]] = None
    scores_format: str = "cam"
    split: str = "eval"  # the split scored by default: eval (data.eval_split) or val (data.val_split)
    reads: tuple[str, ...] = ()  # recipe keys that change how the predictions are read or named
    folder_name: Optional[Callable[[Recipe], str]] = None  # its eval/ folder's name (default: name)

    def split_key(self) -> str:
        return "data.val_split" if self.split == "val" else "data.eval_split"

    def default_split(self, recipe: Recipe) -> str:
        return recipe.data.val_split if self.split == "val" else recipe.data.eval_split


def source_for_task(task: str) -> Predictions:
    """What `tools/eval.py` scores when no --source is given: the predictions of the recipe's task."""
    for step in REGISTRY:
        if step.source is not None and step.task == task:
            return step.source
    raise PsaError(f"task {task!r} has no predictions to score; choose --source "
                   f"({', '.join(REGISTRY.sources())}) or --pred DIR")


def eval_name(recipe: Recipe, source: Optional[Predictions], crf: bool, pred_dir: str | None) -> str:
    if pred_dir:
        base = f"pred_{Path(pred_dir).name}"
    else:
        base = source.folder_name(recipe) if source.folder_name else source.name
    return base + ("_crf" if crf else "")


def _eval_stage(recipe: Recipe, source: Optional[Predictions], pred_dir: str | None) -> StageFolder:
    """The stage folder whose eval/ and TensorBoard receive the scores: the source's, or for a
    folder of label maps the recipe's task's."""
    return RunLayout.of(recipe).stage(source.stage if source is not None and pred_dir is None else recipe.task)


def _eval_folder(recipe: Recipe, source: Optional[Predictions], crf: bool, pred_dir: str | None) -> Path:
    return _eval_stage(recipe, source, pred_dir).eval(eval_name(recipe, source, crf, pred_dir))


def eval_spec(source: Optional[Predictions], crf: bool = False, pred_dir: str | None = None,
              split: str | None = None) -> StageSpec:
    """What an evaluation's metrics depend on (psa/provenance.py); a key it reads belongs here.
    Recorded in eval/<name>/provenance.json. `source` None: a folder of label maps (`pred_dir`)."""
    reads = ["eval.num_pictures", "run.mixed_precision"]
    if pred_dir is None:
        reads += list(source.reads)
        if source.kind == "cam" and not crf:
            reads.append("eval.bg_sweep")
    if crf:
        reads += REFINING_CRF_READS
    if split is None:
        reads.append(source.split_key() if pred_dir is None else "data.eval_split")
    upstream = () if pred_dir else (source.step,)

    def splits(recipe: Recipe) -> list[str]:
        return [split or (source.default_split(recipe) if pred_dir is None else recipe.data.eval_split)]

    return StageSpec(reads=tuple(reads), ignores=("run.seed",),
                     record=lambda r: _eval_folder(r, source, crf, pred_dir) / "provenance.json",
                     outputs=lambda r: [_eval_folder(r, source, crf, pred_dir)], splits=splits,
                     upstream=lambda r: upstream, unused=refining_crf_unused if crf else lambda r: ())


def evaluation_step(name: str, source: Predictions, task: str, crf: bool = False,
                    rows: tuple[SummaryRow, ...] = (), default: bool = True) -> Step:
    """A registered evaluation of `source` (with the dense CRF if `crf`) on its default split."""
    spec = eval_spec(source, crf)
    return Step(name, spec, lambda recipe, reporter: evaluate(recipe, source.name, crf=crf, reporter=reporter),
                task=task, rows=rows, metrics=lambda recipe: spec.outputs(recipe)[0] / "metrics.json",
                default=default, source=source, ground_truth="masks")


def sweep_thresholds(recipe: Recipe) -> list[float]:
    start, stop, step = recipe.eval.bg_sweep
    count = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 6) for i in range(count)]


def evaluate(recipe: Recipe, source: str | None = None, crf: bool = False, pred_dir: str | None = None,
             split: str | None = None, reporter: Reporter | None = None) -> dict:
    """Score the predictions `source` names (default: the recipe's task's), or a folder of
    label maps (`pred_dir`), on `split` (default: the source's)."""
    reporter = reporter or Reporter()
    sources = REGISTRY.sources()
    predictions = None
    if pred_dir is None:
        predictions = sources.get(source) if source else source_for_task(recipe.task)
        if predictions is None:
            raise PsaError(f"unknown prediction source {source!r}; choose one of {', '.join(sources)} or --pred DIR")
    if crf and (predictions is None or predictions.scores is None):
        with_scores = [name for name, s in sources.items() if s.scores is not None]
        raise PsaError(f"--crf needs class scores: it works with the {' and '.join(with_scores)} sources "
                       "(for the segmentation networks use tools/predict.py --crf)")
    spec = eval_spec(predictions, crf, pred_dir, split)
    name = eval_name(recipe, predictions, crf, pred_dir)
    step = f"eval_{name}"
    prov = REGISTRY.provenance(recipe)
    check_upstream(prov, step, spec)  # predictions made for another recipe: refused, naming the key
    expected = prov.expected(step, spec=spec, extra={"pred_dir": str(Path(pred_dir).resolve())} if pred_dir else None)
    split = split or (predictions.default_split(recipe) if predictions else recipe.data.eval_split)
    out_dir = spec.outputs(recipe)[0]

    accelerator = make_accelerator(recipe)
    items = items_for(recipe, [split])
    classes = items[0].source.classes
    if not items[0].source.has_masks:
        raise PsaError(f"split {split!r} has no ground-truth masks to evaluate against")
    predictor = _Predictor(recipe, predictions, pred_dir, crf)
    thresholds = sweep_thresholds(recipe) if predictor.kind == "cam" and not crf else []

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
        _write_outputs(out_dir, _eval_stage(recipe, predictions, pred_dir), metrics, pictures, classes)
        write_record(spec.record(recipe), expected, complete=True)
    accelerator.wait_for_everyone()
    return metrics


class _Predictor:
    """Yields (item, gt, prediction, extra) per image; CRF work goes to a process pool."""

    def __init__(self, recipe: Recipe, source: Optional[Predictions], pred_dir: str | None, crf: bool):
        self.recipe, self.crf = recipe, crf
        if pred_dir is not None:
            self.folder = Path(pred_dir)
            if not self.folder.is_dir():
                raise PsaError(f"prediction folder not found: {pred_dir}")
            self.kind = "png"
        elif crf:  # only the source's own keys are read (provenance)
            self.folder, self.kind = source.scores(recipe), source.scores_format
        else:
            self.folder, self.kind = source.labels(recipe), source.kind

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
            small, class_ids, stride = load_walk_scores(path)
            scores = upsample_scores(small, *image_shape, stride=stride)
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
        workers = self.recipe.eval.crf_workers or available_cores()
        if workers == 1:
            for item in items:
                image = item.source.load_image(item.index)
                probs, lookup = self._scores(item, image.shape[:2])
                label = _crf_label(image, probs, lookup, self.recipe.refining_crf())
                yield item, item.source.load_mask(item.index), label, None
            return
        # fork: the children only run numpy + pydensecrf, never torch
        context = multiprocessing.get_context("fork")
        window = 2 * workers
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            pending = []
            for item in items:
                image = item.source.load_image(item.index)
                probs, lookup = self._scores(item, image.shape[:2])
                pending.append((item, pool.submit(_crf_label, image, probs, lookup, self.recipe.refining_crf())))
                if len(pending) >= window:
                    done_item, future = pending.pop(0)
                    yield done_item, done_item.source.load_mask(done_item.index), future.result(), None
            for done_item, future in pending:
                yield done_item, done_item.source.load_mask(done_item.index), future.result(), None


def _crf_label(image: np.ndarray, probs: np.ndarray, lookup: np.ndarray, crf_cfg) -> np.ndarray:
    return lookup[dense_crf(image, probs, crf_cfg).argmax(axis=0)]


def _write_outputs(out_dir: Path, stage: StageFolder, metrics: dict, pictures: list, classes) -> None:
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

    with SummaryWriter(log_dir=str(stage.tensorboard)) as writer:
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
