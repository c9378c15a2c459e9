"""Rendering around `psa.pipeline`: a line per step and the final comparison table."""

from __future__ import annotations

from rich.table import Table

from ..config import Recipe
from .common import percent


def summary_table(rows: dict, recipe: Recipe) -> Table:
    table = Table(title=f"psa pipeline — {recipe.run.dir}")
    table.add_column("stage")
    table.add_column("split")
    table.add_column("mIoU %", justify="right")
    for label, row in rows.items():
        table.add_row(label, f"{row['split']} ({row['images']})", percent(row["miou"]))
    return table
