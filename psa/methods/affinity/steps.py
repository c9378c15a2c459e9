"""AffinityNet's training, the random walk, its pseudo masks as source `rw` (with their
evaluations), its diagnosis and its tuner."""

from __future__ import annotations

from ...framework.cams import cam_export, classifier
from ...framework.diagnosis import Probe
from ...framework.items import default_splits
from ...framework.masks import register_mask_source
from ...framework.refining_crf import REFINING_CRF_READS, refining_crf_unused
from ...framework.registry import REGISTRY
from ...framework.step import OutputCount, Step
from ...framework.trained import load_trained
from ...framework.training import training_step
from ...provenance import StepSpec
from .diagnosis import open_probe
from .layout import SECTION, WALK, stage, walk_done, walk_folders
from .training import build_affinity_model, build_affinity_task
from .tune import walk_tuner
from .walk import run_random_walk

# What the trained AffinityNet depends on (psa/provenance.py): the confident labels of the CAM
# export, and the CAM classifier's weights when it starts from them.
TRAIN = REGISTRY.register(training_step(
    "train_affinity", SECTION, build_affinity_task,
    reads=("model", "affinity", "run.seed", "run.mixed_precision", "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: ((cam_export().step, classifier().step) if r.affinity.init == "cam"
                        else (cam_export().step,)),
))


def load_affinity_net(recipe, classes=None):
    """The trained AffinityNet, refused in one line when made for other classes or another radius."""
    return load_trained(recipe, TRAIN.training, lambda meta: build_affinity_model(recipe, load_weights_=False),
                        classes=classes, fits={"affinity.radius": ("radius", recipe.affinity.radius)})


# What the pseudo masks depend on (psa/provenance.py); a key the walk reads belongs here.
WALK_STEP = REGISTRY.register(Step(
    WALK,
    StepSpec(reads=("random_walk", *REFINING_CRF_READS, "model.backbone", "model.freeze_bn", "model.freeze_stem",
                    "affinity.init", "affinity.radius", "run.mixed_precision", "data.train_split",
                    "data.eval_split"),
             ignores=("run.seed",), record=lambda r: stage(r).record(WALK),
             outputs=lambda r: [*walk_folders(r).values(), walk_done(r)],
             splits=lambda r: default_splits(r, r.random_walk.split),
             upstream=lambda r: (TRAIN, cam_export().step), unused=refining_crf_unused),
    lambda recipe, reporter: run_random_walk(recipe, WALK_STEP, load_affinity_net, reporter), task=SECTION,
    count=OutputCount("pseudo masks (random walk)", walk_done)))

RW = register_mask_source("rw", "CAM + random walk", "RW", WALK_STEP, stage=SECTION,
                          masks=lambda r: walk_folders(r)["pseudo"], refined=lambda r: walk_folders(r)["pseudo_crf"],
                          scores=lambda r: walk_folders(r)["scores"])

REGISTRY.add(Probe("affinity", open_probe(load_affinity_net)))
REGISTRY.add(walk_tuner(load_affinity_net))
