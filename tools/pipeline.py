"""Run every stage in order, like make: a step whose provenance record matches the recipe is
skipped, a changed key reruns exactly the steps downstream of it; end with CAM vs RW vs
RW+CRF vs seg.

    python tools/pipeline.py recipes/demo.yaml [key=value ...] [--until eval_rw_crf]
"""

import _path  # noqa: F401

from psa.cli.common import RichReporter, console, is_main_process, load_from_args, recipe_parser, run_tool


def main() -> int:
    parser = recipe_parser(__doc__)
    parser.add_argument("--until", metavar="STEP", help="stop after this step (e.g. eval_rw_crf)")
    args = parser.parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from psa.cli.pipeline import summary_table
    from psa.pipeline import run

    result = run(recipe, RichReporter(), until=args.until)
    if is_main_process():
        console.print(summary_table(result.summary, recipe))
    return 0


if __name__ == "__main__":
    run_tool(main)
