"""Segment images with the trained segmentation network (multi-scale + flip, optional CRF).

    python tools/predict.py recipes/seg.yaml                      # the recipe's seg.split
    python tools/predict.py recipes/seg.yaml --images photos/ --crf --out masks/
    python tools/predict.py recipes/cps.yaml                      # task cps: the CPS pair (cps.predict_with)
"""

import _path  # noqa: F401

from psa.cli.common import (
    RichReporter, console, is_main_process, key_value_table, load_from_args, recipe_parser, run_tool,
)


def main() -> int:
    parser = recipe_parser(__doc__)
    parser.add_argument("--images", help="a folder of images or a text file of image paths")
    parser.add_argument("--crf", action="store_true", help="refine with the dense CRF")
    parser.add_argument("--out", help="output folder (default: <run>/seg/pred, <run>/cps/pred_mean|pred_first)")
    args = parser.parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from psa.stages.predict import predict

    summary = predict(recipe, images=args.images, crf=args.crf, out_dir=args.out, reporter=RichReporter())
    if is_main_process():
        console.print(key_value_table("prediction", list(summary.items())))
    return 0


if __name__ == "__main__":
    run_tool(main)
