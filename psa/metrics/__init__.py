"""Metrics: segmentation confusion matrices and their scores, the background-threshold sweep,
label quality, multi-label classification, instance mAP^r, boundary precision and recall.
Conventions in segmentation.py."""

from .classification import average_precision, multilabel_scores
from .edges import boundary_counts, class_edges
from .instances import instance_ap, mask_iou, voc_ap
from .segmentation import Confusion, confusion_matrix, label_quality, segmentation_scores
from .sweep import ThresholdSweep, threshold_grid

__all__ = ["Confusion", "ThresholdSweep", "average_precision", "boundary_counts", "class_edges",
           "confusion_matrix", "instance_ap", "label_quality", "mask_iou", "multilabel_scores",
           "segmentation_scores", "threshold_grid", "voc_ap"]
