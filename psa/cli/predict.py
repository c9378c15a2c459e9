"""Segment images with the trained segmentation network (multi-scale + flip, optional CRF).

examples:
  psa predict recipes/seg.yaml                    # the recipe's seg.split
  psa predict recipes/seg.yaml --images photos/ --crf --out masks/ [--overlay] [--probabilities]
  psa predict recipes/cps.yaml                    # task cps: the CPS pair (cps.predict_with)

Writes OUT/<id>.png (pixel = class index) and OUT/classes/<id>.json (the classes present and
their pixel shares); --overlay adds OUT/overlay/<id>.png, --probabilities OUT/probabilities/<id>.npz.
An image of --images that cannot be read is skipped, the others are written, and the exit
code is 2 with one line naming the skipped files.
"""

from __future__ import annotations

from ..errors import PsaError
from .common import RichReporter, add_recipe_arguments, console, is_main_process, key_value_table, load_from_args

HELP = "segment a split or a folder of images with the trained network"


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--images", help="a folder of images or a text file of image paths")
    parser.add_argument("--crf", action="store_true", help="refine with the dense CRF")
    parser.add_argument("--out", help="output folder (default: <run>/seg/pred, <run>/cps/pred_mean|pred_first)")
    parser.add_argument("--overlay", action="store_true", help="also OUT/overlay/<id>.png: image, mask, legend")
    parser.add_argument("--probabilities", action="store_true", help="also OUT/probabilities/<id>.npz (float16)")


def run(args) -> int:
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from ..framework.prediction import predict

    summary = predict(recipe, images=args.images, crf=args.crf, out_dir=args.out, reporter=RichReporter(),
                      overlay=args.overlay, probabilities=args.probabilities)
    failed = summary.pop("failed", {})
    if is_main_process():
        console.print(key_value_table("prediction", [*summary.items(), ("failed", len(failed))]))
    if failed:
        listed = "; ".join(list(failed.values())[:3])
        if len(failed) > 3:
            listed += f"; and {len(failed) - 3} more (see {summary['folder']}/predict_done.json)"
        raise PsaError(f"{len(failed)} of {summary['images']} images could not be read and were skipped "
                       f"(the others are in {summary['folder']}): {listed}")
    return 0
