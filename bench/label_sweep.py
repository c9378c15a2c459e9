"""The confident labels AffinityNet learns from, for several la/ha alphas, over one export.

    python bench/label_sweep.py recipes/msrc.yaml --alphas 1,32 0.5,32 0.5,8 [--images N] [key=value ...]

Reads the exported CAMs of the recipe's run (`<run.dir>/cam/cams`), recomputes the confident
labels (psa.ops.cam.confident_labels: two dense CRFs per image) for each `low,high` pair of
`cam.low_alpha,cam.high_alpha`, and prints their precision and coverage against the
ground-truth masks, on background and on objects (psa.stages.diagnose.label_quality), plus the
share of the pairs AffinityNet trains on that are wrong. Nothing in the run is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from psa.config import load_recipe  # noqa: E402
from psa.layout import RunLayout  # noqa: E402
from psa.metrics import confusion_matrix  # noqa: E402
from psa.ops.cam import confident_labels  # noqa: E402
from psa.stages.common import default_splits, items_for  # noqa: E402
from psa.stages.diagnose import label_quality  # noqa: E402
from psa.stages.export_cams import load_cam_file  # noqa: E402


def pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--alphas", nargs="+", required=True, help="low,high pairs, e.g. 1,32 0.5,32")
    parser.add_argument("--images", type=int, default=0, help="the first N images (0: all)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    recipe = load_recipe(args.recipe, args.overrides)
    pairs = [tuple(float(v) for v in text.split(",")) for text in args.alphas]
    cams_dir = RunLayout.of(recipe).cams
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))
    items = items[: args.images] if args.images else items
    classes = len(items[0].source.classes)
    tallies = {pair: np.zeros((classes, classes + 1), np.int64) for pair in pairs}
    for item in items:
        path = cams_dir / f"{item.image_id}.npz"
        if not path.is_file():
            sys.exit(f"bench/label_sweep.py: no exported CAMs {path}; run the export first")
        cams, class_ids = load_cam_file(path)
        image, gt = item.source.load_image(item.index), item.source.load_mask(item.index)
        for low, high in pairs:
            label = confident_labels(image, cams, class_ids, low, high, recipe.crf)
            tallies[(low, high)] += confusion_matrix(label, gt, classes)

    table = Table(title=f"confident labels of {args.recipe} over {len(items)} images (% of pixels)")
    for column in ("low_alpha", "high_alpha", "bg precision", "bg coverage", "fg precision", "fg coverage",
                   "labelled"):
        table.add_column(column, justify="right")
    for (low, high), conf in tallies.items():
        quality = label_quality(conf)
        labelled = conf[:, :-1].sum() / max(conf.sum(), 1)
        table.add_row(f"{low:g}", f"{high:g}", pct(quality["bg_precision"]), pct(quality["bg_coverage"]),
                      pct(quality["fg_precision"]), pct(quality["fg_coverage"]), pct(labelled))
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
