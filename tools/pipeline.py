"""Run every stage in order, skipping finished ones; end with CAM vs RW vs RW+CRF vs seg.

    python tools/pipeline.py recipes/demo.yaml [key=value ...]
"""

import _path  # noqa: F401

from psa.cli.common import (
    RichReporter, console, load_from_args, recipe_parser, run_tool,
)


def main() -> int:
    args = recipe_parser(__doc__).parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from psa.cli.pipeline import run_pipeline

    run_pipeline(recipe, RichReporter(), console)
    return 0


if __name__ == "__main__":
    run_tool(main)
