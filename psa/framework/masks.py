"""Pseudo-mask sources: the per-pixel labels a refinement method writes (AffinityNet's walk,
IRN's, a new method's), which a segmentation network can train on (`seg.masks`,
`cps.masks`), the evaluation scores and the diagnosis lists.

`register_mask_source` is all a refinement method needs after its per-image step: it
registers the source and its evaluations, with and without the dense CRF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..config import Recipe
from ..io import read_json
from .evaluation import eval_folder, evaluation_step
from .registry import REGISTRY
from .step import Predictions, Step, SummaryRow


@dataclass(frozen=True)
class MaskSource:
    name: str  # its recipe value (seg.masks) and its tools/eval.py --source name: "rw"
    label: str  # in tables: "CAM + random walk"
    step: Step  # the step that writes the masks
    masks: Callable[[Recipe], Path]  # <id>.png label maps
    refined: Optional[Callable[[Recipe], Path]]  # <id>.png refined by the dense CRF, if the step writes them
    scores: Optional[Callable[[Recipe], Path]]  # <id>.npz score files (psa/ops/scores.py), if any
    predictions: Predictions  # what its evaluations score
    evaluations: tuple[Step, ...]  # without, then with the dense CRF

    def folder(self, recipe: Recipe, labels: str) -> Path:
        """The masks a `<section>.labels` of pseudo or pseudo_crf means."""
        return self.refined(recipe) if labels == "pseudo_crf" and self.refined else self.masks(recipe)

    def miou(self, recipe: Recipe, crf: bool) -> Optional[float]:
        """The mIoU its evaluation (with or without the CRF) wrote, or None before it ran."""
        metrics = read_json(eval_folder(recipe, self.predictions, crf) / "metrics.json")
        return None if metrics is None else metrics.get("miou")


def register_mask_source(name: str, label: str, title: str, step: Step, stage: str,
                         masks: Callable[[Recipe], Path], refined: Optional[Callable[[Recipe], Path]] = None,
                         scores: Optional[Callable[[Recipe], Path]] = None, task: Optional[str] = None,
                         default: bool = True) -> MaskSource:
    """Register `step`'s pseudo masks as source `name`, with its evaluations `eval_<name>` and
    (with `scores`) `eval_<name>_crf` in the summary as `label` (column `title` in sweeps).
    `stage`: the stage folder whose eval/ receives the scores."""
    predictions = Predictions(name, stage=stage, step=step, labels=masks, scores=scores, scores_format="walk")
    evaluations = [evaluation_step(f"eval_{name}", predictions, task=task or step.task, default=default,
                                   rows=(SummaryRow(label, title),))]
    if scores is not None:
        evaluations.append(evaluation_step(f"eval_{name}_crf", predictions, task=task or step.task, crf=True,
                                           default=default, rows=(SummaryRow(f"{label} + dCRF", f"{title}+dCRF"),)))
    for evaluation in evaluations:
        REGISTRY.register(evaluation)
    return REGISTRY.add(MaskSource(name, label, step, masks, refined, scores, predictions, tuple(evaluations)))
