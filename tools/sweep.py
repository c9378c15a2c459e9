"""Ablation sweep: run a grid of recipe overrides, each point in its own run directory under
one sweep folder, sharing (by symlink) every stage whose provenance record is unchanged.

    python tools/sweep.py recipes/demo.yaml random_walk.beta=4,8,12 random_walk.logt=2,3 --until eval_rw_crf

`key=v1,v2` is an axis, `key=value` a fixed override. Ends with a table and writes sweep.csv,
sweep.json and sweep.png into the sweep folder (default <run.dir>/sweeps/<keys>), and the
results to TensorBoard's hparams view. Rerun it to finish the points a killed sweep left.
"""

import argparse

import _path  # noqa: F401

from psa.cli.common import RichReporter, console, is_main_process, run_tool


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("grid", nargs="+", metavar="key=v1,v2", help="axes (key=v1,v2,...) and fixed overrides")
    parser.add_argument("--until", metavar="STEP", help="stop each point after this step (e.g. eval_rw_crf)")
    parser.add_argument("--out", metavar="DIR", help="sweep folder (default <run.dir>/sweeps/<keys>)")
    args = parser.parse_args()
    from psa.cli.sweep import sweep_table
    from psa.sweep import run

    result = run(args.recipe, args.grid, RichReporter(), until=args.until, folder=args.out)
    if is_main_process():
        console.print(sweep_table(result))
        console.print(f"wrote {result.where / 'sweep.csv'}, sweep.json, sweep.png; "
                      f"tensorboard --logdir {result.where / 'tb'} (HPARAMS tab)")
    return 0


if __name__ == "__main__":
    run_tool(main)
