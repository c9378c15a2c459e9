"""Every stage in order, as a list of named steps, rerun like `make`: a step is done when its
provenance record matches what the recipe asks for (psa/provenance.py), so a killed pipeline
resumes where it stopped and a changed key reruns exactly the steps downstream of it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import Recipe
from ..engine.report import Reporter
from ..errors import PsaError
from ..provenance import RESUMABLE_KEYS, Provenance, StageSpec, describe, difference, matches, read_record
from ..tasks import affinity as affinity_task, cam as cam_task, seg as seg_task
from . import export_cams, predict as predict_stage, random_walk
from .evaluate import eval_spec, evaluate
from .predict import predict


@dataclass(frozen=True)
class Step:
    name: str
    spec: StageSpec  # what its output depends on and where its record lives
    run: Callable[[Recipe, Reporter], object]

    def output(self, recipe: Recipe) -> Path:
        """The step's record: exists (and says complete) once the step is complete."""
        return self.spec.record(recipe)


def _train(task: str):
    def run(recipe: Recipe, reporter: Reporter):
        from ..engine.trainer import train
        from ..tasks import task_builder

        return train(dataclasses.replace(recipe, task=task), task_builder(task), reporter)
    return run


STEPS = (
    Step("train_cam", cam_task.SPEC, _train("cam")),
    Step("export_cams", export_cams.SPEC, export_cams.export_cams),
    Step("eval_cam", eval_spec("cam"), lambda r, rep: evaluate(r, "cam", reporter=rep)),
    Step("train_affinity", affinity_task.SPEC, _train("affinity")),
    Step("random_walk", random_walk.SPEC, random_walk.run_random_walk),
    Step("eval_rw", eval_spec("rw"), lambda r, rep: evaluate(r, "rw", reporter=rep)),
    Step("eval_rw_crf", eval_spec("rw", crf=True), lambda r, rep: evaluate(r, "rw", crf=True, reporter=rep)),
    Step("train_seg", seg_task.SPEC, _train("seg")),
    Step("predict_seg", predict_stage.SPEC, lambda r, rep: predict(r, reporter=rep)),
    Step("eval_seg", eval_spec("seg"), lambda r, rep: evaluate(r, "seg", reporter=rep)),
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


def selected_steps(recipe: Recipe, until: str | None = None) -> list[Step]:
    """The steps `pipeline.steps` names (validated against config.PIPELINE_STEPS), in order,
    up to and including `until`."""
    if until is not None and until not in STEP_NAMES:
        raise PsaError(f"--until {until!r} is not a step; steps: {', '.join(STEP_NAMES)}")
    last = STEP_NAMES.index(until) if until else len(STEPS) - 1
    return [step for step in STEPS[: last + 1] if step.name in recipe.pipeline.steps]


def step_by_name(name: str) -> Step:
    return next(step for step in STEPS if step.name == name)


def metrics_path(recipe: Recipe, step_name: str) -> Path:
    return step_by_name(step_name).spec.outputs(recipe)[0] / "metrics.json"


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    done: bool  # its record matches the recipe: skipped
    why: str  # for a step to run: what changed ("" when it never ran)


def plan(recipe: Recipe, until: str | None = None) -> list[PlannedStep]:
    """Which steps are done and which must run, from the records alone (no image is read).
    A step runs when its record is missing, incomplete or made from other inputs; since a
    record holds its upstream records, everything downstream of a change runs, nothing else.
    Trained weights are never replaced silently: a finished training whose inputs changed
    stops the plan with one line naming the key (before anything runs)."""
    prov = Provenance(recipe)
    planned = []
    for step in selected_steps(recipe, until):
        expected = prov.expected(step.name)
        path = step.spec.record(recipe)
        if matches(path, expected):
            planned.append(PlannedStep(step, True, ""))
            continue
        recorded = read_record(path)
        change = difference(recorded, expected) if recorded is not None else None
        if (step.spec.training and recorded is not None and recorded.get("complete")
                and difference(recorded, expected, ignore=RESUMABLE_KEYS) is not None):
            weights = step.spec.outputs(recipe)[0]
            before = [p.step.name for p in planned if not p.done]
            hint = f", or stop before it with --until {before[-1]}" if before else ""
            raise PsaError(f"{weights} was trained with other inputs: {describe(change)}; use a new run.dir "
                           f"(tools/sweep.py reuses every unchanged stage), delete {weights.parent} to retrain{hint}")
        planned.append(PlannedStep(step, False, describe(change) if change else ""))
    return planned
