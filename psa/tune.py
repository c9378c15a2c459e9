"""`psa tune`: a grid of recipe keys that a registered tuner can vary on a finished run's
stored files (psa/framework/tuning.py), scored against the ground truth without rerunning
any step; one row per point, written to <run.dir>/tune/<tuner>.json. The grid is a sweep's
(`key=v1,v2` axes, `key=value` fixed overrides)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .engine.report import Reporter
from .errors import PsaError
from .framework.grid import combinations, parse_grid
from .framework.recipes import load_recipe
from .framework.registry import REGISTRY
from .framework.tuning import TuneOptions, Tuner
from .io import atomic_write_json
from .layout import RunLayout
from .provenance import covered


@dataclass
class TuneResult:
    tuner: Tuner
    keys: list[str]  # the grid's axes
    rows: list[dict]  # per point: its values, then the tuner's metrics
    where: Path  # the JSON written
    seconds: float


def find_tuner(keys: list[str]) -> Tuner:
    """The tuner whose keys cover every axis, or one line listing what each tuner varies."""
    tuners = REGISTRY.all(Tuner)
    for tuner in tuners:
        if all(covered(key, tuner.keys) for key in keys):
            return tuner
    offered = "; ".join(f"{t.name}: {', '.join(t.keys)}" for t in tuners)
    raise PsaError(f"no tuner varies {', '.join(keys)} together on a finished run; tuners: {offered}")


def run(recipe_path: str, grid: list[str], options: Optional[TuneOptions] = None,
        reporter: Optional[Reporter] = None) -> TuneResult:
    options, reporter = options or TuneOptions(), reporter or Reporter()
    axes, fixed = parse_grid(grid)
    base = load_recipe(recipe_path, fixed)
    tuner = find_tuner([axis.key for axis in axes])
    values = combinations(axes)
    points = [load_recipe(recipe_path, [*fixed, *(f"{k}={v}" for k, v in point.items())]) for point in values]
    started = time.perf_counter()
    metrics = tuner.run(base, points, options, reporter)
    rows = [{**point, **found} for point, found in zip(values, metrics)]
    where = RunLayout.of(base).tune / f"{tuner.name}.json"
    seconds = round(time.perf_counter() - started, 1)
    atomic_write_json(where, {"tuner": tuner.name, "every": options.every, "source": options.source,
                              "seconds": seconds, "rows": rows})
    return TuneResult(tuner, [axis.key for axis in axes], rows, where, seconds)
