"""A step: one unit of the pipeline, as the registry holds it, and the typed parts a step of
each kind carries (a training, the predictions an evaluation scores, the network a
prediction step segments with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

from ..config import Recipe
from ..engine.report import Reporter
from ..layout import RunLayout, StageFolder, prediction_record
from ..provenance import StepSpec

if TYPE_CHECKING:  # the engine imports torch; a step's declaration does not need it
    import torch

    from ..engine.trainer import Trainable


@dataclass(frozen=True)
class SummaryRow:
    """One row of the pipeline's summary table, read from the step's metrics.json."""

    label: str  # in the pipeline's table: "CAM + random walk"
    title: str  # its short column title in a sweep's table: "RW"
    key: str = "miou"  # the metric in metrics.json
    name: str = ""  # its column's suffix for another metric than miou (default: the key)
    # what the row measures, for the run-comparison JSON: cam | pseudo | bound | seg | full | other
    kind: str = "pseudo"

    def column(self, step: str) -> str:
        """Its column in sweep.csv / sweep.json: the step's name, or step_<name> for another metric."""
        return step if self.key == "miou" else f"{step}_{self.name or self.key}"


@dataclass(frozen=True)
class OutputCount:
    """A per-image step's row in the summary when nothing scores its outputs (no ground-truth
    masks): how many images it covered, read from its done file."""

    label: str  # in the pipeline's table: "pseudo masks (random walk)"
    done: Callable[[Recipe], Path]  # its done file (psa/framework/per_image.py): {"images": N, ...}


@dataclass(frozen=True)
class Training:
    """A training step's task: which section's `train` settings and stage folder, and the
    builder of what the engine trains."""

    section: str  # its recipe section; also its stage folder's name, <run.dir>/<section>
    build: Callable[[Recipe], "Trainable"]

    def folder(self, recipe: Recipe) -> StageFolder:
        return RunLayout.of(recipe).stage(self.section)

    def weights(self, recipe: Recipe) -> Path:
        return self.folder(recipe).weights


@dataclass(frozen=True)
class Predictions:
    """What an evaluation scores: the per-image predictions one step writes."""

    name: str  # what `tools/eval.py --source` calls it
    stage: str  # the stage folder whose eval/ receives the scores
    step: "Step"  # the step that writes them: the evaluation's upstream
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


@dataclass(frozen=True)
class Network:
    """A trained network `tools/predict.py` segments with."""

    section: str  # the recipe section of its inference keys (scales, flip, split)
    step: str  # the prediction step writing its default folder (and its record)
    folder: Callable[[Recipe], Path]  # the default output folder
    # (recipe, classes of the split or None for an image folder) -> the model in eval mode
    load: Callable[[Recipe, Optional[Sequence[str]]], "torch.nn.Module"]
    reads: tuple[str, ...]  # recipe keys its predictions depend on (beyond crf)
    trained_by: "Step"  # the training step whose weights it loads

    def spec(self) -> StepSpec:
        """What the predictions in its default folder depend on (psa/provenance.py)."""
        return StepSpec(
            reads=self.reads, ignores=("run.seed",),
            record=lambda r: prediction_record(self.folder(r)),
            outputs=lambda r: [self.folder(r)],  # its record and done file are inside
            splits=lambda r: [getattr(r, self.section).split or r.data.val_split],
            upstream=lambda r: (self.trained_by,),
        )


@dataclass(frozen=True)
class Step:
    """A registered step: `run(recipe, reporter)` does the work; `spec` says what its output
    depends on and where its record and outputs live. The optional parts say what kind of
    step it is, for the views the registry derives (tasks, evaluation sources, predictors)."""

    name: str
    spec: StepSpec
    run: Callable[[Recipe, Reporter], object]
    # the recipe `task` it belongs to: `tools/train.py` trains a task's training step,
    # `tools/eval.py` scores its task's predictions by default
    task: Optional[str] = None
    rows: tuple[SummaryRow, ...] = ()  # what it adds to the summary table
    metrics: Optional[Callable[[Recipe], Path]] = None  # the metrics.json its rows are read from
    default: bool = True  # planned when the recipe's pipeline.steps is null
    count: Optional[OutputCount] = None  # a per-image step: its summary row when its outputs are not scored
    training: Optional[Training] = None  # a training step
    evaluates: Optional[Predictions] = None  # an evaluation step: what it scores
    # the ground truth an evaluation scores against, "masks" or "instances": a split without it
    # leaves the step out of the plan (psa/pipeline.py); None: it needs none
    ground_truth: Optional[str] = None
    predicts: Optional[Network] = None  # a prediction step: the network it segments with
    method: str = ""  # the method package that registered it (set by the registry)

    def record(self, recipe: Recipe) -> Path:
        """The step's provenance record: exists (and says complete) once the step is complete."""
        return self.spec.record(recipe)

    def __hash__(self) -> int:  # by name: a registry holds one step of each name
        return hash(self.name)
