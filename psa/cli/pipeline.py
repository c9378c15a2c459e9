"""Every step in order, like make: a step whose provenance record matches the recipe is
skipped, a changed key reruns exactly the steps downstream of it; ends with the summary
table (CAM vs the pseudo masks vs the segmentation network).

examples:
  psa pipeline recipes/demo.yaml [key=value ...]
  psa pipeline recipes/demo.yaml --until eval_rw_crf
  psa pipeline recipes/demo.yaml random_walk.beta=4 --dry-run   # what would rerun, and why
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from ..config import Recipe
from .common import RichReporter, add_recipe_arguments, console, is_main_process, load_from_args, percent

HELP = "every step in order, skipping what is finished; the summary table"


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--until", metavar="STEP", help="stop after this step (e.g. eval_rw_crf)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print each step with run or skip and the reason (a changed key, changed labels, "
                             "missing outputs); run nothing")


def run(args) -> int:
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    if args.dry_run:
        from ..pipeline import left_out_message, plan, selected_steps, unscorable

        steps = plan(recipe, until=args.until)
        left_out = unscorable(recipe, selected_steps(recipe, args.until))
        if is_main_process():
            console.print(plan_table(steps, recipe))
            if left_out:
                console.print(escape(left_out_message(left_out)), highlight=False)
        return 0
    from ..pipeline import run as run_pipeline

    result = run_pipeline(recipe, RichReporter(), until=args.until)
    if is_main_process():
        console.print(summary_table(result.summary, recipe))
    return 0


def plan_table(steps, recipe: Recipe) -> Table:
    """What `psa pipeline` would do: each step, run or skip, and why."""
    table = Table(title=f"psa pipeline --dry-run — {escape(recipe.run.dir)}")
    table.add_column("step")
    table.add_column("action")
    table.add_column("why")
    for planned in steps:
        record = planned.step.record(recipe)
        if planned.done:
            action, why = "[dim]skip[/]", "finished with these inputs"
        elif planned.why:
            action, why = "[bold]run[/]", escape(planned.why)
        else:
            action = "[bold]run[/]"
            why = "unfinished: resumes" if record.exists() else "never ran: no outputs yet"
        table.add_row(escape(planned.step.name), action, why)
    if not steps:
        table.add_row("[dim]no step selected[/]", "", "")
    return table


def summary_table(rows: dict, recipe: Recipe) -> Table:
    """A scored row shows its mIoU; a per-image step nothing scored (no ground-truth masks)
    shows how many images it covered."""
    table = Table(title=f"psa pipeline — {escape(recipe.run.dir)}")
    table.add_column("stage")
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("mIoU %", justify="right")
    for label, row in rows.items():
        if "outputs" in row:
            table.add_row(escape(label), escape(row["split"]), str(row["outputs"]), "[dim]not scored[/]")
        else:
            table.add_row(escape(label), escape(str(row["split"])), str(row["images"]), percent(row["miou"]))
    if not rows:
        table.add_row("[dim]nothing ran yet[/]", "", "", "")
    return table
