"""PSA stage 3, registered: the segmentation network trained on the pseudo masks, its
predictions on the held-out images, and their evaluation."""

from __future__ import annotations

from ..layout import RunLayout
from ..tasks.seg import build_seg_model, build_seg_task
from .common import load_trained
from .evaluate import Predictions, evaluation_step
from .predict import Network, prediction_step
from .registry import SummaryRow, register
from .training import training_spec, training_step

# the step writing each walk's pseudo masks (seg.walk, cps.walk)
WALK_STEP = {"affinity": "random_walk", "irn": "irn_walk"}


def unused_label_keys(recipe, section: str) -> tuple[str, ...]:
    """The label keys a trained record leaves out at their defaults, so that weights trained
    before the keys existed still match: PSA's walk (IRN's enters the record, and its step the
    upstream) and a min_confidence of 0."""
    cfg = getattr(recipe, section)
    unused = ("walk",) if cfg.labels == "gt" or cfg.walk == "affinity" else ()
    unused += ("min_confidence",) if cfg.min_confidence == 0 else ()
    return tuple(f"{section}.{key}" for key in unused)


# What the trained segmentation network depends on (psa/provenance.py): the random walk's
# pseudo masks, unless it learns from the ground truth.
TRAIN_SPEC = training_spec(
    "seg",
    reads=("model", "seg.train", "seg.labels", "seg.walk", "seg.min_confidence", "seg.crop_size", "seg.resize_range",
           "seg.color_jitter", "seg.head", "run.seed", "run.mixed_precision", "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: () if r.seg.labels == "gt" else (WALK_STEP[r.seg.walk],),
    unused=lambda r: unused_label_keys(r, "seg"),
)


def load_seg_net(recipe, classes=None):
    """The trained network, refused in one line when made for other classes or another head."""
    return load_trained(recipe, "seg", lambda meta: build_seg_model(recipe, len(meta["classes"]), load_weights=False),
                        classes=classes, fits={"seg.head": ("head", recipe.seg.head)})


# its predictions in <run>/seg/pred depend on these keys (`--crf`, `--out`, `--images` add to them)
NETWORK = Network(section="seg", step="predict_seg", folder=lambda r: RunLayout.of(r).seg_predictions,
                  load=load_seg_net, upstream="train_seg",
                  reads=("seg.scales", "seg.flip", "seg.split", "seg.head", "model.backbone", "model.freeze_bn",
                         "model.freeze_stem", "run.mixed_precision", "data.val_split"))
PREDICTIONS = Predictions("seg", stage="seg", step="predict_seg", labels=NETWORK.folder, split="val")

register(training_step("train_seg", "seg", build_seg_task, TRAIN_SPEC))
register(prediction_step("predict_seg", "seg", NETWORK))
register(evaluation_step("eval_seg", PREDICTIONS, task="seg",
                         rows=(SummaryRow("segmentation network (val, never saw a mask)", "seg (val)"),)))
