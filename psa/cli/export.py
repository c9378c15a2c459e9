"""Export multi-scale + flip CAMs, CAM predictions and the confident labels AffinityNet
learns from (the export_cams step).

examples:
  psa export recipes/cam.yaml [key=value ...]
  accelerate launch --multi_gpu --num_processes 2 tools/export_cams.py recipes/cam.yaml
"""

from __future__ import annotations

from .common import add_recipe_arguments
from .step import run_step

HELP = "export CAMs and confident labels (the export_cams step)"


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)


def run(args) -> int:
    return run_step(args, "export_cams")
