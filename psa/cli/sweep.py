"""Rendering around `psa.sweep`: run every point through the pipeline, then the table,
sweep.csv, sweep.json, sweep.png (mIoU against each swept key) and TensorBoard's hparams."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from ..engine.report import Reporter
from ..io import atomic_write_json, atomic_write_text, save_image
from ..stages.pipeline import SUMMARY_ROWS, metrics_path, selected_steps
from ..provenance import remove_output
from ..sweep import plan_points, share_finished_steps, short_names
from ..viz import line_chart, side_by_side
from .common import is_main_process, percent
from .pipeline import run_pipeline

# (column, its short title, step, metric key): one per summary row of the pipeline
SHORT_TITLES = {"eval_cam": "CAM", "eval_cam_best": "CAM best bg", "eval_rw": "RW", "eval_rw_crf": "RW+dCRF",
                "eval_seg": "seg (val)"}
COLUMNS = tuple((column, SHORT_TITLES.get(column, label), step, key) for label, step, key in SUMMARY_ROWS
                for column in [step if key == "miou" else f"{step}_best"])


def run_sweep(recipe_path: str, items: list[str], reporter: Reporter, console: Console, until: str | None = None,
              folder: str | None = None) -> dict:
    base, where, points, axes = plan_points(recipe_path, items, folder)
    steps = selected_steps(base, until)
    sources = [Path(base.run.dir)] + [Path(p.recipe.run.dir) for p in points]
    main = is_main_process()
    rows = []
    for number, point in enumerate(points, 1):
        if main:
            console.rule(f"[bold]sweep point {number}/{len(points)}: {point.name}")
        shared = dict(share_finished_steps(point.recipe, sources, steps))
        if main:
            for step, source in shared.items():
                console.print(f"[dim]↪ {step}: shared with {source}[/]")
        ran: list[str] = []
        run_pipeline(point.recipe, reporter, console, until=until, ran=ran, table=False)
        rows.append({"point": point.name, "dir": point.recipe.run.dir,
                     **{key: _typed(value) for key, value in point.values.items()},
                     **_metrics(point.recipe), "ran": ran, "shared": {k: str(v) for k, v in shared.items()}})
    result = {"recipe": str(recipe_path), "base_run": base.run.dir, "until": until,
              "axes": {a.key: [_typed(v) for v in a.values] for a in axes}, "rows": rows}
    if main:
        keys = [a.key for a in axes]
        columns = [c for c in COLUMNS if any(row.get(c[0]) is not None for row in rows)]
        console.print(sweep_table(rows, keys, columns, where, short_names(axes)))
        atomic_write_json(where / "sweep.json", result)
        atomic_write_text(where / "sweep.csv", _csv(rows, keys, columns))
        if columns:
            save_image(where / "sweep.png", sweep_plot(rows, keys, columns[-1]))
            _hparams(where, rows, keys, columns)
        console.print(f"wrote {where / 'sweep.csv'}, sweep.json, sweep.png; "
                      f"tensorboard --logdir {where / 'tb'} (HPARAMS tab)")
    return result


def _typed(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _metrics(recipe) -> dict:
    found = {}
    for column, _, step, key in COLUMNS:
        path = metrics_path(recipe, step)
        if path.is_file():
            found[column] = json.loads(path.read_text()).get(key)
    return found


def sweep_table(rows: list[dict], keys: list[str], columns, where: Path, titles: dict | None = None) -> Table:
    table = Table(title=f"psa sweep — {where} (mIoU %)")
    for key in keys:
        table.add_column((titles or {}).get(key, key), justify="right")
    for _, title, _, _ in columns:
        table.add_column(title, justify="right")
    table.add_column("trained", justify="left")
    for row in rows:
        trained = [s for s in row["ran"] if s.startswith("train_")]
        table.add_row(*(str(row[k]) for k in keys), *(percent(row.get(c[0])) for c in columns),
                      ", ".join(trained) or "nothing")
    return table


def _csv(rows: list[dict], keys: list[str], columns) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["point", *keys, *(c[0] for c in columns), "dir"])
    for row in rows:
        writer.writerow([row["point"], *(row[k] for k in keys),
                         *("" if row.get(c[0]) is None else f"{row[c[0]]:.6f}" for c in columns), row["dir"]])
    return buffer.getvalue()


def sweep_plot(rows: list[dict], keys: list[str], column) -> "object":
    """One panel per swept key: the metric against that key, a line per setting of the others."""
    name, title = column[0], column[1]
    panels = []
    for key in keys:
        others = [k for k in keys if k != key]
        series: dict[str, list] = {}
        for row in rows:
            label = ", ".join(f"{k}={row[k]}" for k in others) or title
            value = row.get(name)
            series.setdefault(label, []).append((row[key], None if value is None else 100 * value))
        panels.append(line_chart(series, f"{title} against {key}", key))
    return side_by_side(panels)


def _hparams(where: Path, rows: list[dict], keys: list[str], columns) -> None:
    from torch.utils.tensorboard import SummaryWriter

    remove_output(where / "tb")  # the whole grid is written again: no duplicate runs after a rerun
    with SummaryWriter(log_dir=str(where / "tb")) as writer:
        for row in rows:
            params = {k: row[k] if isinstance(row[k], (int, float, str, bool)) else str(row[k]) for k in keys}
            metrics = {f"miou/{c[0]}": 100 * row[c[0]] for c in columns if row.get(c[0]) is not None}
            writer.add_hparams(params, metrics, run_name=row["point"])
