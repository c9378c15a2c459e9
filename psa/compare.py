"""Several finished runs side by side (seeds of one recipe, a weak and a fully supervised
network): each summary row's value per run, its mean and its sample standard deviation.

A run is its `run.dir`: its `pipeline/summary.json` (the rows) and its `recipe.yaml` (its seed;
`seg.labels: gt` marks a fully supervised network, whose row is then its own). Runs are keyed by
seed when their seeds differ, else by their folder names. Values are mIoU in percent.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from .errors import PsaError
from .framework.registry import REGISTRY
from .io import read_json

FULL = "segmentation network (val, trained on the ground-truth masks)"


@dataclass
class Row:
    name: str
    kind: str  # cam | pseudo | bound | seg | full | other
    split: Optional[str]
    values: dict[str, float] = field(default_factory=dict)  # run key -> mIoU %

    @property
    def mean(self) -> Optional[float]:
        return round(statistics.mean(self.values.values()), 2) if self.values else None

    @property
    def sd(self) -> Optional[float]:
        return round(statistics.stdev(self.values.values()), 2) if len(self.values) > 1 else None

    def as_dict(self, by: str) -> dict:
        return {"name": self.name, "kind": self.kind, "split": self.split, by: self.values,
                "mean": self.mean, "sd": self.sd}


@dataclass
class Comparison:
    runs: list[Path]
    by: str  # "seeds" or "runs": what the values are keyed by
    rows: list[Row]

    def as_dict(self) -> dict:
        return {"runs": [str(run) for run in self.runs], "rows": [row.as_dict(self.by) for row in self.rows]}


def _run_info(run: Path) -> tuple[dict, dict]:
    summary = read_json(run / "pipeline" / "summary.json")
    if summary is None:
        raise PsaError(f"{run / 'pipeline' / 'summary.json'} not found or unreadable; run the pipeline for {run} first")
    try:
        recipe = yaml.safe_load((run / "recipe.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        recipe = {}
    return summary, recipe


def compare_runs(runs: list[Path]) -> Comparison:
    infos = [(run, *_run_info(run)) for run in runs]
    seeds = [str((recipe.get("run") or {}).get("seed", "")) for _, _, recipe in infos]
    by_seed = all(seeds) and len(set(seeds)) == len(seeds)
    kinds = {row.label: row.kind for _, row in REGISTRY.summary_rows()}
    order = list(kinds)
    rows: dict[str, Row] = {}
    for (run, summary, recipe), seed in zip(infos, seeds):
        key = seed if by_seed else run.name
        full = ((recipe.get("seg") or {}).get("labels") == "gt")
        for label, found in summary.items():
            if found.get("miou") is None:
                continue
            kind = kinds.get(label, "other")
            name = FULL if full and kind == "seg" else label
            row = rows.setdefault(name, Row(name, "full" if name == FULL else kind, found.get("split")))
            row.values[key] = round(100 * found["miou"], 2)
    ranked = sorted(rows.values(), key=lambda row: (order.index(row.name) if row.name in order else len(order),
                                                   row.name == FULL))
    return Comparison(list(runs), "seeds" if by_seed else "runs", ranked)
