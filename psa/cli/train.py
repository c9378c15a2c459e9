"""Train the section the recipe's `task` names (cam, affinity, irn, seg, cps, or a loaded
method's). Under `accelerate launch` it trains on every process (DDP).

examples:
  psa train recipes/cam.yaml
  psa train recipes/demo.yaml task=seg seg.train.epochs=2
  accelerate launch --multi_gpu --num_processes 4 tools/train.py recipes/cam.yaml
"""

from __future__ import annotations

import math

from .common import add_recipe_arguments, console, is_main_process, key_value_table, load_from_args, RichReporter

HELP = "train the recipe's task (its section's network)"


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)


def run(args) -> int:
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from ..framework.training import train_task
    from ..layout import StageFolder

    result = train_task(recipe, recipe.task, RichReporter())
    if is_main_process() and result.already_trained:
        loss = "not recorded" if math.isnan(result.final_loss) else f"{result.final_loss:.4f}"
        console.print(f"{recipe.task} is already trained under this recipe: nothing to do (to train again, "
                      f"delete {result.stage_dir} or use a new run.dir)", markup=False)
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
