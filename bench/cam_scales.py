"""CAM mIoU of one trained classifier for several sets of export scales.

    python bench/cam_scales.py recipes/msrc.yaml run.dir=runs/msrc_s0 --every 3 \
        --scales 1,0.5 1,0.5,1.5 1,0.5,1.5,2 [--no-flip] [key=value ...]

Loads the run's trained CAM classifier (`<run.dir>/cam/model.pt`), computes each image's CAM
as the export does (psa.ops.cam.multiscale_cam, with the recipe's `cam.flip`) for every set of
`cam.scales`, and prints, per set, the mIoU against the ground-truth masks at the recipe's
`cam.bg_threshold` and at the best threshold of `eval.bg_sweep`, with the seconds each image
took. `--every N` scores every N-th image of the export split. Nothing in the run is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from psa.config import load_recipe  # noqa: E402
from psa.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from psa.ops.cam import cam_prediction, multiscale_cam  # noqa: E402
from psa.stages.common import default_splits, items_for  # noqa: E402
from psa.stages.evaluate import sweep_thresholds  # noqa: E402
from psa.stages.export_cams import load_cam_net  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--scales", nargs="+", required=True, help="comma-separated sets, e.g. 1,0.5 1,0.5,1.5")
    parser.add_argument("--every", type=int, default=1, help="score every N-th image")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    recipe = load_recipe(args.recipe, args.overrides)
    scale_sets = [tuple(float(v) for v in text.split(",")) for text in args.scales]
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))[:: args.every]
    classes = items[0].source.classes
    grid = sorted({*sweep_thresholds(recipe), recipe.cam.bg_threshold})
    model = load_cam_net(recipe, classes).eval()
    tallies = {s: {t: np.zeros((len(classes), len(classes) + 1), np.int64) for t in grid} for s in scale_sets}
    seconds = dict.fromkeys(scale_sets, 0.0)
    with torch.inference_mode():
        for item in items:
            image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
            class_ids = item.source.image_labels(item.index)
            for scales in scale_sets:
                start = time.perf_counter()
                cams = multiscale_cam(model, image, class_ids - 1, scales, recipe.cam.flip).numpy()
                seconds[scales] += time.perf_counter() - start
                for t in grid:
                    tallies[scales][t] += confusion_matrix(cam_prediction(cams, class_ids, t), gt, len(classes))

    table = Table(title=f"CAM mIoU % of {recipe.run.dir} over {len(items)} images (flip: {recipe.cam.flip})")
    for column in ("scales", f"at {recipe.cam.bg_threshold:g}", "best", "best threshold", "s / image"):
        table.add_column(column, justify="right")
    for scales in scale_sets:
        miou = {t: segmentation_scores(conf, classes)["miou"] for t, conf in tallies[scales].items()}
        best = max(miou, key=miou.get)
        table.add_row(",".join(f"{s:g}" for s in scales), f"{100 * miou[recipe.cam.bg_threshold]:.1f}",
                      f"{100 * miou[best]:.1f}", f"{best:g}", f"{seconds[scales] / len(items):.2f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
