"""The CAM stage's steps, its export and classifier for the other methods, and the
`cam.method` choices."""

from __future__ import annotations

from ...errors import PsaError
from ...framework.cams import CamExport, Classifier
from ...framework.classifier import CamVariant, build_cam_model
from ...framework.evaluation import evaluation_step
from ...framework.registry import REGISTRY, RecipeCheck, choice_message
from ...framework.step import OutputCount, Predictions, Step, SummaryRow
from ...framework.trained import load_trained
from ...framework.items import default_splits
from ...framework.training import training_step
from ...provenance import StepSpec
from .export import export_cams
from .layout import SECTION, export_done, export_folders, export_record
from .section import SUPERVISED
from .training import build_cam_task, variant
from .tune import LABELS, SCALES

# What the trained classifier depends on (psa/provenance.py): a new key read while training
# belongs here (or in `ignores` if it cannot change the weights); a variant adds its section.
TRAIN = REGISTRY.register(training_step(
    "train_cam", SECTION, build_cam_task,
    reads=("model", "cam.train", "cam.crop_size", "cam.resize_long", "cam.color_jitter", "run.seed",
           "run.mixed_precision", "data.train_split", "cam.method", "cam.labeled"),
    splits=lambda r: [r.data.train_split],
    more_reads=lambda r: () if r.cam.method == SUPERVISED else (variant(r).section,),
))


def load_cam_net(recipe, classes=None):
    """The trained CAM classifier, refused in one line when made for other classes."""
    return load_trained(recipe, TRAIN.training,
                        lambda meta: build_cam_model(recipe, len(meta["classes"]), load_weights=False), classes=classes)


# What the exported files depend on (psa/provenance.py); a key the export reads belongs here.
EXPORT = REGISTRY.register(Step(
    "export_cams",
    StepSpec(reads=("cam.scales", "cam.flip", "cam.low_alpha", "cam.high_alpha", "cam.bg_threshold",
                    "cam.export_split", "crf", "model.backbone", "model.freeze_bn", "model.freeze_stem",
                    "run.mixed_precision", "data.train_split", "data.eval_split"),
             ignores=("run.seed",), record=export_record,
             outputs=lambda r: [*export_folders(r).values(), export_done(r)],
             splits=lambda r: default_splits(r, r.cam.export_split), upstream=lambda r: (TRAIN,)),
    lambda recipe, reporter: export_cams(recipe, EXPORT, load_cam_net, reporter), task=SECTION,
    count=OutputCount("CAMs and confident labels", export_done)))

REGISTRY.provide(CamExport(EXPORT, cams=lambda r: export_folders(r)["cams"],
                           predictions=lambda r: export_folders(r)["pred"],
                           confident_labels=lambda r: export_folders(r)["labels"]))
REGISTRY.provide(Classifier(TRAIN, load_cam_net))

# the exported CAMs, scored as argmax over the classes and `cam.bg_threshold` (and a sweep of it)
CAMS = Predictions("cam", stage=SECTION, step=EXPORT, labels=lambda r: export_folders(r)["cams"], kind="cam",
                   scores=lambda r: export_folders(r)["cams"], scores_format="cam", reads=("cam.bg_threshold",))
REGISTRY.register(evaluation_step("eval_cam", CAMS, task=SECTION, rows=(
    SummaryRow("CAM (bg threshold from recipe)", "CAM", kind="cam"),
    SummaryRow("CAM (best bg threshold of the sweep)", "CAM best bg", key="best_sweep_miou", name="best", kind="cam"),
)))


def _check_method(recipe) -> None:
    choices = [SUPERVISED, *(v.name for v in REGISTRY.all(CamVariant))]
    if recipe.cam.method not in choices:
        raise PsaError(choice_message("cam.method", recipe.cam.method, choices))


REGISTRY.add(RecipeCheck("cam.method", _check_method))
REGISTRY.add(LABELS)
REGISTRY.add(SCALES)
