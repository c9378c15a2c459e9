"""Evaluation: score CAM predictions, pseudo masks, segmentation predictions or any folder of
PNG label maps against a split's ground truth.

The confusion matrix is summed over the whole split. Under several processes each image
belongs to exactly one shard (no sampler padding), and the per-process matrices are summed
once at the end, so every pixel counts once.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from ..config import Recipe
from ..engine.accel import make_accelerator, shard, sum_over_processes
from ..engine.report import Reporter
from ..errors import PsaError
from ..layout import RunLayout, StageFolder
from ..metrics import Confusion, ThresholdSweep, threshold_grid
from ..ops.cam import cam_prediction
from ..provenance import Provenance, StepSpec, check_upstream, remove_output, write_record
from .eval_report import write_evaluation
from .items import items_for
from .predictions import PredictionReader
from .refining_crf import REFINING_CRF_READS, refining_crf_unused
from .registry import REGISTRY
from .step import Predictions, Step, SummaryRow


def source_for_task(task: str) -> Predictions:
    """What `tools/eval.py` scores when no --source is given: the predictions of the recipe's task."""
    for step in REGISTRY:
        if step.evaluates is not None and step.task == task:
            return step.evaluates
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


def eval_folder(recipe: Recipe, source: Optional[Predictions], crf: bool, pred_dir: str | None = None) -> Path:
    """Where an evaluation writes its metrics.json, chart, pictures and record."""
    return _eval_stage(recipe, source, pred_dir).eval(eval_name(recipe, source, crf, pred_dir))


def eval_spec(source: Optional[Predictions], crf: bool = False, pred_dir: str | None = None,
              split: str | None = None) -> StepSpec:
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

    return StepSpec(reads=tuple(reads), ignores=("run.seed",),
                    record=lambda r: eval_folder(r, source, crf, pred_dir) / "provenance.json",
                    outputs=lambda r: [eval_folder(r, source, crf, pred_dir)], splits=splits,
                    upstream=lambda r: upstream, unused=refining_crf_unused if crf else lambda r: ())


def evaluation_step(name: str, source: Predictions, task: str, crf: bool = False,
                    rows: tuple[SummaryRow, ...] = (), default: bool = True) -> Step:
    """A registered evaluation of `source` (with the dense CRF if `crf`) on its default split."""
    spec = eval_spec(source, crf)
    return Step(name, spec, lambda recipe, reporter: evaluate(recipe, source.name, crf=crf, reporter=reporter),
                task=task, rows=rows, metrics=lambda recipe: spec.outputs(recipe)[0] / "metrics.json",
                default=default, evaluates=source, ground_truth="masks")


def sweep_thresholds(recipe: Recipe) -> list[float]:
    """The background thresholds `eval.bg_sweep` asks for."""
    return threshold_grid(*recipe.eval.bg_sweep)


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
    prov = Provenance(recipe)
    check_upstream(prov, step, spec)  # predictions made for another recipe: refused, naming the key
    expected = prov.expected(step, spec, extra={"pred_dir": str(Path(pred_dir).resolve())} if pred_dir else None)
    split = split or (predictions.default_split(recipe) if predictions else recipe.data.eval_split)
    out_dir = spec.outputs(recipe)[0]

    accelerator = make_accelerator(recipe)
    items = items_for(recipe, [split])
    classes = items[0].source.classes
    if not items[0].source.has_masks:
        raise PsaError(f"split {split!r} has no ground-truth masks to evaluate against")
    reader = PredictionReader(recipe, predictions, pred_dir, crf)
    confusion = Confusion(len(classes))
    sweep = ThresholdSweep(sweep_thresholds(recipe) if reader.kind == "cam" and not crf else [], len(classes))
    mine = shard(items, accelerator)
    pictures = []
    started = time.perf_counter()
    reporter.start(f"evaluate {name}", total=len(mine))
    for position, (item, gt, pred, cam) in enumerate(reader.run(mine), 1):
        if pred.shape != gt.shape:
            raise PsaError(f"prediction for {item.image_id} is {pred.shape}, ground truth is {gt.shape}")
        confusion.add(pred, gt)
        if cam is not None:
            sweep.add(lambda t: cam_prediction(cam.cams, cam.class_ids, t), gt)
        if accelerator.is_main_process and len(pictures) < recipe.eval.num_pictures:
            pictures.append((item, gt, pred))
        reporter.update(position)
    reporter.finish()
    confusion.reduce(lambda m: sum_over_processes(accelerator, m))
    sweep.reduce(lambda m: sum_over_processes(accelerator, m))

    metrics = confusion.scores(classes)
    metrics.update({"source": name, "split": split, "images": len(items),
                    "seconds": round(time.perf_counter() - started, 2)})
    if sweep.thresholds:
        table = sweep.table(classes)
        best = sweep.best(classes)
        metrics["bg_sweep"] = {str(t): miou for t, miou in table.items()}
        metrics["best_bg_threshold"] = best
        metrics["best_sweep_miou"] = table[best]
    if accelerator.is_main_process:
        if out_dir.is_symlink():  # shared by a sweep with a run whose result this is not: ours now
            out_dir.unlink()
        remove_output(out_dir / "pictures")  # pictures of an earlier evaluation are not this one's
        write_evaluation(out_dir, _eval_stage(recipe, predictions, pred_dir), metrics, pictures)
        write_record(spec.record(recipe), expected, complete=True)
    accelerator.wait_for_everyone()
    return metrics
