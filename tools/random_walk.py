"""Random walk of the CAMs over AffinityNet's affinities → pseudo masks.

    python tools/random_walk.py recipes/affinity.yaml [random_walk.beta=8 random_walk.logt=8 ...]
"""

import _path  # noqa: F401

from psa.cli.common import (
    RichReporter, console, is_main_process, key_value_table, load_from_args, recipe_parser, run_tool,
)


def main() -> int:
    args = recipe_parser(__doc__).parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from psa.layout import RunLayout
    from psa.stages.random_walk import run_random_walk

    summary = run_random_walk(recipe, RichReporter())
    if is_main_process():
        console.print(key_value_table("random walk", list(summary.items()) +
                                      [("pseudo masks", RunLayout.of(recipe).pseudo_masks())]))
    return 0


if __name__ == "__main__":
    run_tool(main)
