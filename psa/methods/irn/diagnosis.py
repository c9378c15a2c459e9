"""IRN's part of the diagnosis: its boundary maps (written by the boundary walk) against the
ground truth's class edges at stride 4, with one cell of tolerance: precision and recall."""

from __future__ import annotations

import numpy as np

from ...config import Recipe
from ...framework.diagnosis import DiagnosedImage, Finding, Table
from ...io import read_label_png
from ...metrics import boundary_counts
from .layout import walk_folders

THRESHOLD = 0.5


class BoundaryProbe:
    def __init__(self, recipe: Recipe):
        self.folder = walk_folders(recipe)["boundary"]
        self.counts = np.zeros(4, dtype=np.int64)

    def add(self, seen: DiagnosedImage) -> None:
        path = self.folder / f"{seen.item.image_id}.png"
        if path.is_file():
            self.counts += boundary_counts(read_label_png(path, "boundary map") / 255.0, seen.gt, THRESHOLD)

    def finish(self) -> Finding:
        near_edge, predicted, found, edges = self.counts.tolist()
        if not edges:
            return Finding({"boundary": None})
        boundary = {"precision": near_edge / predicted if predicted else None,
                    "recall": found / edges if edges else None, "edge_cells": edges, "threshold": THRESHOLD}
        table = Table(f"IRN's boundary map vs ground-truth class edges (stride 4, p > {THRESHOLD}, one cell of "
                      "tolerance)", ["precision %", "recall %", "edge cells"],
                      [[_pct(boundary["precision"]), _pct(boundary["recall"]), str(edges)]])
        return Finding({"boundary": boundary}, tables=[table])


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def open_probe(recipe: Recipe, classes: list[str], device) -> BoundaryProbe | None:
    """Only where the boundary walk wrote its maps."""
    folder = walk_folders(recipe)["boundary"]
    return BoundaryProbe(recipe) if folder.is_dir() else None
