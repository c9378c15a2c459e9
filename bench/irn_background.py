"""IRN's semantic background plane (`irn.sem_bg_threshold`) swept over one finished IRN walk.

    python bench/irn_background.py recipes/coco_voc_mini.yaml [--thresholds 0.05 0.1 ...] [key=value ...]

Reads the walk's stored scores (`<run.dir>/irn/scores`, stride 4, already divided by their
maximum), replaces the background plane by each threshold, upsamples as the walk does and
prints the mIoU of the resulting masks against the ground truth. Nothing is written.
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
from psa.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from psa.stages.common import items_for  # noqa: E402
from psa.ops.walk_scores import load_walk_scores, upsample_scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--thresholds", type=float, nargs="+",
                        default=[0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6])
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    recipe = load_recipe(args.recipe, args.overrides)
    folder = RunLayout.of(recipe).irn_scores
    items = items_for(recipe, [recipe.data.eval_split])
    names = list(items[0].source.classes)
    classes = len(names)
    tallies = {t: np.zeros((classes, classes + 1), np.int64) for t in args.thresholds}
    for item in items:
        path = folder / f"{item.image_id}.npz"
        if not path.is_file():
            sys.exit(f"bench/irn_background.py: no walk scores {path}; run the irn_walk step first")
        scores, class_ids, stride = load_walk_scores(path)
        gt = item.source.load_mask(item.index)
        lookup = np.concatenate([[0], class_ids]).astype(np.uint8)
        for threshold in args.thresholds:
            scores[0] = threshold
            full = upsample_scores(scores, *gt.shape, stride=stride)
            tallies[threshold] += confusion_matrix(lookup[full.argmax(0)], gt, classes)
    table = Table(title=f"IRN walk of {recipe.run.dir}: mIoU on {recipe.data.eval_split} ({len(items)} images)")
    table.add_column("irn.sem_bg_threshold", justify="right")
    table.add_column("mIoU %", justify="right")
    for threshold, conf in tallies.items():
        marker = " (recipe)" if abs(threshold - recipe.irn.sem_bg_threshold) < 1e-9 else ""
        table.add_row(f"{threshold:g}{marker}", f"{100 * segmentation_scores(conf, names)['miou']:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
