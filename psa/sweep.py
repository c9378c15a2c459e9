"""Ablation sweeps: a grid of recipe overrides, each point its own run directory under one
sweep folder, sharing every stage whose provenance record it would reproduce.

Before a point runs, each of its steps looks for a finished output with exactly the record
the point's recipe asks for (psa/provenance.py) in the base run (the recipe's own run.dir) or
in another point, and links it (a symlink, never a copy). So a random_walk.beta x logt grid
trains nothing: the classifier, the CAM export and AffinityNet are the base run's. A killed
sweep rerun finds its finished steps by their records and computes only what is missing.

`run` returns every point's metrics and writes sweep.json, sweep.csv, sweep.png (mIoU
against each swept key) and TensorBoard's hparams into the sweep folder; the columns are the
summary rows the registry declares.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import yaml

from .config import Recipe
from .engine.report import Reporter, is_main_process
from .errors import PsaError
from .framework.grid import Axis, Point, combinations, parse_grid, short_names
from .framework.recipes import load_recipe
from .framework.registry import REGISTRY
from .io import atomic_write_json, atomic_write_text, save_image
from .layout import RunLayout, StageFolder
from .pipeline import metrics_of, run as run_pipeline, selected_steps
from .provenance import Provenance, matches, remove_output
from .viz import line_chart, side_by_side


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def default_folder(base: Recipe, axes: list[Axis]) -> Path:
    return RunLayout.of(base).sweeps / _safe("-".join(a.key for a in axes))


def plan_points(recipe_path: str, items: list[str], folder: str | None = None) -> tuple[Recipe, Path, list[Point], list[Axis]]:
    """The base recipe, the sweep folder and every point's recipe: all validated before
    anything runs, so a bad value stops the sweep with one line naming it."""
    axes, fixed = parse_grid(items)
    base = load_recipe(recipe_path, fixed)
    where = Path(folder) if folder else default_folder(base, axes)
    names = short_names(axes)
    points = []
    for values in combinations(axes):
        name = _safe(",".join(f"{names[k]}={v}" for k, v in values.items()))
        overrides = [*fixed, *(f"{k}={v}" for k, v in values.items()), f"run.dir={where / name}"]
        points.append(Point(name, values, load_recipe(recipe_path, overrides)))
    return base, where, points, axes


def at_dir(recipe: Recipe, run_dir: Path) -> Recipe:
    return dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, dir=str(run_dir)))


def _paths(recipe: Recipe, spec) -> list[Path]:
    """What a link shares: the record and the outputs (a record inside an output folder goes with it)."""
    record, outputs = spec.record(recipe), spec.outputs(recipe)
    inside = any(record != output and record.is_relative_to(output) for output in outputs)
    return [*([] if inside else [record]), *outputs]


def share_finished_steps(point: Recipe, sources: list[Path], steps) -> Iterator[tuple[str, Path]]:
    """Link into `point` every step output that one of the `sources` (run directories) finished
    with exactly the record the point asks for. Yields (step name, source run dir) per link."""
    prov = Provenance(point)
    for step in steps:
        expected = prov.record(step)
        if matches(step.spec.record(point), expected):
            continue  # the point has it already (its own, or linked by an earlier sweep run)
        for source in sources:
            there = at_dir(point, source)
            if Path(source).resolve() == Path(point.run.dir).resolve() or not matches(step.spec.record(there), expected):
                continue
            for src, dst in zip(_paths(there, step.spec), _paths(point, step.spec)):
                if dst.is_symlink() or dst.exists():
                    remove_output(dst)
                if src.exists():
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    dst.symlink_to(src.resolve(), target_is_directory=src.is_dir())
            yield step.name, Path(source)
            break


# ----------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Column:
    name: str  # in sweep.csv / sweep.json: the step, or step_<metric> for a second metric
    title: str  # short, for the table and the plot
    step: str
    key: str  # the metric in the step's metrics.json


def columns() -> list[Column]:
    """One per summary row of the registry."""
    return [Column(row.column(step.name), row.title, step.name, row.key) for step, row in REGISTRY.summary_rows()]


@dataclass
class SweepResult:
    where: Path  # the sweep folder
    keys: list[str]  # the swept keys
    titles: dict[str, str]  # their short names
    columns: list[Column]  # the columns with at least one value
    rows: list[dict]  # per point: point, dir, the swept values, column values, ran, shared
    result: dict  # what sweep.json holds


def run(recipe_path: str, items: list[str], reporter: Optional[Reporter] = None, until: Optional[str] = None,
        folder: Optional[str] = None) -> SweepResult:
    """Run every point through the pipeline (sharing finished steps), then write the outputs."""
    reporter = reporter or Reporter()
    base, where, points, axes = plan_points(recipe_path, items, folder)
    steps = selected_steps(base, until)
    sources = [Path(base.run.dir)] + [Path(p.recipe.run.dir) for p in points]
    all_columns = columns()
    rows = []
    for number, point in enumerate(points, 1):
        reporter.log(f"sweep point {number}/{len(points)}: {point.name}")
        shared = dict(share_finished_steps(point.recipe, sources, steps))
        for step, source in shared.items():
            reporter.log(f"{step}: shared with {source}")
        outcome = run_pipeline(point.recipe, reporter, until=until)
        found = {}
        for column in all_columns:
            metrics = metrics_of(point.recipe, REGISTRY.get(column.step))
            if metrics is not None:
                found[column.name] = metrics.get(column.key)
        rows.append({"point": point.name, "dir": point.recipe.run.dir,
                     **{key: _typed(value) for key, value in point.values.items()},
                     **found, "ran": outcome.ran, "shared": {k: str(v) for k, v in shared.items()}})
    result = {"recipe": str(recipe_path), "base_run": base.run.dir, "until": until,
              "axes": {a.key: [_typed(v) for v in a.values] for a in axes}, "rows": rows}
    keys = [a.key for a in axes]
    used = [c for c in all_columns if any(row.get(c.name) is not None for row in rows)]
    if is_main_process():
        atomic_write_json(where / "sweep.json", result)
        atomic_write_text(where / "sweep.csv", _csv(rows, keys, used))
        if used:
            save_image(where / "sweep.png", sweep_plot(rows, keys, used[-1]))
            _hparams(where, rows, keys, used)
    return SweepResult(where, keys, short_names(axes), used, rows, result)


def _typed(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _csv(rows: list[dict], keys: list[str], used: list[Column]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["point", *keys, *(c.name for c in used), "dir"])
    for row in rows:
        writer.writerow([row["point"], *(row[k] for k in keys),
                         *("" if row.get(c.name) is None else f"{row[c.name]:.6f}" for c in used), row["dir"]])
    return buffer.getvalue()


def sweep_plot(rows: list[dict], keys: list[str], column: Column):
    """One panel per swept key: the metric against that key, a line per setting of the others."""
    panels = []
    for key in keys:
        others = [k for k in keys if k != key]
        series: dict[str, list] = {}
        for row in rows:
            label = ", ".join(f"{k}={row[k]}" for k in others) or column.title
            value = row.get(column.name)
            series.setdefault(label, []).append((row[key], None if value is None else 100 * value))
        panels.append(line_chart(series, f"{column.title} against {key}", key))
    return side_by_side(panels)


def _hparams(where: Path, rows: list[dict], keys: list[str], used: list[Column]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    board = StageFolder(where).tensorboard
    remove_output(board)  # the whole grid is written again: no duplicate runs after a rerun
    with SummaryWriter(log_dir=str(board)) as writer:
        for row in rows:
            params = {k: row[k] if isinstance(row[k], (int, float, str, bool)) else str(row[k]) for k in keys}
            metrics = {f"miou/{c.name}": 100 * row[c.name] for c in used if row.get(c.name) is not None}
            writer.add_hparams(params, metrics, run_name=row["point"])
