"""Rendering around `psa.sweep`: the table of every point's metrics."""

from __future__ import annotations

from rich.table import Table

from ..sweep import SweepResult
from .common import percent


def sweep_table(result: SweepResult) -> Table:
    table = Table(title=f"psa sweep — {result.where} (mIoU %)")
    for key in result.keys:
        table.add_column(result.titles.get(key, key), justify="right")
    for column in result.columns:
        table.add_column(column.title, justify="right")
    table.add_column("trained", justify="left")
    for row in result.rows:
        trained = [s for s in row["ran"] if s.startswith("train_")]
        table.add_row(*(str(row[k]) for k in result.keys), *(percent(row.get(c.name)) for c in result.columns),
                      ", ".join(trained) or "nothing")
    return table
