"""Rendering around `psa.stages.pipeline`: a line per step and the final comparison table."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.table import Table

from ..config import Recipe
from ..engine.report import Reporter
from ..io import atomic_write_json
from ..stages.pipeline import SUMMARY_ROWS, metrics_path, plan
from .common import is_main_process, percent


def run_pipeline(recipe: Recipe, reporter: Reporter, console: Console, until: str | None = None,
                 ran: list | None = None, table: bool = True) -> dict:
    """Run the steps whose records do not match the recipe (`ran` collects their names)."""
    main = is_main_process()
    for planned in plan(recipe, until):
        step = planned.step
        if planned.done:
            if main:
                console.print(f"[dim]✓ {step.name}: done already ({step.output(recipe)})[/]")
            continue
        if main:
            console.rule(f"[bold]{step.name}" + (f" [yellow](rerun: {planned.why})[/]" if planned.why else ""))
        started = time.perf_counter()
        step.run(recipe, reporter)
        if ran is not None:
            ran.append(step.name)
        if main:
            console.print(f"[green]✓ {step.name}[/] in {time.perf_counter() - started:.1f} s")
    summary = summary_rows(recipe)
    if main:
        if table:
            console.print(summary_table(summary, recipe))
        atomic_write_json(recipe.stage_dir("pipeline") / "summary.json", summary)
    return summary


def summary_rows(recipe: Recipe) -> dict:
    rows = {}
    for label, step_name, key in SUMMARY_ROWS:
        path = metrics_path(recipe, step_name)
        if path.is_file():
            metrics = json.loads(path.read_text())
            rows[label] = {"miou": metrics.get(key), "split": metrics.get("split"), "images": metrics.get("images")}
    return rows


def summary_table(rows: dict, recipe: Recipe) -> Table:
    table = Table(title=f"psa pipeline — {recipe.run.dir}")
    table.add_column("stage")
    table.add_column("split")
    table.add_column("mIoU %", justify="right")
    for label, row in rows.items():
        table.add_row(label, f"{row['split']} ({row['images']})", percent(row["miou"]))
    return table
