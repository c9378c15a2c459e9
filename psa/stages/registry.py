"""The stage registry: every step of every method, declared once, in pipeline order.

A step is registered by the module that implements it, with what its output depends on and
where it lives (its `StageSpec`), how it runs, which recipe `task` it belongs to and what it
reports. Everything that lists steps — the pipeline's plan, `pipeline.steps`, the `task`
names `tools/train.py` accepts, the evaluation sources of `tools/eval.py`, the summary table,
the sweep's columns — is read from here, so a new method is one module that registers its
steps (see docs/extending.md), and no central list is edited.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..config import Recipe
from ..engine.report import Reporter
from ..errors import PsaError
from ..provenance import Provenance, StageSpec


@dataclass(frozen=True)
class SummaryRow:
    """One row of the pipeline's summary table, read from the step's metrics.json."""

    label: str  # in the pipeline's table: "CAM + random walk"
    title: str  # its short column title in a sweep's table: "RW"
    key: str = "miou"  # the metric in metrics.json
    name: str = ""  # its column's suffix for another metric than miou (default: the key)

    def column(self, step: str) -> str:
        """Its column in sweep.csv / sweep.json: the step's name, or step_<name> for another metric."""
        return step if self.key == "miou" else f"{step}_{self.name or self.key}"


@dataclass(frozen=True)
class OutputCount:
    """A per-image step's row in the summary when nothing scores its outputs (no ground-truth
    masks): how many images it covered, read from its done file."""

    label: str  # in the pipeline's table: "pseudo masks (random walk)"
    done: Callable[[Recipe], Path]  # its done file (psa/stages/per_image.py): {"images": N, ...}


@dataclass(frozen=True)
class Step:
    name: str
    spec: StageSpec  # what its output depends on, where its record and outputs live
    run: Callable[[Recipe, Reporter], object]
    # the recipe `task` this step belongs to (`tools/train.py` trains a task's training step,
    # `tools/eval.py` scores its task's predictions by default)
    task: Optional[str] = None
    rows: tuple[SummaryRow, ...] = ()  # what it adds to the summary table
    metrics: Optional[Callable[[Recipe], Path]] = None  # the metrics.json its rows are read from
    default: bool = True  # planned when the recipe's pipeline.steps is null
    source: object = None  # an evaluation step: the `Predictions` it scores (psa/stages/evaluate.py)
    # the ground truth it scores against, "masks" or "instances": a split without it leaves the
    # step out of the plan (psa/pipeline.py); None: it needs none
    ground_truth: Optional[str] = None
    training: object = None  # a training step: its `Training` (psa/stages/training.py)
    predictor: object = None  # a prediction step: the network it predicts with (psa/stages/predict.py)
    count: Optional[OutputCount] = None  # a per-image step: its summary row when its outputs are not scored

    def output(self, recipe: Recipe) -> Path:
        """The step's record: exists (and says complete) once the step is complete."""
        return self.spec.record(recipe)


class Registry:
    """An ordered set of steps. `register` appends, or inserts after a named step."""

    def __init__(self):
        self._steps: list[Step] = []

    def register(self, step: Step, after: Optional[str] = None) -> Step:
        if step.name in self.names():
            raise ValueError(f"step {step.name!r} is registered twice")
        position = len(self._steps) if after is None else self.names().index(after) + 1
        self._steps.insert(position, step)
        return step

    def unregister(self, name: str) -> None:
        self._steps = [step for step in self._steps if step.name != name]

    def __iter__(self) -> Iterator[Step]:
        return iter(tuple(self._steps))

    def names(self) -> list[str]:
        return [step.name for step in self._steps]

    def get(self, name: str) -> Step:
        for step in self._steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def spec_of(self, name: str) -> StageSpec:
        return self.get(name).spec

    def provenance(self, recipe: Recipe) -> Provenance:
        """The records `recipe` asks for, with upstream steps looked up here."""
        return Provenance(recipe, self.spec_of)

    # ------------------------------------------------------------------ derived views

    def tasks(self) -> list[str]:
        """The `task` names: one per training step."""
        return [step.task for step in self._steps if step.spec.training and step.task]

    def training_step(self, task: str) -> Step:
        for step in self._steps:
            if step.spec.training and step.task == task:
                return step
        raise PsaError(_choice_message("task", task, self.tasks()))

    def predictor(self, task: str) -> object:
        """The network `tools/predict.py` segments with: the recipe's task's, else the first
        one the default pipeline trains (the segmentation network)."""
        found = [step for step in self._steps if step.predictor is not None]
        for step in found:
            if step.task == task:
                return step.predictor
        return next(step.predictor for step in found if step.default)

    def default_steps(self) -> list[str]:
        return [step.name for step in self._steps if step.default]

    def sources(self) -> dict[str, object]:
        """{name: Predictions} of every evaluation step (what `tools/eval.py --source` takes)."""
        found: dict[str, object] = {}
        for step in self._steps:
            if step.source is not None:
                found.setdefault(step.source.name, step.source)
        return found

    def summary_rows(self, steps: Optional[list[str]] = None) -> list[tuple[Step, SummaryRow]]:
        return [(step, row) for step in self._steps for row in step.rows
                if steps is None or step.name in steps]

    def selected(self, recipe: Recipe) -> list[Step]:
        """The steps the recipe's pipeline.steps names (null: the default ones), in order."""
        names = recipe.pipeline.steps if recipe.pipeline.steps is not None else self.default_steps()
        unknown = [name for name in names if name not in self.names()]
        if unknown:
            raise PsaError(_choice_message("pipeline.steps", unknown[0], self.names(), what="has unknown step"))
        return [step for step in self._steps if step.name in names]

    def check_recipe(self, recipe: Recipe) -> None:
        """The recipe keys whose choices are the registry's: `task` and `pipeline.steps`."""
        self.training_step(recipe.task)
        self.selected(recipe)


def _choice_message(key: str, value: str, choices: list[str], what: str = "must be one of") -> str:
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if what == "must be one of":
        return f"recipe key '{key}' must be one of {', '.join(choices)}, got {value!r}{hint}"
    return f"recipe key '{key}' {what} {value!r}{hint}; steps: {', '.join(choices)}"


REGISTRY = Registry()
register = REGISTRY.register
