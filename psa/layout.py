"""The run folder: where everything of one run lives under `run.dir`.

A step's files live in its stage folder, named after its recipe section (`<run.dir>/cam`,
`/affinity`, `/seg`, a new method's own); inside it, the files every stage folder has
(weights, checkpoints, TensorBoard, provenance records, evaluations) are named by
`StageFolder`. What a method keeps besides those is named in its own `layout` module
(psa/methods/<name>/layout.py); the run's own files (its recipe, the summary, the
diagnosis, sweeps) are named here.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_FILE = "model.pt"  # the final weights of a training, what the later steps load


class StageFolder:
    """`<run.dir>/<stage>/` and the files every stage keeps there."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:  # a method's own files: stage / "boundary"
        return self.path / name

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    @property
    def run_info(self) -> Path:
        return self.path / "run_info.json"

    @property
    def train_record(self) -> Path:
        return self.path / "train.provenance.json"

    def record(self, step: str) -> Path:
        """The provenance record of a per-image step writing into this folder."""
        return self.path / f"{step}.provenance.json"

    def done(self, step: str) -> Path:
        """A per-image step's summary (counts, seconds), written when it finishes."""
        return self.path / f"{step}_done.json"

    def eval(self, name: str) -> Path:
        """An evaluation's metrics.json, chart, pictures and record."""
        return self.path / "eval" / name


class RunLayout:
    """Where the run's own files live, and its stage folders."""

    def __init__(self, run_dir: str | Path):
        self.root = Path(run_dir)

    @classmethod
    def of(cls, recipe) -> "RunLayout":
        return cls(recipe.run.dir)

    def stage(self, name: str) -> StageFolder:
        return StageFolder(self.root / name)

    @property
    def recipe_file(self) -> Path:
        return self.root / "recipe.yaml"

    def class_map(self, kind: str) -> Path:
        """A layout's class index <-> dataset id table (COCO's category ids), for reading the masks."""
        return self.root / "data" / f"{kind}_classes.json"

    @property
    def summary(self) -> Path:
        return self.root / "pipeline" / "summary.json"

    @property
    def diagnose(self) -> StageFolder:
        return self.stage("diagnose")

    @property
    def sweeps(self) -> Path:
        return self.root / "sweeps"

    @property
    def tune(self) -> Path:
        """Post-hoc tuning tables (`psa tune`): <run.dir>/tune/<tuner>.json."""
        return self.root / "tune"


def prediction_record(folder: Path) -> Path:
    """The record of a folder of predictions, inside it: `--out OUT` then writes nothing beside OUT."""
    return folder / "predict.provenance.json"


def prediction_done(folder: Path) -> Path:
    return folder / "predict_done.json"


def prediction_extras(folder: Path) -> dict[str, Path]:
    """The optional per-image files of a folder of predictions, one subfolder each (the top
    folder keeps only the <id>.png label maps and the records)."""
    return {"classes": folder / "classes", "overlay": folder / "overlay", "probabilities": folder / "probabilities"}
