"""Evaluation metrics: segmentation confusion matrices and scores, multi-label classification.

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

from psa.constants import IGNORE_INDEX

__all__ = ["confusion_matrix", "segmentation_scores", "multilabel_scores", "average_precision"]


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


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every mask of `a` (N, H, W) with every mask of `b` (M, H, W) → (N, M)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def voc_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision envelope (the VOC 2010+ rule chainercv's instance AP uses)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], np.nan_to_num(precision), [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def instance_ap(predictions: Sequence[dict], ground_truth: Sequence[dict], num_classes: int,
                iou_threshold: float = 0.5) -> dict:
    """mAP^r over images: per class, predictions of every image sorted by score, each a true
    positive when its best-overlapping unmatched ground-truth instance of the class has IoU ≥
    `iou_threshold` (chainercv's eval_instance_segmentation_voc). Each image's `predictions`
    entry: masks (N, H, W) bool, classes (N,), scores (N,); `ground_truth`: masks, classes.
    Returns {"ap": [per class 1..num_classes-1, None without ground truth], "map"}."""
    aps = []
    for class_id in range(1, num_classes):
        scored, total = [], 0
        for image, (pred, gt) in enumerate(zip(predictions, ground_truth)):
            gt_masks = gt["masks"][np.asarray(gt["classes"]) == class_id]
            total += len(gt_masks)
            keep = np.asarray(pred["classes"]) == class_id
            masks, scores = pred["masks"][keep], np.asarray(pred["scores"], dtype=np.float64)[keep]
            ious = mask_iou(masks, gt_masks) if len(masks) and len(gt_masks) else np.zeros((len(masks), 0))
            scored += [(score, image, ious[k]) for k, score in enumerate(scores)]
        if total == 0:
            aps.append(None)
            continue
        scored.sort(key=lambda entry: -entry[0])
        matched: dict[int, set] = {}
        hits = []
        for _, image, ious in scored:
            best = int(np.argmax(ious)) if ious.size else -1
            hit = best >= 0 and ious[best] >= iou_threshold and best not in matched.setdefault(image, set())
            if hit:
                matched[image].add(best)
            hits.append(hit)
        tp = np.cumsum(hits, dtype=np.float64)
        fp = np.cumsum(~np.asarray(hits, dtype=bool), dtype=np.float64)
        aps.append(voc_ap(tp / np.maximum(tp + fp, 1e-12), tp / total) if hits else 0.0)
    valid = [ap for ap in aps if ap is not None]
    return {"ap": aps, "map": float(np.mean(valid)) if valid else None}
