"""A training step: the engine's run of a section's `Trainable` between the step's provenance
check (before anything is written) and its records (at the start, and next to the final
weights)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Optional

from ..config import Recipe, dump_recipe
from ..data import build_source
from ..engine.report import Reporter
from ..engine.trainer import Trainable, TrainJob, TrainResult, train
from ..io import atomic_write_json, atomic_write_text
from ..layout import RunLayout
from ..provenance import Provenance, StepSpec, check_training, read_record, write_record
from .registry import REGISTRY
from .step import Step, Training

TrainableBuilder = Callable[[Recipe], Trainable]
Upstream = Callable[[Recipe], tuple[Step, ...]]


def training_step(name: str, section: str, build: TrainableBuilder, reads: tuple[str, ...],
                  splits: Callable[[Recipe], list[str]], upstream: Upstream = lambda recipe: (),
                  unused: Callable[[Recipe], tuple[str, ...]] = lambda recipe: (),
                  more_reads: Callable[[Recipe], tuple[str, ...]] = lambda recipe: (),
                  default: bool = True) -> Step:
    """The step that trains `section` (its `train` settings, its stage folder
    <run.dir>/<section>, and the recipe `task` of the same name). `reads`: what the weights
    depend on (a new key read while training belongs there); recorded beside them."""
    training = Training(section, build)
    spec = StepSpec(reads=reads, record=lambda r: training.folder(r).train_record,
                    outputs=lambda r: [training.weights(r)], weights=training.weights, splits=splits,
                    upstream=upstream, unused=unused, more_reads=more_reads)
    step = Step(name, spec, lambda recipe, reporter: run_training(recipe, step, reporter), task=section,
                default=default, training=training)
    return step


def train_task(recipe: Recipe, task: str, reporter: Optional[Reporter] = None,
               build: Optional[TrainableBuilder] = None) -> TrainResult:
    """Train the recipe's `task` (tools/train.py); `build` replaces the task's builder (tests)."""
    return run_training(recipe, REGISTRY.training_step(task), reporter, build)


def run_training(recipe: Recipe, step: Step, reporter: Optional[Reporter] = None,
                 build: Optional[TrainableBuilder] = None) -> TrainResult:
    training: Training = step.training
    settings = getattr(recipe, training.section).train
    layout = RunLayout.of(recipe)
    prov = Provenance(recipe)
    record_path = step.record(recipe)
    expected: dict = {}

    def check(checkpoint: Optional[Path]) -> None:
        # weights or checkpoints of other inputs than the recipe asks for: refused, nothing written
        expected.update(check_training(prov, step, checkpoint, f"{training.section}.train.resume",
                                       fresh=settings.resume == "never"))

    def on_start() -> None:
        atomic_write_text(layout.recipe_file, dump_recipe(recipe))
        class_map = getattr(build_source(recipe.data, recipe.data.train_split), "class_map", None)
        if class_map is not None:  # COCO: which category id each class index of the masks is
            atomic_write_json(layout.class_map(recipe.data.kind), class_map())
        write_record(record_path, expected, complete=False)

    def on_finish(steps: int, final_loss: float) -> None:
        write_record(record_path, expected, complete=True, steps=steps,
                     final_loss=None if math.isnan(final_loss) else final_loss)

    finished = _finished(recipe, step, prov, settings.resume)
    if finished is not None:
        return finished
    job = TrainJob(section=training.section, settings=settings, folder=training.folder(recipe),
                   build=lambda: (build or training.build)(recipe), check=check, on_start=on_start,
                   on_finish=on_finish)
    return train(recipe, job, reporter)


def _finished(recipe: Recipe, step: Step, prov: Provenance, resume: str) -> Optional[TrainResult]:
    """The result of a training already finished under exactly this recipe (its record matches
    and says complete, its weights exist): nothing to train, nothing rewritten. None otherwise,
    and always with resume=never (a fresh start on purpose)."""
    recorded = read_record(step.record(recipe))
    weights = step.training.weights(recipe)
    if (resume == "never" or recorded is None or not recorded.get("complete") or not weights.is_file()
            or recorded["fingerprint"] != prov.record(step)["fingerprint"]):
        return None
    steps = int(recorded.get("steps") or 0)
    loss = recorded.get("final_loss")
    return TrainResult(weights.parent, weights, steps, float("nan") if loss is None else float(loss), 0.0,
                       int(os.environ.get("WORLD_SIZE", "1")), steps, already_trained=True)
