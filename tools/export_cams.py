"""Export multi-scale + flip CAMs, CAM predictions and confident labels for AffinityNet.

    python tools/export_cams.py recipes/cam.yaml [key=value ...]
    accelerate launch --multi_gpu --num_processes 2 tools/export_cams.py recipes/cam.yaml
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
    from psa.stages.export_cams import export_cams

    summary = export_cams(recipe, RichReporter())
    if is_main_process():
        console.print(key_value_table("CAM export", list(summary.items()) +
                                      [("output", RunLayout.of(recipe).stage("cam").path)]))
    return 0


if __name__ == "__main__":
    run_tool(main)
