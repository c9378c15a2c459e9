"""Diagnosis of a finished run: which stage holds the pseudo masks back.

For each image of the evaluation split (with ground truth) it measures what every run has —
the CAM prediction at the recipe's background threshold and over the threshold sweep, the
confident labels' precision and coverage, the classifier's per-class average precision — and
hands the image to each method's `Probe` (the AffinityNet walk over learned and over
ground-truth affinities, IRN's boundary map against the true class edges, ...). It lists
every registered pseudo-mask source with the mIoU its evaluations wrote, and reads the
bottleneck off the bounds the probes measured.

It runs in one process (on the GPU when there is one): a report over ~100s of images, not a
production stage. Outputs: `<run.dir>/diagnose/diagnose.json` and TensorBoard text.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np
import torch

from ..config import Recipe
from ..constants import FEATURE_STRIDE
from ..data.transforms import normalize, pad_to_multiple
from ..engine.report import Reporter
from ..errors import PsaError
from ..io import atomic_write_json, read_label_png
from ..layout import RunLayout
from ..metrics import Confusion, ThresholdSweep, label_quality, multilabel_scores
from ..ops.cam import cam_prediction
from .cams import CamFile, cam_export, classifier
from .evaluation import sweep_thresholds
from .items import Item, items_for
from .masks import MaskSource
from .outputs import prepare_folders
from .registry import REGISTRY

# a walk within this many mIoU points of its ground-truth bound has little left to gain
NEAR_BOUND = 0.03


@dataclass
class DiagnosedImage:
    """What a probe sees of one image."""

    item: Item
    image: np.ndarray  # uint8 H×W×3
    gt: np.ndarray  # uint8 H×W
    cam: CamFile


@dataclass(frozen=True)
class Bound:
    """A refinement's ceiling on these CAMs (e.g. the walk over ground-truth affinities) and
    what its learned version reached; `trails` says where to look when it trails the bound."""

    name: str  # "affinity"
    bound: Optional[float]
    learned: Optional[float]  # None: not trained yet
    trails: str = "the learned walk trails its ground-truth bound"


@dataclass
class Table:
    """A table for the report: its cells are what a reader sees."""

    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Finding:
    """What a probe found over the split."""

    report: dict  # under the probe's name in diagnose.json
    rows: list[tuple[str, Optional[float]]] = field(default_factory=list)  # (label, mIoU) for the summary
    bound: Optional[Bound] = None
    tables: list[Table] = field(default_factory=list)
    iou: dict[str, dict] = field(default_factory=dict)  # per-class IoU columns: {"IoU RW": {class: iou}}


class ProbeRun(Protocol):
    def add(self, image: DiagnosedImage) -> None: ...

    def finish(self) -> Finding: ...


@dataclass(frozen=True)
class Probe:
    """A method's part of the diagnosis: `open(recipe, classes, device)` → a ProbeRun fed every
    image, or None when there is nothing to measure."""

    name: str
    open: Callable[[Recipe, list[str], torch.device], Optional[ProbeRun]]


def diagnose(recipe: Recipe, split: str | None = None, reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    split = split or recipe.data.eval_split
    items = items_for(recipe, [split])
    if not items[0].source.has_masks:
        raise PsaError(f"split {split!r} has no ground-truth masks to diagnose against")
    classes = list(items[0].source.classes)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    export = cam_export()
    cam_model = classifier().load(recipe, None).to(device)
    out_dir = RunLayout.of(recipe).diagnose
    prepare_folders(recipe, out_dir.path)
    probes = {probe.name: run for probe in REGISTRY.all(Probe)
              if (run := probe.open(recipe, classes, device)) is not None}

    cam, labels = Confusion(len(classes)), Confusion(len(classes))
    sweep = ThresholdSweep(sweep_thresholds(recipe), len(classes))
    logits, targets = [], []
    have_labels = True
    started = time.perf_counter()
    reporter.start("diagnose", total=len(items))
    for position, item in enumerate(items, 1):
        cam_file = export.read(recipe, item.image_id)
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        if cam_file.cams.shape[1:] != gt.shape:
            raise PsaError(f"CAMs in {export.path(recipe, item.image_id)} are {cam_file.cams.shape[1:]}, the mask is "
                           f"{gt.shape} (exported with another data.max_size?)")
        cam.add(cam_prediction(cam_file.cams, cam_file.class_ids, recipe.cam.bg_threshold), gt)
        sweep.add(lambda t: cam_prediction(cam_file.cams, cam_file.class_ids, t), gt)
        with torch.no_grad():
            x = pad_to_multiple(normalize(image), FEATURE_STRIDE)[None].to(device)
            logits.append(cam_model(x).float().cpu().numpy()[0])
        target = np.zeros(len(classes) - 1, dtype=np.int64)
        target[item.source.image_labels(item.index) - 1] = 1
        targets.append(target)
        label_path = export.confident_labels(recipe) / f"{item.image_id}.png"
        if label_path.is_file():
            labels.add(read_label_png(label_path, "confident label", gt.shape, against="the mask"), gt)
        else:
            have_labels = False
        seen = DiagnosedImage(item, image, gt, cam_file)
        for run in probes.values():
            run.add(seen)
        reporter.update(position)
    reporter.finish()

    findings = {name: run.finish() for name, run in probes.items()}
    report = _report(recipe, classes, split, len(items), cam, sweep, labels if have_labels else None,
                     multilabel_scores(np.stack(logits), np.stack(targets)), findings)
    report["seconds"] = round(time.perf_counter() - started, 2)
    atomic_write_json(out_dir / "diagnose.json", report)
    _write_tensorboard(out_dir, report)
    return report


def _report(recipe: Recipe, classes: list, split: str, images: int, cam: Confusion, sweep: ThresholdSweep,
            labels: Optional[Confusion], classifier_scores: dict, findings: dict[str, Finding]) -> dict:
    cam_scores = cam.scores(classes)
    table = sweep.table(classes)
    best = sweep.best(classes)
    best_miou = table[best] if best is not None else None
    sources = {source.name: {"label": source.label, "miou": source.miou(recipe, crf=False),
                             "crf_miou": source.miou(recipe, crf=True)} for source in REGISTRY.all(MaskSource)}
    rows = [[f"CAM (bg threshold {recipe.cam.bg_threshold})", cam_scores["miou"]],
            [f"CAM (best bg threshold {best})", best_miou]]
    rows += [list(row) for finding in findings.values() for row in finding.rows]
    rows += [row for source in sources.values() for row in _source_rows(source)]
    return {
        "split": split, "images": images,
        "split_is_training_data": split == recipe.data.train_split,
        "cam": {"bg_threshold": recipe.cam.bg_threshold, "miou": cam_scores["miou"], "best_bg_threshold": best,
                "best_miou": best_miou, "sweep": {str(t): miou for t, miou in table.items()}},
        "confident_labels": label_quality(labels.matrix) if labels is not None else None,
        "classifier": {"mAP": classifier_scores["mAP"],
                       "ap": {name: ap for name, ap in zip(classes[1:], classifier_scores["ap"])}},
        "sources": sources,
        **{name: finding.report for name, finding in findings.items()},
        "iou": {"IoU CAM": cam_scores["iou"], **{k: v for f in findings.values() for k, v in f.iou.items()}},
        "rows": rows,
        "tables": [table.__dict__ for finding in findings.values() for table in finding.tables],
        "bottleneck": bottleneck(best_miou, [f.bound for f in findings.values() if f.bound is not None]),
    }


def _source_rows(source: dict) -> list[list]:
    rows = []
    if source["miou"] is not None:
        rows.append([f"{source['label']} (tools/eval.py)", source["miou"]])
    if source["crf_miou"] is not None:
        rows.append([f"{source['label']} + dCRF (tools/eval.py --crf)", source["crf_miou"]])
    return rows


def bottleneck(cam_best: Optional[float], bounds: list[Bound]) -> str:
    """One sentence: the stage to fix first, read off the bounds."""
    cam_best = cam_best or 0.0
    measured = [b for b in bounds if b.bound is not None]
    if not measured:
        return "no refinement bound measured (no loaded method's probe computes one)"
    best = max(measured, key=lambda b: b.bound)
    if best.bound < cam_best + NEAR_BOUND:
        return ("classifier: even ground-truth affinities lift these CAMs by less than "
                f"{100 * NEAR_BOUND:.0f} points; fix the CAMs (classifier, alpha, scales) first")
    if best.learned is None:
        return f"{best.name} not trained yet: the walk could gain up to the ground-truth bound"
    if best.learned < best.bound - NEAR_BOUND:
        return f"{best.name}: {best.trails}"
    return "walk near its bound: gains now need better CAMs"


def _write_tensorboard(out_dir, report: dict) -> None:
    from torch.utils.tensorboard import SummaryWriter

    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}"

    lines = ["| stage | mIoU % |", "|---|---:|"] + [f"| {row} | {pct(v)} |" for row, v in report["rows"]]
    lines += ["", f"**bottleneck:** {report['bottleneck']}"]
    with SummaryWriter(log_dir=str(out_dir.tensorboard)) as writer:
        writer.add_text("diagnose/summary", "\n".join(lines), 0)
        writer.add_text("diagnose/json", "```\n" + json.dumps(report, indent=1) + "\n```", 0)
