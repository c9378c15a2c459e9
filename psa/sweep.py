"""Ablation sweeps: a grid of recipe overrides, each point its own run directory under one
sweep folder, sharing every stage whose provenance record it would reproduce.

Before a point runs, each of its steps looks for a finished output with exactly the record
the point's recipe asks for (psa/provenance.py) in the base run (the recipe's own run.dir) or
in another point, and links it (a symlink, never a copy). So a random_walk.beta x logt grid
trains nothing: the classifier, the CAM export and AffinityNet are the base run's. A killed
sweep rerun finds its finished steps by their records and computes only what is missing.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .config import Recipe, load_recipe
from .errors import PsaError
from .provenance import Provenance, matches, remove_output


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[str, ...]  # as typed: each becomes a `key=value` override


@dataclass(frozen=True)
class Point:
    name: str  # its folder under the sweep folder, e.g. "beta=4,logt=2"
    values: dict  # {key: value as typed}
    recipe: Recipe


def split_values(text: str) -> list[str]:
    """'4,8' → ['4', '8']; commas inside brackets belong to a value: '[1,0.5],[1]' → 2 values."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [v.strip() for v in values]


def parse_grid(items: list[str]) -> tuple[list[Axis], list[str]]:
    """`key=v1,v2` items are axes; `key=value` items (one value) are fixed overrides."""
    axes, fixed = [], []
    for item in items:
        if "=" not in item:
            raise PsaError(f"sweep argument {item!r} must look like key=v1,v2 (or key=value)")
        key, text = item.split("=", 1)
        values = split_values(text)
        if len(values) > 1:
            if any(not v for v in values):
                raise PsaError(f"sweep axis {key}: empty value in {text!r}")
            if len(set(values)) != len(values):
                raise PsaError(f"sweep axis {key}: a value is repeated in {text!r}")
            if key in {a.key for a in axes}:
                raise PsaError(f"sweep axis {key} is given twice")
            axes.append(Axis(key.strip(), tuple(values)))
        else:
            fixed.append(item)
    if not axes:
        raise PsaError("a sweep needs at least one axis: key=v1,v2 (e.g. random_walk.beta=4,8)")
    return axes, fixed


def short_names(axes: list[Axis]) -> dict[str, str]:
    """Short names for folder names: the last part of each key, unless two axes share it."""
    short = {a.key: a.key.rsplit(".", 1)[-1] for a in axes}
    if len(set(short.values())) < len(short):
        return {a.key: a.key for a in axes}
    return short


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def default_folder(base: Recipe, axes: list[Axis]) -> Path:
    return Path(base.run.dir) / "sweeps" / _safe("-".join(a.key for a in axes))


def plan_points(recipe_path: str, items: list[str], folder: str | None = None) -> tuple[Recipe, Path, list[Point], list[Axis]]:
    """The base recipe, the sweep folder and every point's recipe: all validated before
    anything runs, so a bad value stops the sweep with one line naming it."""
    axes, fixed = parse_grid(items)
    base = load_recipe(recipe_path, fixed)
    where = Path(folder) if folder else default_folder(base, axes)
    names = short_names(axes)
    points = []
    for combo in itertools.product(*(a.values for a in axes)):
        values = dict(zip((a.key for a in axes), combo))
        name = _safe(",".join(f"{names[k]}={v}" for k, v in values.items()))
        overrides = [*fixed, *(f"{k}={v}" for k, v in values.items()), f"run.dir={where / name}"]
        points.append(Point(name, values, load_recipe(recipe_path, overrides)))
    return base, where, points, axes


def at_dir(recipe: Recipe, run_dir: Path) -> Recipe:
    return dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, dir=str(run_dir)))


def _paths(recipe: Recipe, spec) -> list[Path]:
    return [spec.record(recipe), *spec.outputs(recipe)]


def share_finished_steps(point: Recipe, sources: list[Path], steps) -> Iterator[tuple[str, Path]]:
    """Link into `point` every step output that one of the `sources` (run directories) finished
    with exactly the record the point asks for. Yields (step name, source run dir) per link."""
    prov = Provenance(point)
    for step in steps:
        expected = prov.expected(step.name)
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
