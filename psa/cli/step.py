"""Run one registered step of the recipe (its provenance checked, its finished images
skipped), e.g. a per-image step of a method that has no command of its own.

examples:
  psa step export_cams recipes/cam.yaml
  psa step random_walk recipes/affinity.yaml random_walk.beta=8
  psa step irn_walk recipes/irn.yaml
"""

from __future__ import annotations

from .common import RichReporter, add_recipe_arguments, console, is_main_process, key_value_table, load_from_args

HELP = "run one registered step (any method's)"


def add_arguments(parser) -> None:
    parser.add_argument("name", metavar="STEP", help="the step's name, as in pipeline.steps")
    add_recipe_arguments(parser)


def run(args) -> int:
    return run_step(args, args.name)


def run_step(args, name: str) -> int:
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from ..errors import PsaError
    from ..framework.registry import REGISTRY, choice_message

    try:
        step = REGISTRY.get(name)
    except KeyError:
        raise PsaError(choice_message("step", name, REGISTRY.names())) from None
    summary = step.run(recipe, RichReporter())
    if is_main_process() and isinstance(summary, dict):
        rows = [(key, value) for key, value in summary.items() if not isinstance(value, (dict, list))]
        console.print(key_value_table(name, [*rows, ("record", step.record(recipe))]))
    return 0
