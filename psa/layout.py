"""The run folder: every folder and file a stage reads or writes under `run.dir`.

This is the only place their names appear. A stage's folder is named after its recipe
section (`<run.dir>/cam`, `/affinity`, `/seg`, `/cps`, a new method's own); inside it the
files every trained stage has (weights, checkpoints, TensorBoard, provenance records,
evaluations) are named by `StageFolder`, and the per-image outputs by `RunLayout`.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_FILE = "model.pt"  # the final weights of a training, what the later stages load


class StageFolder:
    """`<run.dir>/<stage>/` and the files every stage keeps there."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:  # a method's own files: layout.stage("irn") / "boundaries"
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
    """Where everything of one run lives."""

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

    # --- the CAM export (under cam/)
    @property
    def cams(self) -> Path:
        return self.stage("cam") / "cams"

    @property
    def confident_labels(self) -> Path:
        return self.stage("cam") / "labels"

    @property
    def cam_predictions(self) -> Path:
        return self.stage("cam") / "pred"

    @property
    def export_record(self) -> Path:
        return self.stage("cam") / "export.provenance.json"

    @property
    def export_done(self) -> Path:
        return self.stage("cam") / "export_done.json"

    # --- the pseudo masks of a walk: AffinityNet's (under affinity/) or IRN's (under irn/)
    def pseudo_masks(self, crf: bool = False, walk: str = "affinity") -> Path:
        return self.stage(walk) / ("pseudo_crf" if crf else "pseudo")

    # --- IRN (under irn/)
    @property
    def relation_labels(self) -> Path:
        return self.stage("irn") / "labels"

    @property
    def boundaries(self) -> Path:
        return self.stage("irn") / "boundary"

    @property
    def irn_scores(self) -> Path:
        return self.stage("irn") / "scores"

    @property
    def instances(self) -> Path:
        """IRN's instance masks: <id>.png (pixel = instance k, 0 background) and <id>.json."""
        return self.stage("irn") / "instances"

    # --- the random walk (under affinity/)

    @property
    def walk_scores(self) -> Path:
        return self.stage("affinity") / "rw_scores"

    @property
    def walk_record(self) -> Path:
        return self.stage("affinity") / "random_walk.provenance.json"

    @property
    def walk_done(self) -> Path:
        return self.stage("affinity") / "random_walk_done.json"

    # --- a segmentation network's label maps (tools/predict.py)
    @property
    def seg_predictions(self) -> Path:
        return self.stage("seg") / "pred"

    def cps_predictions(self, predict_with: str) -> Path:
        """One folder per way of predicting (mean | first), so the two never mix."""
        return self.stage("cps") / f"pred_{predict_with}"

    # --- whole-run outputs
    @property
    def summary(self) -> Path:
        return self.root / "pipeline" / "summary.json"

    @property
    def diagnose(self) -> StageFolder:
        return self.stage("diagnose")

    @property
    def sweeps(self) -> Path:
        return self.root / "sweeps"


def prediction_record(folder: Path) -> Path:
    """The record of a folder of predictions, inside it: `--out OUT` then writes nothing beside OUT."""
    return folder / "predict.provenance.json"


def prediction_done(folder: Path) -> Path:
    return folder / "predict_done.json"


def prediction_extras(folder: Path) -> dict[str, Path]:
    """The optional per-image files of a folder of predictions, one subfolder each (the top
    folder keeps only the <id>.png label maps and the records)."""
    return {"classes": folder / "classes", "overlay": folder / "overlay", "probabilities": folder / "probabilities"}
