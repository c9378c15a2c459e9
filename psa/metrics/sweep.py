"""The background-threshold sweep of CAM predictions: one confusion matrix per threshold."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from .segmentation import confusion_matrix, segmentation_scores


def threshold_grid(start: float, stop: float, step: float) -> list[float]:
    """start, start + step, ..., stop (inclusive), rounded so that 0.05 + 0.05 stays 0.1."""
    count = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 6) for i in range(count)]


class ThresholdSweep:
    """Confusion matrices of one prediction rule at several thresholds, summed over images."""

    def __init__(self, thresholds: Sequence[float], num_classes: int):
        self.thresholds = list(thresholds)
        self.num_classes = num_classes
        self.matrices = np.zeros((len(self.thresholds), num_classes, num_classes + 1), dtype=np.int64)

    def add(self, predict: Callable[[float], Any], gt: Any) -> None:
        """`predict(threshold)` → the label map of this image at that threshold."""
        for t, threshold in enumerate(self.thresholds):
            self.matrices[t] += confusion_matrix(predict(threshold), gt, self.num_classes)

    def reduce(self, combine) -> None:
        """`combine(matrices)` → the matrices summed over processes."""
        self.matrices = combine(self.matrices)

    def table(self, class_names: Sequence[str]) -> dict[float, Optional[float]]:
        """{threshold: mIoU}."""
        return {t: segmentation_scores(m, class_names)["miou"] for t, m in zip(self.thresholds, self.matrices)}

    def best(self, class_names: Sequence[str]) -> Optional[float]:
        """The threshold of the highest mIoU (the first of equals); None without thresholds."""
        table = self.table(class_names)
        return max(table, key=lambda t: -1 if table[t] is None else table[t]) if table else None
