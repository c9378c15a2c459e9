"""IRN's steps: relation labels → IRNet → the boundary walk (pseudo masks as source `irn`,
with their evaluations) → instance masks and their mAP^r. Not in the default pipeline:
recipes name the steps in `pipeline.steps` (recipes/irn.yaml, recipes/demo.yaml);
`seg.masks: irn` trains the segmentation network on its masks."""

from __future__ import annotations

from ...framework.cams import cam_export, classifier
from ...framework.diagnosis import Probe
from ...framework.items import default_splits
from ...framework.masks import register_mask_source
from ...framework.refining_crf import REFINING_CRF_READS, refining_crf_unused
from ...framework.registry import REGISTRY
from ...framework.step import Step, SummaryRow
from ...framework.trained import load_trained
from ...framework.training import training_step
from ...provenance import StepSpec
from .diagnosis import open_probe
from .instances import eval_folder, evaluate_instances, make_instances
from .labels import make_relation_labels
from .layout import SECTION, instances_folder, relation_labels_folder, stage, walk_folders
from .training import build_irn_model, build_irn_task
from .tune import BACKGROUND
from .walk import run_boundary_walk

LABELS = REGISTRY.register(Step(
    "irn_labels",
    StepSpec(reads=("irn.fg_threshold", "irn.bg_threshold", "irn.crf", "data.train_split"),
             ignores=("run.seed", "run.mixed_precision"),  # no network: the label CRF only
             record=lambda r: stage(r).record("irn_labels"),
             outputs=lambda r: [relation_labels_folder(r), stage(r).done("irn_labels")],
             splits=lambda r: [r.data.train_split], upstream=lambda r: (cam_export().step,)),
    lambda recipe, reporter: make_relation_labels(recipe, LABELS, reporter), task=SECTION, default=False))

TRAIN = REGISTRY.register(training_step(
    "train_irn", SECTION, build_irn_task,
    reads=("model", "irn.train", "irn.init", "irn.output_stride", "irn.crop_size", "irn.resize_range",
           "irn.train_radius", "irn.pairs", "irn.displacement", "run.seed", "run.mixed_precision",
           "data.train_split"),
    splits=lambda r: [r.data.train_split],
    upstream=lambda r: (LABELS, classifier().step) if r.irn.init == "cam" else (LABELS,),
    default=False,
))


def load_irn(recipe, classes=None):
    """The trained IRNet, refused in one line when made for other classes or another stride."""
    return load_trained(recipe, TRAIN.training, lambda meta: build_irn_model(recipe, load_weights_=False),
                        classes=classes, fits={"irn.output_stride": ("output_stride", recipe.irn.output_stride)})


WALK = REGISTRY.register(Step(
    "irn_walk",
    StepSpec(reads=("irn.radius", "irn.beta", "irn.logt", "irn.sem_bg_threshold", "irn.split", "irn.dense_crf",
                    *REFINING_CRF_READS, "irn.output_stride", "irn.init", "model.backbone", "model.freeze_bn",
                    "model.freeze_stem", "run.mixed_precision", "data.train_split", "data.eval_split"),
             ignores=("run.seed",), record=lambda r: stage(r).record("irn_walk"),
             outputs=lambda r: [*walk_folders(r).values(), stage(r).done("irn_walk")],
             splits=lambda r: default_splits(r, r.irn.split),
             upstream=lambda r: (TRAIN, cam_export().step), unused=refining_crf_unused),
    lambda recipe, reporter: run_boundary_walk(recipe, WALK, load_irn, reporter), task=SECTION, default=False))

IRN = register_mask_source("irn", "CAM + IRN boundary walk", "IRN", WALK, stage=SECTION,
                           masks=lambda r: walk_folders(r)["pseudo"], refined=lambda r: walk_folders(r)["pseudo_crf"],
                           scores=lambda r: walk_folders(r)["scores"], default=False)

INSTANCES = REGISTRY.register(Step(
    "irn_instances",
    StepSpec(reads=("irn.centroid_steps", "irn.centroid_threshold", "irn.ins_bg_threshold",
                    "irn.min_instance_area", "irn.radius", "irn.beta", "irn.logt", "irn.split", "irn.output_stride",
                    "irn.init", "model.backbone", "model.freeze_bn", "model.freeze_stem", "run.mixed_precision",
                    "data.train_split", "data.eval_split"),
             ignores=("run.seed",), record=lambda r: stage(r).record("irn_instances"),
             outputs=lambda r: [instances_folder(r), stage(r).done("irn_instances")],
             splits=lambda r: default_splits(r, r.irn.split), upstream=lambda r: (TRAIN, cam_export().step)),
    lambda recipe, reporter: make_instances(recipe, INSTANCES, load_irn, reporter), task=SECTION, default=False))

EVAL_INSTANCES = REGISTRY.register(Step(
    "eval_irn_instances",
    StepSpec(reads=("data.eval_split",), ignores=("run.seed",), record=lambda r: eval_folder(r) / "provenance.json",
             outputs=lambda r: [eval_folder(r)], splits=lambda r: [r.data.eval_split],
             upstream=lambda r: (INSTANCES,)),
    lambda recipe, reporter: evaluate_instances(recipe, EVAL_INSTANCES, reporter), task=SECTION, default=False,
    metrics=lambda r: eval_folder(r) / "metrics.json", ground_truth="instances",
    rows=(SummaryRow("IRN instance masks: mAP^r at IoU 0.5 (%)", "IRN ins. mAP50", key="map_50", kind="other"),
          SummaryRow("IRN instance masks: mAP^r at IoU 0.25 (%)", "IRN ins. mAP25", key="map_25", kind="other"),
          SummaryRow("IRN instance masks: mAP^r at IoU 0.75 (%)", "IRN ins. mAP75", key="map_75", kind="other"))))

REGISTRY.add(Probe("irn", open_probe))
REGISTRY.add(BACKGROUND)
