"""The random walk of the CAMs over AffinityNet's affinities → pseudo masks (the
random_walk step).

examples:
  psa walk recipes/affinity.yaml [random_walk.beta=8 random_walk.logt=8 ...]
"""

from __future__ import annotations

from .common import add_recipe_arguments
from .step import run_step

HELP = "random walk → pseudo masks (the random_walk step)"


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)


def run(args) -> int:
    return run_step(args, "random_walk")
