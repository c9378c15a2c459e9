"""Ablation sweep: a grid of recipe overrides, each point in its own run directory under one
sweep folder, sharing (by symlink) every step whose provenance record is unchanged.

`key=v1,v2` is an axis, `key=value` a fixed override. Ends with a table and writes
sweep.csv, sweep.json and sweep.png into the sweep folder (default <run.dir>/sweeps/<keys>),
and the results to TensorBoard's hparams view. Rerun it to finish the points a killed sweep
left.

examples:
  psa sweep recipes/demo.yaml random_walk.beta=4,8,12 random_walk.logt=2,3 --until eval_rw_crf
  psa sweep runs/demo/recipe.yaml random_walk.beta=4,8     # a finished run: its resolved recipe
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from .common import RichReporter, console, is_main_process, percent

HELP = "a grid of overrides, sharing every unchanged step"


def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("grid", nargs="+", metavar="key=v1,v2", help="axes (key=v1,v2,...) and fixed overrides")
    parser.add_argument("--until", metavar="STEP", help="stop each point after this step (e.g. eval_rw_crf)")
    parser.add_argument("--out", metavar="DIR", help="sweep folder (default <run.dir>/sweeps/<keys>)")


def run(args) -> int:
    from ..sweep import run as run_sweep

    result = run_sweep(args.recipe, args.grid, RichReporter(), until=args.until, folder=args.out)
    if is_main_process():
        console.print(sweep_table(result))
        console.print(f"wrote {result.where / 'sweep.csv'}, sweep.json, sweep.png; "
                      f"tensorboard --logdir {result.where / 'tb'} (HPARAMS tab)", markup=False)
    return 0


def sweep_table(result) -> Table:
    table = Table(title=f"psa sweep — {escape(str(result.where))} (mIoU %)")
    for key in result.keys:
        table.add_column(escape(result.titles.get(key, key)), justify="right")
    for column in result.columns:
        table.add_column(escape(column.title), justify="right")
    table.add_column("trained", justify="left")
    for row in result.rows:
        trained = [s for s in row["ran"] if s.startswith("train_")]
        table.add_row(*(escape(str(row[k])) for k in result.keys), *(percent(row.get(c.name)) for c in result.columns),
                      ", ".join(trained) or "nothing")
    return table
