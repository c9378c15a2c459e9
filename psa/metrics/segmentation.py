"""Segmentation scores: confusion matrices, their scores, and their running sums.

Conventions
-----------
* ``confusion_matrix`` returns an ``int64`` array of shape ``(C, C + 1)``: rows are ground-truth
  classes, columns ``0..C-1`` are predicted classes and the extra last column counts pixels whose
  *prediction* is outside ``0..C-1`` (e.g. 255 "uncertain" in a pseudo label). Such pixels are a
  miss for their ground-truth class (they lower its recall and IoU) but are a false positive for
  no class. Matrices of successive images are simply summed.
* Pixels whose ground truth is ``ignore_index`` are not counted at all.
* ``segmentation_scores`` also accepts a plain square ``(C, C)`` matrix.
* Every score dictionary is JSON-serialisable: undefined values are ``None``, never NaN.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..constants import IGNORE_INDEX


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of a numpy array, torch tensor (any device) or array-like."""
    if isinstance(x, np.ndarray):
        return x
    detach = getattr(x, "detach", None)
    if callable(detach):  # torch.Tensor, without importing torch here
        return detach().cpu().numpy()
    return np.asarray(x)


def confusion_matrix(pred: Any, gt: Any, num_classes: int, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Pixel confusion matrix of a prediction against a ground truth.

    Args:
        pred: predicted class ids, numpy array or torch tensor of any shape.
        gt: ground-truth class ids, same shape as ``pred``.
        num_classes: number of classes ``C``.
        ignore_index: ground-truth value whose pixels are skipped.

    Returns:
        ``int64`` array of shape ``(C, C + 1)``; ``m[g, p]`` counts pixels with ground truth ``g``
        and prediction ``p``; ``m[g, C]`` counts pixels with ground truth ``g`` and a prediction
        outside ``0..C-1``.

    Raises:
        ValueError: shapes differ, ``num_classes < 1``, or the ground truth holds a value outside
            ``0..C-1`` other than ``ignore_index``.
    """
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    p = _to_numpy(pred)
    g = _to_numpy(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} != ground-truth shape {tuple(g.shape)}")
    p = p.reshape(-1).astype(np.int64, copy=False)
    g = g.reshape(-1).astype(np.int64, copy=False)

    keep = g != ignore_index
    p, g = p[keep], g[keep]
    bad_gt = (g < 0) | (g >= num_classes)
    if bad_gt.any():
        values = np.unique(g[bad_gt])[:5].tolist()
        raise ValueError(f"ground truth holds class ids {values} outside 0..{num_classes - 1} "
                         f"(and not ignore_index={ignore_index})")
    p = np.where((p < 0) | (p >= num_classes), num_classes, p)  # invalid prediction column
    width = num_classes + 1
    counts = np.bincount(g * width + p, minlength=num_classes * width)
    return counts.reshape(num_classes, width).astype(np.int64, copy=False)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den == 0."""
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _opt(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _mean_or_none(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def segmentation_scores(conf: Any, class_names: Sequence[str]) -> dict:
    """Scores of a (summed) confusion matrix.

    Args:
        conf: ``(C, C + 1)`` matrix from :func:`confusion_matrix`, or a square ``(C, C)`` one.
        class_names: ``C`` names, in class-id order.

    Returns:
        dict with
          * ``miou``: mean IoU over classes present in ground truth or prediction (absent classes
            are left out), ``None`` if there is none;
          * ``miou_present_gt``: mean IoU over classes with ground-truth pixels only;
          * ``iou``, ``precision``, ``recall``, ``f1``: ``{name: float | None}`` (``None`` where
            the denominator is 0); IoU = TP / (GT + Pred - TP), F1 = 2 TP / (GT + Pred);
          * ``pixel_acc``: correct / counted pixels; ``mean_acc``: mean recall over classes with
            ground truth; ``num_pixels``: counted pixels; ``present``: names with ground truth.
    """
    m = _to_numpy(conf)
    if m.ndim != 2:
        raise ValueError(f"confusion matrix must be 2-D, got shape {tuple(m.shape)}")
    c = m.shape[0]
    if m.shape[1] not in (c, c + 1):
        raise ValueError(f"confusion matrix shape {tuple(m.shape)} is neither (C, C) nor (C, C+1)")
    names = [str(n) for n in class_names]
    if len(names) != c:
        raise ValueError(f"{len(names)} class names for a confusion matrix with {c} classes")
    m = m.astype(np.int64, copy=False)

    square = m[:, :c]
    tp = np.diag(square)
    gt = m.sum(axis=1)            # includes out-of-range predictions: a miss
    pr = square.sum(axis=0)       # out-of-range predictions are a false positive for nobody
    iou = _ratio(tp, gt + pr - tp)
    precision = _ratio(tp, pr)
    recall = _ratio(tp, gt)
    f1 = _ratio(2 * tp, gt + pr)
    total = int(m.sum())

    def per_class(values: np.ndarray) -> dict[str, float | None]:
        return {name: _opt(v) for name, v in zip(names, values)}

    has_gt = gt > 0
    return {
        "miou": _mean_or_none(iou),
        "miou_present_gt": _mean_or_none(iou[has_gt]),
        "iou": per_class(iou),
        "precision": per_class(precision),
        "recall": per_class(recall),
        "f1": per_class(f1),
        "pixel_acc": float(tp.sum()) / total if total else None,
        "mean_acc": _mean_or_none(recall[has_gt]),
        "num_pixels": total,
        "present": [name for name, h in zip(names, has_gt) if h],
    }


class Confusion:
    """A confusion matrix summed over images, then over processes (`reduce`)."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def add(self, pred: Any, gt: Any) -> None:
        self.matrix += confusion_matrix(pred, gt, self.num_classes)

    def reduce(self, combine) -> None:
        """`combine(matrix)` → the matrix summed over processes."""
        self.matrix = combine(self.matrix)

    def scores(self, class_names: Sequence[str]) -> dict:
        return segmentation_scores(self.matrix, class_names)


def label_quality(conf: Any) -> dict:
    """Precision and coverage of a label map with 255 = no label, from its confusion matrix
    (the last column counts unlabelled pixels); overall, on background and on objects."""
    conf = _to_numpy(conf)
    square = conf[:, :-1]

    def part(rows: slice, cols: slice, correct: float) -> dict:
        labelled, total = square[:, cols].sum(), conf[rows].sum()
        region = square[rows].sum()
        return {"precision": correct / labelled if labelled else None,
                "coverage": region / total if total else None}

    trace = float(np.trace(square))
    overall = part(slice(None), slice(None), trace)
    background = part(slice(0, 1), slice(0, 1), float(square[0, 0]))
    objects = part(slice(1, None), slice(1, None), trace - float(square[0, 0]))
    return {"precision": overall["precision"], "coverage": overall["coverage"],
            "bg_precision": background["precision"], "bg_coverage": background["coverage"],
            "fg_precision": objects["precision"], "fg_coverage": objects["coverage"]}
