"""Train the stage named by the recipe's `task` (cam | affinity | seg | cps, or a registered method's).

    accelerate launch tools/train.py recipes/cam.yaml [key=value ...]
"""

import math

import _path  # noqa: F401

from psa.cli.common import (
    RichReporter, console, is_main_process, key_value_table, load_from_args, recipe_parser, run_tool,
)


def main() -> int:
    args = recipe_parser(__doc__).parse_args()
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from psa.layout import StageFolder
    from psa.stages.training import train_task

    result = train_task(recipe, recipe.task, RichReporter())
    if is_main_process() and result.already_trained:
        loss = "not recorded" if math.isnan(result.final_loss) else f"{result.final_loss:.4f}"
        console.print(f"{recipe.task} is already trained under this recipe: nothing to do (to train again, "
                      f"delete {result.stage_dir} or use a new run.dir)")
        console.print(key_value_table(f"trained {recipe.task}", [
            ("steps", result.steps), ("last loss", loss), ("weights", result.weights),
            ("TensorBoard", f"tensorboard --logdir {StageFolder(result.stage_dir).tensorboard}"),
        ]))
    elif is_main_process():
        console.print(key_value_table(f"trained {recipe.task}", [
            ("steps", result.steps), ("resumed from step", result.resumed_from),
            ("final loss", f"{result.final_loss:.4f}"), ("processes", result.world_size),
            ("time", f"{result.seconds:.1f} s"), ("weights", result.weights),
            ("TensorBoard", f"tensorboard --logdir {StageFolder(result.stage_dir).tensorboard}"),
        ]))
    return 0


if __name__ == "__main__":
    run_tool(main)
