"""The segmentation network's steps: training on the pseudo masks, prediction, evaluation."""

from __future__ import annotations

from ...framework.evaluation import evaluation_step
from ...framework.prediction import prediction_step
from ...framework.registry import REGISTRY
from ...framework.segmentation import build_seg_model, label_upstream, masks_check, unused_label_keys
from ...framework.step import Network, Predictions, SummaryRow
from ...framework.trained import load_trained
from ...framework.training import training_step
from ...layout import RunLayout
from .training import build_seg_task
from .tune import CONFIDENCE

SECTION = "seg"

# What the trained network depends on (psa/provenance.py): its masks' source, unless it learns
# from the ground truth.
TRAIN = REGISTRY.register(training_step(
    "train_seg", SECTION, build_seg_task,
    reads=("model", "seg.train", "seg.labels", "seg.masks", "seg.min_confidence", "seg.crop_size",
           "seg.resize_range", "seg.color_jitter", "seg.head", "run.seed", "run.mixed_precision", "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: label_upstream(r, SECTION),
    unused=lambda r: unused_label_keys(r, SECTION),
))
REGISTRY.add(masks_check(SECTION))


def load_seg_net(recipe, classes=None):
    """The trained network, refused in one line when made for other classes or another head."""
    return load_trained(recipe, TRAIN.training,
                        lambda meta: build_seg_model(recipe, len(meta["classes"]), recipe.seg.head, load_weights=False),
                        classes=classes, fits={"seg.head": ("head", recipe.seg.head)})


# its predictions in <run>/seg/pred depend on these keys (`--crf`, `--out`, `--images` add to them)
NETWORK = Network(section=SECTION, step="predict_seg", folder=lambda r: RunLayout.of(r).stage(SECTION) / "pred",
                  load=load_seg_net, trained_by=TRAIN,
                  reads=("seg.scales", "seg.flip", "seg.split", "seg.head", "model.backbone", "model.freeze_bn",
                         "model.freeze_stem", "run.mixed_precision", "data.val_split"))
PREDICT = REGISTRY.register(prediction_step("predict_seg", SECTION, NETWORK))
PREDICTIONS = Predictions("seg", stage=SECTION, step=PREDICT, labels=NETWORK.folder, split="val")
REGISTRY.register(evaluation_step("eval_seg", PREDICTIONS, task=SECTION, rows=(
    SummaryRow("segmentation network (val, never saw a mask)", "seg (val)", kind="seg"),)))
REGISTRY.add(CONFIDENCE)
