"""Rendering around `psa.pipeline`: a line per step and the final comparison table."""

from __future__ import annotations

from rich.table import Table

from ..config import Recipe
from .common import percent


def summary_table(rows: dict, recipe: Recipe) -> Table:
    """A scored row shows its mIoU; a per-image step nothing scored (no ground-truth masks)
    shows how many images it covered."""
    table = Table(title=f"psa pipeline — {recipe.run.dir}")
    table.add_column("stage")
    table.add_column("split")
    table.add_column("images", justify="right")
    table.add_column("mIoU %", justify="right")
    for label, row in rows.items():
        if "outputs" in row:
            table.add_row(label, row["split"], str(row["outputs"]), "[dim]not scored[/]")
        else:
            table.add_row(label, row["split"], str(row["images"]), percent(row["miou"]))
    if not rows:
        table.add_row("[dim]nothing ran yet[/]", "", "", "")
    return table
