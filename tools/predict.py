"""Segment images with the trained segmentation network (multi-scale + flip, optional CRF).

    python tools/predict.py recipes/seg.yaml                      # the recipe's seg.split
    python tools/predict.py recipes/seg.yaml --images photos/ --crf --out masks/ [--overlay] [--probabilities]
    python tools/predict.py recipes/cps.yaml                      # task cps: the CPS pair (cps.predict_with)

Writes OUT/<id>.png (pixel = class index) and OUT/classes/<id>.json (the classes present and
their pixel shares); --overlay adds OUT/overlay/<id>.png, --probabilities OUT/probabilities/<id>.npz.
An image of --images that cannot be read is skipped, the others are written, and the exit
code is 2 with one line naming the skipped files.
"""

import _path  # noqa: F401

from psa.cli.common import (
    RichReporter, console, is_main_process, key_value_table, load_from_args, recipe_parser, run_tool,
)
from psa.errors import PsaError


def main() -> int:
    parser = recipe_parser(__doc__)
    parser.add_argument("--images", help="a folder of images or a text file of image paths")
    parser.add_argument("--crf", action="store_true", help="refine with the dense CRF")
    parser.add_argument("--out", help="output folder (default: <run>/seg/pred, <run>/cps/pred_mean|pred_first)")
    parser.add_argument("--overlay", action="store_true", help="also OUT/overlay/<id>.png: image, mask, legend")
    parser.add_argument("--probabilities", action="store_true", help="also OUT/probabilities/<id>.npz (float16)")
    args = parser.parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from psa.stages.predict import predict

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


if __name__ == "__main__":
    run_tool(main)
