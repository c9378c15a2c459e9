"""The `psa` command: one subcommand per tool, each a module of this package with `HELP`,
`add_arguments(parser)` and `run(args)`; `tools/<name>.py` call the same code."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import compare, diagnose, evaluate, export, pipeline, predict, step, sweep, train, tune, walk
from .common import run_tool

COMMANDS = {"train": train, "export": export, "walk": walk, "eval": evaluate, "predict": predict,
            "pipeline": pipeline, "sweep": sweep, "diagnose": diagnose, "tune": tune, "compare": compare,
            "step": step}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="psa", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Semantic segmentation from image labels: CAMs, their refinement into pseudo masks, "
                    "a segmentation network trained on them.\n\nexample:\n  psa pipeline recipes/demo.yaml")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=module.HELP, description=module.__doc__,
                                                 formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    run_tool(lambda: COMMANDS[args.command].run(args))


def tool(command: str) -> None:
    """`python tools/<tool>.py ARGS` is `psa <command> ARGS`."""
    main([command, *sys.argv[1:]])
