"""Cross Pseudo Supervision, registered: the pair of segmentation networks trained on the
labelled and unlabelled images (psa/tasks/cps.py), its predictions and their evaluation.
Not in the default pipeline: name the steps in `pipeline.steps`, or train it with
`tools/train.py` and `task: cps`."""

from __future__ import annotations

from ..layout import RunLayout
from ..models import CpsPredictor
from ..tasks.cps import build_cps_pair, build_cps_task
from .common import load_trained
from .evaluate import Predictions, evaluation_step
from .predict import Network, prediction_step
from .registry import SummaryRow, register
from .seg import WALK_STEP, unused_label_keys
from .training import training_spec, training_step

# What the trained pair depends on (psa/provenance.py): the pseudo masks when the labelled
# images learn from them instead of their ground truth.
TRAIN_SPEC = training_spec(
    "cps",
    reads=("model", "cps.train", "cps.labeled_batch_size", "cps.labeled", "cps.labels", "cps.walk",
           "cps.min_confidence", "cps.weight",
           "cps.warmup_steps", "cps.cutmix", "cps.cutmix_area", "cps.head", "cps.crop_size", "cps.resize_range",
           "cps.color_jitter", "run.seed", "run.mixed_precision", "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: () if r.cps.labels == "gt" else (WALK_STEP[r.cps.walk],),
    unused=lambda r: unused_label_keys(r, "cps"),
)


def load_cps_predictor(recipe, classes=None):
    """The mean of both networks' softmax (cps.predict_with: mean), or the first network's (first)."""
    pair = load_trained(recipe, "cps", lambda meta: build_cps_pair(recipe, len(meta["classes"]), load_weights=False),
                        classes=classes)
    predictor = CpsPredictor(pair, recipe.cps.predict_with).eval()
    predictor.class_names = pair.class_names
    return predictor


NETWORK = Network(section="cps", step="predict_cps", load=load_cps_predictor, upstream="train_cps",
                  folder=lambda r: RunLayout.of(r).cps_predictions(r.cps.predict_with),
                  reads=("cps.scales", "cps.flip", "cps.split", "cps.head", "cps.predict_with", "model.backbone",
                         "model.freeze_bn", "model.freeze_stem", "run.mixed_precision", "data.val_split"))
PREDICTIONS = Predictions("cps", stage="cps", step="predict_cps", labels=NETWORK.folder, split="val",
                          reads=("cps.predict_with",), folder_name=lambda r: f"cps_{r.cps.predict_with}")

register(training_step("train_cps", "cps", build_cps_task, TRAIN_SPEC, default=False))
register(prediction_step("predict_cps", "cps", NETWORK, default=False))
register(evaluation_step("eval_cps", PREDICTIONS, task="cps", default=False,
                         rows=(SummaryRow("CPS pair (val)", "CPS (val)"),)))
