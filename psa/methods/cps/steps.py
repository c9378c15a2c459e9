"""CPS's steps: the pair's training, its predictions and their evaluation."""

from __future__ import annotations

from ...framework.evaluation import evaluation_step
from ...framework.prediction import prediction_step
from ...framework.registry import REGISTRY
from ...framework.segmentation import label_upstream, masks_check, unused_label_keys
from ...framework.step import Network, Predictions, SummaryRow
from ...framework.trained import load_trained
from ...framework.training import training_step
from ...layout import RunLayout
from .model import CpsPredictor
from .training import build_cps_pair, build_cps_task

SECTION = "cps"

# What the trained pair depends on (psa/provenance.py): the pseudo masks when the labelled
# images learn from them instead of their ground truth.
TRAIN = REGISTRY.register(training_step(
    "train_cps", SECTION, build_cps_task,
    reads=("model", "cps.train", "cps.labeled_batch_size", "cps.labeled", "cps.labels", "cps.masks",
           "cps.min_confidence", "cps.weight", "cps.warmup_steps", "cps.cutmix", "cps.cutmix_area", "cps.head",
           "cps.crop_size", "cps.resize_range", "cps.color_jitter", "run.seed", "run.mixed_precision",
           "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: label_upstream(r, SECTION),
    unused=lambda r: unused_label_keys(r, SECTION),
    default=False,
))
REGISTRY.add(masks_check(SECTION))


def load_cps_predictor(recipe, classes=None):
    """The mean of both networks' softmax (cps.predict_with: mean), or the first network's (first)."""
    pair = load_trained(recipe, TRAIN.training,
                        lambda meta: build_cps_pair(recipe, len(meta["classes"]), load_weights=False), classes=classes)
    predictor = CpsPredictor(pair, recipe.cps.predict_with).eval()
    predictor.class_names = pair.class_names
    return predictor


NETWORK = Network(section=SECTION, step="predict_cps", load=load_cps_predictor, trained_by=TRAIN,
                  # one folder per way of predicting (mean | first), so the two never mix
                  folder=lambda r: RunLayout.of(r).stage(SECTION) / f"pred_{r.cps.predict_with}",
                  reads=("cps.scales", "cps.flip", "cps.split", "cps.head", "cps.predict_with", "model.backbone",
                         "model.freeze_bn", "model.freeze_stem", "run.mixed_precision", "data.val_split"))
PREDICT = REGISTRY.register(prediction_step("predict_cps", SECTION, NETWORK, default=False))
PREDICTIONS = Predictions("cps", stage=SECTION, step=PREDICT, labels=NETWORK.folder, split="val",
                          reads=("cps.predict_with",), folder_name=lambda r: f"cps_{r.cps.predict_with}")
REGISTRY.register(evaluation_step("eval_cps", PREDICTIONS, task=SECTION, default=False,
                                  rows=(SummaryRow("CPS pair (val)", "CPS (val)", kind="seg"),)))
