"""Which stage holds the pseudo masks back? Bounds for a finished run (after the CAM export;
the AffinityNet rows once it is trained): CAM mIoU at the recipe and the best threshold, the
random walk with learned and with ground-truth affinities, confident-label precision and
coverage, AffinityNet pair accuracy, per-class AP.

    python tools/diagnose.py recipes/coco_voc_mini.yaml [random_walk.logt=6 ...]
"""

import _path  # noqa: F401

from psa.cli.common import RichReporter, console, load_from_args, recipe_parser, run_tool


def main() -> int:
    parser = recipe_parser(__doc__)
    parser.add_argument("--split", help="split to diagnose (default: data.eval_split)")
    args = parser.parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from psa.cli.diagnose import diagnose_tables
    from psa.layout import RunLayout
    from psa.stages.diagnose import diagnose

    report = diagnose(recipe, split=args.split, reporter=RichReporter())
    console.print(diagnose_tables(report))
    console.print(f"[dim]{RunLayout.of(recipe).diagnose / 'diagnose.json'}[/]")
    return 0


if __name__ == "__main__":
    run_tool(main)
