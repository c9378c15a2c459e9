"""Multi-label classification scores of image-level predictions: per-class AP, mAP, F1."""

from __future__ import annotations

from typing import Any

import numpy as np

from .segmentation import _mean_or_none, _ratio, _to_numpy


def average_precision(scores: Any, positives: Any) -> float | None:
    """Average precision of one class: mean, over positives, of the precision at their score.

    Ties are resolved like scikit-learn: the precision at score ``s`` counts every sample
    scored ``>= s``. ``None`` if there is no positive.
    """
    s = _to_numpy(scores).astype(np.float64).reshape(-1)
    y = _to_numpy(positives).reshape(-1) > 0
    if s.shape != y.shape:
        raise ValueError(f"scores shape {s.shape} != targets shape {y.shape}")
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    all_sorted = np.sort(s)
    pos_sorted = np.sort(s[y])
    at = s[y]
    n_ge = s.size - np.searchsorted(all_sorted, at, side="left")
    pos_ge = n_pos - np.searchsorted(pos_sorted, at, side="left")
    return float(np.mean(pos_ge / n_ge))


def multilabel_scores(scores: Any, targets: Any, from_logits: bool = True, threshold: float = 0.5) -> dict:
    """Multi-label classification scores (image-level classifier validation).

    Args:
        scores: ``(N, C)`` logits (``from_logits=True``) or probabilities.
        targets: ``(N, C)`` multi-hot labels.
        from_logits: apply a sigmoid to ``scores`` before thresholding.
        threshold: probability above or at which a class is predicted.

    Returns:
        dict with ``mAP`` (mean AP over classes with at least one positive, ``None`` if none),
        ``ap`` (per-class list, ``None`` for classes without positives), ``f1`` (micro F1 over
        all (sample, class) decisions, ``None`` if there is neither a positive nor a prediction)
        and ``f1_macro`` (mean per-class F1 over classes with a positive or a prediction).
    """
    s = _to_numpy(scores).astype(np.float64)
    t = _to_numpy(targets)
    if s.ndim != 2 or s.shape != t.shape:
        raise ValueError(f"scores shape {tuple(s.shape)} and targets shape {tuple(t.shape)} "
                         "must be equal and (N, C)")
    t = t > 0.5 if t.dtype.kind == "f" else t > 0
    probs = 0.5 * (1.0 + np.tanh(0.5 * s)) if from_logits else s  # overflow-free sigmoid

    ap = [average_precision(s[:, k], t[:, k]) for k in range(s.shape[1])]
    defined = [a for a in ap if a is not None]

    pred = probs >= threshold
    tp = (pred & t).sum(axis=0)
    n_pred = pred.sum(axis=0)
    n_true = t.sum(axis=0)
    den = int(n_pred.sum() + n_true.sum())
    return {
        "mAP": float(np.mean(defined)) if defined else None,
        "ap": ap,
        "f1": 2.0 * float(tp.sum()) / den if den else None,
        "f1_macro": _mean_or_none(_ratio(2 * tp, n_pred + n_true)),
    }
