"""Instance segmentation: mask IoU, the VOC AP envelope and mAP^r over images."""

from __future__ import annotations

from typing import Sequence

import numpy as np


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
