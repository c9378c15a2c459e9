"""Tune recipe keys on a finished run, without rerunning a step: a grid of values (as a
sweep's) for keys a method can recompute from the run's stored files, each point scored
against the ground truth. What can be tuned so: the walk (random_walk.*), the confident
labels (cam.low_alpha, cam.high_alpha), the CAM scales (cam.scales, cam.flip), the CRF of a
source's masks (mask_crf.*, crf.*), the segmentation network's label confidence
(seg.min_confidence), IRN's background (irn.sem_bg_threshold), and any a loaded method adds.
Writes <run.dir>/tune/<tuner>.json; nothing in the run changes.

examples:
  psa tune recipes/msrc.yaml random_walk.logt=6,7,8 random_walk.beta=8,16
  psa tune recipes/msrc.yaml cam.low_alpha=0.5,1 cam.high_alpha=8,32 --every 3
  psa tune recipes/msrc.yaml mask_crf.bilateral_compat=3,10 --source rw
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .common import RichReporter, console, percent

HELP = "tune keys on a finished run's stored files (walk, labels, scales, CRF, ...)"


def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="the finished run's recipe (or its run.dir/recipe.yaml)")
    parser.add_argument("grid", nargs="+", metavar="key=v1,v2", help="axes (key=v1,v2,...) and fixed overrides")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="score every N-th image (default 1)")
    parser.add_argument("--source", default="rw", help="the pseudo-mask source a mask tuner reads (default rw)")


def run(args) -> int:
    from ..framework.tuning import TuneOptions
    from ..tune import run as run_tune

    result = run_tune(args.recipe, args.grid, TuneOptions(every=args.every, source=args.source), RichReporter())
    table = Table(title=f"psa tune — {escape(result.tuner.name)} ({result.seconds} s; mIoU and shares in %)")
    for key in result.keys:
        table.add_column(escape(key), justify="right")
    for _, title in result.tuner.columns:
        table.add_column(escape(title), justify="right")
    for row in result.rows:
        table.add_row(*(escape(str(row[key])) for key in result.keys),
                      *(_cell(row.get(metric)) for metric, _ in result.tuner.columns))
    console.print(table)
    console.print(f"wrote {result.where}", markup=False)
    return 0


def _cell(value) -> str:
    return percent(value) if isinstance(value, float) or value is None else str(value)
