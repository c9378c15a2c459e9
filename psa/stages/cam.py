"""PSA stage 1, registered: the CAM classifier on image labels, the CAM export (multi-scale
+ flip CAMs, CAM predictions, confident labels) and the CAMs' evaluation."""

from __future__ import annotations

from ..config import SEMI_METHODS
from ..layout import RunLayout
from ..tasks.cam_task import build_cam_task
from . import export_cams
from .evaluate import Predictions, evaluation_step
from .registry import OutputCount, Step, SummaryRow, register
from .training import training_spec, training_step

# What the trained classifier depends on (psa/provenance.py): a new key read while training
# belongs here (or in `ignores` if it cannot change the weights).
TRAIN_SPEC = training_spec(
    "cam",
    reads=("model", "cam.train", "cam.crop_size", "cam.resize_long", "cam.color_jitter", "run.seed",
           "run.mixed_precision", "data.train_split", "cam.method", "cam.labeled", "cam.fixmatch", "cam.mixmatch"),
    splits=lambda r: [r.data.train_split],
    # only the chosen method's settings: a FixMatch change keeps a supervised or MixMatch run
    unused=lambda r: tuple(f"cam.{method}" for method in SEMI_METHODS if method != r.cam.method),
)

# the exported CAMs: scored as argmax over the classes and `cam.bg_threshold` (and a sweep of it)
CAMS = Predictions("cam", stage="cam", step="export_cams", labels=lambda r: RunLayout.of(r).cams, kind="cam",
                   scores=lambda r: RunLayout.of(r).cams, scores_format="cam", reads=("cam.bg_threshold",))

register(training_step("train_cam", "cam", build_cam_task, TRAIN_SPEC))
register(Step(export_cams.NAME, export_cams.SPEC, export_cams.export_cams, task="cam",
              count=OutputCount("CAMs and confident labels", lambda r: RunLayout.of(r).export_done)))
register(evaluation_step("eval_cam", CAMS, task="cam", rows=(
    SummaryRow("CAM (bg threshold from recipe)", "CAM"),
    SummaryRow("CAM (best bg threshold of the sweep)", "CAM best bg", key="best_sweep_miou", name="best"),
)))
