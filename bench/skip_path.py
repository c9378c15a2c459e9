"""The skip path: how long a finished, unchanged per-image stage takes to do nothing.

    python bench/skip_path.py recipes/demo.yaml run.dir=runs/demo [--repeats 5] [--code DIR]

Runs export_cams, random_walk and predict (in process, after one warm-up call each) on a
finished run and prints the median and minimum time per call, and that no image was read.
`--code DIR` imports psa from another checkout (e.g. the commit before provenance) to
compare the same run folder layout before and after.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("recipe")
parser.add_argument("overrides", nargs="*")
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--code", default=str(Path(__file__).resolve().parents[1]), help="checkout whose psa is timed")
args = parser.parse_args()
sys.path.insert(0, args.code)

import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import psa  # noqa: E402
from psa.config import load_recipe  # noqa: E402
from psa.data import base as data_base  # noqa: E402
from psa.data.synthetic import SyntheticSource  # noqa: E402
from psa.stages.export_cams import export_cams  # noqa: E402
from psa.stages.predict import predict  # noqa: E402
from psa.stages.random_walk import run_random_walk  # noqa: E402

READS = {"images": 0}


def counting(method):
    def wrapper(*a, **k):
        READS["images"] += 1
        return method(*a, **k)
    return wrapper


# count every image decode: generated (synthetic) or from a file (VOC, Pet)
SyntheticSource.load_image = counting(SyntheticSource.load_image)
data_base.read_rgb = counting(data_base.read_rgb)


def main() -> None:
    recipe = load_recipe(args.recipe, args.overrides)
    table = Table(title=f"skip path on {recipe.run.dir} — psa from {Path(psa.__file__).parent}")
    for column in ("stage", "images", "median s", "min s", "images read"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, stage in (("export_cams", export_cams), ("random_walk", run_random_walk), ("predict_seg", predict)):
        summary = stage(recipe)  # warm-up: imports, first touch of the folders
        READS["images"] = 0
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            summary = stage(recipe)
            times.append(time.perf_counter() - started)
        assert summary["written_here"] == 0, f"{name} was not finished: it wrote {summary['written_here']} files"
        table.add_row(name, str(summary["images"]), f"{statistics.median(times):.3f}", f"{min(times):.3f}",
                      str(READS["images"]))
    console = Console()
    console.print(table)
    console.print(f"Python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{args.repeats} repeats")


if __name__ == "__main__":
    main()
