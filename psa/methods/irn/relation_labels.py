"""IRN's relation labels (`step/cam_to_ir_label.py`): from the CAMs, confident foreground
where a class beats a background plane of `fg_threshold` after the label CRF, confident
background where the background plane of `bg_threshold` wins after it, ignored elsewhere."""

from __future__ import annotations

import numpy as np

from ...constants import IGNORE_INDEX
from ...ops.cam import class_lookup
from ...ops.crf import dense_crf_labels


def relation_labels(image: np.ndarray, cams: np.ndarray, class_ids: np.ndarray, fg_threshold: float,
                    bg_threshold: float, crf) -> np.ndarray:
    """uint8 (H, W): class id where confidently foreground, 0 where confidently background,
    IGNORE_INDEX elsewhere. `cams` (K, H, W) are max-normalised CAMs of the image's classes."""
    lookup = class_lookup(class_ids)
    decided = []
    for threshold in (fg_threshold, bg_threshold):
        plane = np.full((1, *cams.shape[1:]), threshold, dtype=np.float32)
        winner = np.concatenate([plane, cams.astype(np.float32)]).argmax(axis=0)
        decided.append(lookup[dense_crf_labels(image, winner, len(lookup), crf)])
    fg, bg = decided
    label = fg.copy()
    label[fg == 0] = IGNORE_INDEX
    label[(fg == 0) & (bg == 0)] = 0
    return label
