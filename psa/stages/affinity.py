"""PSA stage 2, registered: AffinityNet on the confident labels, the random walk of the CAMs
over its affinities (pseudo masks), and the pseudo masks' evaluation with and without CRF."""

from __future__ import annotations

from ..layout import RunLayout
from ..tasks.affinity import build_affinity_task
from . import random_walk
from .evaluate import Predictions, evaluation_step
from .registry import OutputCount, Step, SummaryRow, register
from .training import training_spec, training_step

# What the trained AffinityNet depends on (psa/provenance.py): the confident labels of the CAM
# export, and the CAM classifier's weights when it starts from them.
TRAIN_SPEC = training_spec(
    "affinity", reads=("model", "affinity", "run.seed", "run.mixed_precision", "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: ("export_cams", "train_cam") if r.affinity.init == "cam" else ("export_cams",),
)

# the pseudo masks, with the walk's class scores for --crf
WALK = Predictions("rw", stage="affinity", step="random_walk", labels=lambda r: RunLayout.of(r).pseudo_masks(),
                   scores=lambda r: RunLayout.of(r).walk_scores, scores_format="walk")

register(training_step("train_affinity", "affinity", build_affinity_task, TRAIN_SPEC))
register(Step(random_walk.NAME, random_walk.SPEC, random_walk.run_random_walk, task="affinity",
              count=OutputCount("pseudo masks (random walk)", lambda r: RunLayout.of(r).walk_done)))
register(evaluation_step("eval_rw", WALK, task="affinity", rows=(SummaryRow("CAM + random walk", "RW"),)))
register(evaluation_step("eval_rw_crf", WALK, task="affinity", crf=True,
                         rows=(SummaryRow("CAM + random walk + dCRF", "RW+dCRF"),)))
