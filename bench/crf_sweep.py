"""Dense-CRF parameters for the walk's masks, on a finished run's stored walk scores: each
setting refines every image's walk, scored against its ground truth.

    python bench/crf_sweep.py recipes/msrc.yaml run.dir=runs/msrc_s0 --every 3 \
        --settings bilateral_compat=3 bilateral_compat=3,bilateral_srgb=5 [key=value ...]

A setting is comma-separated CrfConfig fields, on top of the recipe's refining CRF (`mask_crf`,
or `crf` when it is unset); "recipe" is the recipe's own. `--every N` scores every N-th image of
the evaluation split. Prints a table (mIoU % of the walk without CRF and with each setting) and
writes <run.dir>/diagnose/crf_sweep.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from psa.config import CrfConfig, load_recipe  # noqa: E402
from psa.io import atomic_write_json  # noqa: E402
from psa.layout import RunLayout  # noqa: E402
from psa.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from psa.ops.crf import dense_crf  # noqa: E402
from psa.stages.common import items_for  # noqa: E402
from psa.ops.walk_scores import load_walk_scores, to_probabilities, upsample_scores  # noqa: E402

FIELDS = {f.name: f.type for f in dataclasses.fields(CrfConfig)}


def parse_setting(text: str, base: CrfConfig) -> CrfConfig:
    if text == "recipe":
        return base
    changes = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        if key not in FIELDS:
            sys.exit(f"bench/crf_sweep.py: unknown CRF field {key!r} in {text!r}; known: {', '.join(FIELDS)}")
        changes[key] = int(value) if key == "iterations" else float(value)
    return dataclasses.replace(base, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--settings", nargs="+", default=["recipe"], help="field=value[,field=value] or 'recipe'")
    parser.add_argument("--every", type=int, default=1, help="score every N-th image")
    args = parser.parse_intermixed_args()
    recipe = load_recipe(args.recipe, args.overrides)
    base = recipe.refining_crf()
    settings = {text: parse_setting(text, base) for text in args.settings}
    layout = RunLayout.of(recipe)
    scores_dir = layout.walk_scores
    if not scores_dir.is_dir():
        sys.exit(f"bench/crf_sweep.py: no walk scores in {scores_dir}; run the recipe's random_walk step first")
    items = items_for(recipe, [recipe.data.eval_split])[:: args.every]
    classes = list(items[0].source.classes)
    num = len(classes)
    conf = {name: np.zeros((num, num + 1), np.int64) for name in ["no CRF", *settings]}
    started = time.perf_counter()
    for item in items:
        scores, class_ids, stride = load_walk_scores(scores_dir / f"{item.image_id}.npz")
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
        full = upsample_scores(scores, *image.shape[:2], stride=stride)
        conf["no CRF"] += confusion_matrix(lookup[full.argmax(0)], gt, num)
        probs = to_probabilities(full)
        for name, cfg in settings.items():
            conf[name] += confusion_matrix(lookup[dense_crf(image, probs, cfg).argmax(0)], gt, num)
    rows = [{"setting": name, "miou": segmentation_scores(c, classes)["miou"],
             "crf": dataclasses.asdict(settings[name]) if name in settings else None} for name, c in conf.items()]
    result = {"images": len(items), "rows": rows, "seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(layout.diagnose / "crf_sweep.json", result)
    table = Table(title=f"CRF on the walk — {recipe.run.dir}: {len(items)} images, {result['seconds']} s")
    table.add_column("setting")
    table.add_column("mIoU %", justify="right")
    for row in rows:
        table.add_row(row["setting"], f"{100 * row['miou']:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
