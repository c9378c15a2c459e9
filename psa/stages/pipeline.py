"""Every stage in order, as a list of named steps; a step whose output exists is skipped,
so a killed pipeline resumes where it stopped (training steps resume from checkpoints)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import Recipe
from ..engine.checkpoints import WEIGHTS_FILE
from ..engine.report import Reporter
from ..tasks import task_builder
from . import export_cams, random_walk
from .evaluate import evaluate
from .predict import predict


@dataclass(frozen=True)
class Step:
    name: str
    output: Callable[[Recipe], Path]  # exists once the step is complete
    run: Callable[[Recipe, Reporter], object]


def _train(task: str):
    def run(recipe: Recipe, reporter: Reporter):
        from ..engine.trainer import train

        return train(dataclasses.replace(recipe, task=task), task_builder(task), reporter)
    return run


def _metrics(stage: str, name: str) -> Callable[[Recipe], Path]:
    return lambda r: r.stage_dir(stage) / "eval" / name / "metrics.json"


STEPS = (
    Step("train_cam", lambda r: r.stage_dir("cam") / WEIGHTS_FILE, _train("cam")),
    Step("export_cams", lambda r: r.stage_dir("cam") / export_cams.DONE_FILE, export_cams.export_cams),
    Step("eval_cam", _metrics("cam", "cam"), lambda r, rep: evaluate(r, "cam", reporter=rep)),
    Step("train_affinity", lambda r: r.stage_dir("affinity") / WEIGHTS_FILE, _train("affinity")),
    Step("random_walk", lambda r: r.stage_dir("affinity") / random_walk.DONE_FILE, random_walk.run_random_walk),
    Step("eval_rw", _metrics("affinity", "rw"), lambda r, rep: evaluate(r, "rw", reporter=rep)),
    Step("eval_rw_crf", _metrics("affinity", "rw_crf"), lambda r, rep: evaluate(r, "rw", crf=True, reporter=rep)),
    Step("train_seg", lambda r: r.stage_dir("seg") / WEIGHTS_FILE, _train("seg")),
    Step("predict_seg", lambda r: r.stage_dir("seg") / "pred_done.json", lambda r, rep: predict(r, reporter=rep)),
    Step("eval_seg", _metrics("seg", "seg"), lambda r, rep: evaluate(r, "seg", reporter=rep)),
)
STEP_NAMES = tuple(step.name for step in STEPS)

# (row label, step whose metrics.json holds it, metric key)
SUMMARY_ROWS = (
    ("CAM (bg threshold from recipe)", "eval_cam", "miou"),
    ("CAM (best bg threshold of the sweep)", "eval_cam", "best_sweep_miou"),
    ("CAM + random walk", "eval_rw", "miou"),
    ("CAM + random walk + dCRF", "eval_rw_crf", "miou"),
    ("segmentation network (val, never saw a mask)", "eval_seg", "miou"),
)


def selected_steps(recipe: Recipe) -> list[Step]:
    """The steps `pipeline.steps` names (validated against config.PIPELINE_STEPS), in order."""
    return [step for step in STEPS if step.name in recipe.pipeline.steps]


def step_by_name(name: str) -> Step:
    return next(step for step in STEPS if step.name == name)
