"""Finished runs side by side (e.g. the seeds of one recipe): each summary row per run, its
mean and standard deviation; a fully supervised run (seg.labels: gt) gets its own row.

examples:
  psa compare runs/msrc_s0 runs/msrc_s1 runs/msrc_s2
  psa compare runs/msrc_s* runs/msrc_gt_s* --json docs/results/msrc.json --markdown
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from .common import console

HELP = "finished runs side by side: per run, mean, sd (JSON, Markdown)"


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (their run.dir)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead")


def run(args) -> int:
    from ..compare import compare_runs
    from ..io import atomic_write_json

    comparison = compare_runs(args.runs)
    keys = list(dict.fromkeys(key for row in comparison.rows for key in row.values))
    header = ["stage", "split", *keys, "mean", "sd"]
    cells = [[row.name, row.split or "", *(_num(row.values.get(key)) for key in keys), _num(row.mean),
              "" if row.sd is None else f"±{row.sd:.1f}"] for row in comparison.rows]
    if args.markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
        lines += ["| " + " | ".join(row) + " |" for row in cells]
        console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)
    else:
        table = Table(title=f"mIoU % by {comparison.by[:-1]}")
        for column in header:
            table.add_column(escape(column), justify="left" if column in ("stage", "split") else "right")
        for row in cells:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)
    if args.json:
        atomic_write_json(args.json, comparison.as_dict())
        console.print(f"wrote {args.json}", markup=False)
    return 0


def _num(value) -> str:
    return "—" if value is None else f"{value:.1f}"
