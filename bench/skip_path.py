"""The skip path: how long a finished, unchanged per-image stage takes to do nothing.

    python bench/skip_path.py recipes/demo.yaml run.dir=runs/demo [--repeats 5] [--json PATH]

Runs the registered steps export_cams, random_walk and predict_seg (in process, after one
warm-up call each) on a finished run and prints the median and minimum time per call, and that
no image was read. `--smoke` first finishes a tiny run of the demo in a temporary folder.
To time another checkout's psa on the same run folder, put it first on the path:
`PYTHONPATH=<checkout> python bench/skip_path.py ...` (the table names the psa it timed).
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
from pathlib import Path
from unittest import mock

import torch
from harness import parser, smoke_run, times, write_json
from rich.console import Console
from rich.table import Table

import psa
from psa.data import base as data_base
from psa.data.synthetic import SyntheticSource
from psa.framework.registry import REGISTRY

STEPS = ("export_cams", "random_walk", "predict_seg")


def counting(method, reads: dict):
    def wrapper(*a, **k):
        reads["images"] += 1
        return method(*a, **k)
    return wrapper


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("recipe", nargs="?", help="a finished run's recipe (with --smoke: none)")
    options.add_argument("overrides", nargs="*")
    options.add_argument("--repeats", type=int, default=5)
    args = options.parse_intermixed_args(argv)
    if not args.smoke and not args.recipe:
        options.error("the recipe of a finished run is required")
    with tempfile.TemporaryDirectory() as scratch:
        if args.smoke:
            args.repeats = 1
            args.recipe, args.overrides = smoke_run(Path(scratch) / "run", (
                "train_cam", "export_cams", "train_affinity", "random_walk", "train_seg", "predict_seg"))
        return measure(args)


def measure(args) -> int:
    recipe = psa.load_recipe(args.recipe, args.overrides)
    table = Table(title=f"skip path on {recipe.run.dir} — psa from {Path(psa.__file__).parent}")
    for column in ("stage", "images", "median s", "min s", "images read"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    reads, rows = {"images": 0}, {}
    # count every image decode: generated (synthetic) or from a file (VOC, Pet)
    with mock.patch.object(SyntheticSource, "load_image", counting(SyntheticSource.load_image, reads)), \
         mock.patch.object(data_base, "read_rgb", counting(data_base.read_rgb, reads)):
        for name in STEPS:
            step, summary = REGISTRY.get(name), {}

            def call():
                summary.update(step.run(recipe, None))
            call()  # warm-up: imports, first touch of the folders
            reads["images"] = 0
            seconds = times(call, args.repeats, warmup=0)
            assert summary["written_here"] == 0, f"{name} was not finished: it wrote {summary['written_here']} files"
            rows[name] = {"images": summary["images"], "median_s": statistics.median(seconds), "min_s": min(seconds),
                          "images_read": reads["images"]}
            table.add_row(name, str(summary["images"]), f"{statistics.median(seconds):.3f}", f"{min(seconds):.3f}",
                          str(reads["images"]))
    console = Console()
    console.print(table)
    console.print(f"Python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{args.repeats} repeats")
    write_json(args.json, {"run": str(recipe.run.dir), "repeats": args.repeats, "smoke": args.smoke, "steps": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
