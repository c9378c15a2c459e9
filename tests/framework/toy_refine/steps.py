"""The toy's per-image step and its pseudo masks as source `toy` (with their evaluations)."""

import numpy as np

from psa.framework.cams import cam_export
from psa.framework.items import default_splits, items_for
from psa.framework.masks import register_mask_source
from psa.framework.per_image import PerImageJob, run_per_image
from psa.framework.registry import REGISTRY
from psa.framework.step import Step
from psa.io import save_label_png
from psa.layout import RunLayout
from psa.ops.cam import background_score
from psa.provenance import StepSpec


def folder(recipe):
    return RunLayout.of(recipe).stage("toy") / "masks"


def seeds(cams: np.ndarray, lookup: np.ndarray, alpha: float) -> np.ndarray:
    return lookup[np.concatenate([background_score(cams, alpha)[None], cams]).argmax(0)]


def run(recipe, reporter):
    export = cam_export()

    def compute(model, item, paths, accelerator):
        cam = export.read(recipe, item.image_id)
        save_label_png(paths["mask"], seeds(cam.cams, cam.lookup, recipe.toy.alpha))

    job = PerImageJob(SEEDS.name, "toy seeds", SEEDS.spec, items_for(recipe, default_splits(recipe, "")),
                      lambda item: {"mask": folder(recipe) / f"{item.image_id}.png"}, [folder(recipe)],
                      load_model=lambda accelerator: None, compute=compute)
    return run_per_image(recipe, job, reporter)


# what its masks depend on: its own section, the splits it covers, and the CAM export
SEEDS = REGISTRY.register(Step(
    "toy_seeds",
    StepSpec(reads=("toy", "data.train_split", "data.eval_split"), ignores=("run.seed",),
             record=lambda r: RunLayout.of(r).stage("toy").record("toy_seeds"), outputs=lambda r: [folder(r)],
             splits=lambda r: default_splits(r, ""), upstream=lambda r: (cam_export().step,)),
    run))
register_mask_source("toy", "CAM seeds (no walk)", "seeds", SEEDS, stage="toy", masks=folder)
