"""Which stage holds the pseudo masks back? Bounds for a finished run (after the CAM export;
each method's rows once it has run): CAM mIoU at the recipe's and the best threshold, the
confident labels' precision and coverage, the classifier's per-class AP, each method's probe
(the walk over learned and ground-truth affinities, IRN's boundary map), and every
pseudo-mask source's evaluations.

examples:
  psa diagnose recipes/coco_voc_mini.yaml [random_walk.logt=6 ...]
"""

from __future__ import annotations

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from .common import RichReporter, add_recipe_arguments, console, load_from_args, percent

HELP = "which stage holds the pseudo masks back (bounds, labels, classifier)"


def add_arguments(parser) -> None:
    add_recipe_arguments(parser)
    parser.add_argument("--split", help="split to diagnose (default: data.eval_split)")


def run(args) -> int:
    recipe = load_from_args(args)
    if recipe is None:
        return 0
    from ..framework.diagnosis import diagnose
    from ..layout import RunLayout

    report = diagnose(recipe, split=args.split, reporter=RichReporter())
    console.print(diagnose_tables(report))
    console.print(f"[dim]{escape(str(RunLayout.of(recipe).diagnose / 'diagnose.json'))}[/]")
    return 0


def diagnose_tables(report: dict) -> Group:
    where = f"{report['split']} ({report['images']} images"
    where += ", the training images)" if report["split_is_training_data"] else ")"
    summary = Table(title=f"diagnosis — {escape(where)}")
    summary.add_column("stage")
    summary.add_column("mIoU %", justify="right")
    for row, value in report["rows"]:
        summary.add_row(escape(row), percent(value))

    parts = [summary]
    labels = report["confident_labels"]
    if labels is not None:
        table = Table(title="confident labels (what AffinityNet and IRN learn from) vs ground truth")
        for column in ("pixels", "precision %", "coverage %"):
            table.add_column(column, justify="left" if column == "pixels" else "right")
        for name, prefix in (("all", ""), ("background", "bg_"), ("objects", "fg_")):
            table.add_row(name, percent(labels[f"{prefix}precision"]), percent(labels[f"{prefix}coverage"]))
        parts.append(table)
    for found in report["tables"]:
        table = Table(title=escape(found["title"]))
        for position, column in enumerate(found["columns"]):
            table.add_column(escape(column), justify="left" if position == 0 else "right")
        for row in found["rows"]:
            table.add_row(*(escape(str(cell)) for cell in row))
        parts.append(table)

    per_class = Table(title=f"per class — classifier mAP {percent(report['classifier']['mAP'])}")
    columns = [("AP %", report["classifier"]["ap"]), *report["iou"].items()]
    per_class.add_column("class")
    for title, _ in columns:
        per_class.add_column(escape(title), justify="right")
    for name in report["iou"]["IoU CAM"]:
        values = [values.get(name) for _, values in columns]
        if all(v is None for v in values):
            continue  # a class absent from ground truth, prediction and labels
        per_class.add_row(escape(name), *(percent(v) for v in values))
    parts.append(per_class)
    parts.append(f"[bold]bottleneck:[/] {escape(report['bottleneck'])}")
    return Group(*parts)
