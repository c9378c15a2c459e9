"""What `seg.min_confidence` keeps of a finished walk's pseudo masks, and how right it is.

    python bench/seg_label_confidence.py recipes/msrc.yaml [--thresholds 0 0.5 0.6 0.7] [--every N] [key=value ...]

For each threshold: the share of the train split's labelled pixels the segmentation network
would still learn from (the masks `seg.labels` names, with the walk's scores of `seg.walk`),
and the mIoU and pixel accuracy of those pixels against the ground truth. Nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from psa.config import load_recipe  # noqa: E402
from psa.constants import IGNORE_INDEX  # noqa: E402
from psa.metrics import confusion_matrix, segmentation_scores  # noqa: E402
from psa.stages.common import items_for  # noqa: E402
from psa.tasks.seg import confidence_of, mask_folder, walk_scores_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.0, 0.5, 0.6, 0.7, 0.8])
    parser.add_argument("--every", type=int, default=1, help="every N-th train photo")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    recipe = load_recipe(args.recipe, args.overrides)
    masks, scores = mask_folder(recipe), walk_scores_folder(recipe, recipe.seg.walk)
    if masks is None:
        sys.exit("bench/seg_label_confidence.py: seg.labels is gt; the thresholds apply to pseudo masks")
    items = items_for(recipe, [recipe.data.train_split])[::args.every]
    names = list(items[0].source.classes)
    tallies = {t: np.zeros((len(names), len(names) + 1), np.int64) for t in args.thresholds}
    labelled = 0
    for item in items:
        gt = item.source.load_mask(item.index)
        mask = np.asarray(Image.open(masks / f"{item.image_id}.png"))
        confidence = confidence_of(scores / f"{item.image_id}.npz", gt.shape)
        labelled += int((gt != IGNORE_INDEX).sum())
        for threshold in args.thresholds:
            tallies[threshold] += confusion_matrix(mask, np.where(confidence < threshold, IGNORE_INDEX, gt), len(names))
    table = Table(title=f"{masks} on {recipe.data.train_split} ({len(items)} images)")
    for column in ("seg.min_confidence", "pixels kept %", "their mIoU %", "their pixel accuracy %"):
        table.add_column(column, justify="right")
    for threshold, conf in tallies.items():
        scored = segmentation_scores(conf, names)
        table.add_row(f"{threshold:g}", f"{100 * conf.sum() / labelled:.1f}", f"{100 * scored['miou']:.1f}",
                      f"{100 * scored['pixel_acc']:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
