"""Random-walk settings on a finished run: each image's CAMs and AffinityNet features are
computed once, then every setting walks with the learned and the ground-truth affinities.

    python bench/walk_sweep.py recipes/coco_voc_mini.yaml --settings 5,8,16 4,6,16 3,4,8 [key=value ...]

A setting is radius,logt,alpha[,beta]. Prints a table (mIoU % of the CAM, learned walk,
ground-truth-affinity walk) and writes <run.dir>/diagnose/walk_sweep.json. This is what
tools/diagnose.py computes for one setting, without recomputing the networks per setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from psa.config import load_recipe  # noqa: E402
from psa.constants import FEATURE_STRIDE  # noqa: E402
from psa.data.transforms import normalize, pad_to_multiple  # noqa: E402
from psa.io import atomic_write_json  # noqa: E402
from psa.layout import RunLayout  # noqa: E402
from psa.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from psa.ops import pair_affinity  # noqa: E402
from psa.ops.cam import cam_prediction  # noqa: E402
from psa.stages.common import items_for  # noqa: E402
from psa.stages.diagnose import ground_truth_affinity, walk_prediction  # noqa: E402
from psa.stages.export_cams import load_cam_file  # noqa: E402
from psa.stages.random_walk import load_affinity_net  # noqa: E402


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def parse_setting(text: str) -> dict:
    values = [float(v) for v in text.split(",")]
    keys = ("radius", "logt", "alpha", "beta")
    setting = dict(zip(keys, values))
    setting["radius"], setting["logt"] = int(setting["radius"]), int(setting["logt"])
    return setting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--settings", nargs="+", required=True, help="radius,logt,alpha[,beta]")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides)
    settings = [parse_setting(s) for s in args.settings]
    recipes = [dataclasses.replace(recipe, random_walk=dataclasses.replace(recipe.random_walk, **s))
               for s in settings]
    items = items_for(recipe, [recipe.data.eval_split])
    classes = list(items[0].source.classes)
    num = len(classes)
    layout = RunLayout.of(recipe)
    trained = layout.stage("affinity").weights.is_file()  # else: bounds only
    model = load_affinity_net(recipe) if trained else None
    cam_conf = np.zeros((num, num + 1), np.int64)
    learned = [np.zeros_like(cam_conf) for _ in settings]
    bound = [np.zeros_like(cam_conf) for _ in settings]
    started = time.perf_counter()
    for item in items:
        cams, class_ids = load_cam_file(layout.cams / f"{item.image_id}.npz")
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
        cam_conf += confusion_matrix(cam_prediction(cams, class_ids, recipe.cam.bg_threshold), gt, num)
        if model is not None:
            with torch.no_grad():
                features = model.features(pad_to_multiple(normalize(image), FEATURE_STRIDE)[None])
        for k, (setting, walk_recipe) in enumerate(zip(settings, recipes)):
            radius = setting["radius"]
            if model is not None:
                affinity = pair_affinity(features, radius)[0]
                learned[k] += confusion_matrix(walk_prediction(cams, affinity, walk_recipe, lookup, gt.shape),
                                               gt, num)
            _, gt_affinity = ground_truth_affinity(gt, radius)
            bound[k] += confusion_matrix(walk_prediction(cams, gt_affinity, walk_recipe, lookup, gt.shape), gt, num)

    def miou(conf):
        return segmentation_scores(conf, classes)["miou"] if conf.any() else None

    rows = [{**s, "learned": miou(a), "gt_affinity": miou(b)} for s, a, b in zip(
        [dataclasses.asdict(r.random_walk) for r in recipes], learned, bound)]
    result = {"cam": miou(cam_conf), "images": len(items), "rows": rows,
              "seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(layout.diagnose / "walk_sweep.json", result)
    table = Table(title=f"walk settings — {recipe.run.dir}: CAM {pct(result['cam'])} mIoU, "
                        f"{len(items)} images, {result['seconds']} s")
    for column in ("radius", "logt", "alpha", "beta", "learned walk", "gt-affinity walk"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row["radius"]), str(row["logt"]), f"{row['alpha']:g}", f"{row['beta']:g}",
                      pct(row["learned"]), pct(row["gt_affinity"]))
    Console().print(table)


if __name__ == "__main__":
    main()
