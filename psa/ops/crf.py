"""Fully connected CRF (Krähenbühl & Koltun) through pydensecrf2, with the reference's
parameters and unary (§1.6)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..config import CrfConfig
from ..errors import PsaError


def dense_crf(image: np.ndarray, probs: np.ndarray, cfg: CrfConfig | None = None) -> np.ndarray:
    """CRF marginals (C, H, W) float32 for an RGB image (H, W, 3) and class scores (C, H, W).

    `probs` are probabilities or non-negative scores: the unary is
    `pydensecrf.utils.unary_from_softmax(probs)` = -log(clip(probs, 1e-5, 1)), as the
    reference (no renormalisation). The image may have any dtype or memory layout; it is
    converted to C-contiguous uint8. Needs pydensecrf2 (`pip install pydensecrf2`)."""
    return dense_crfs(image, [probs], cfg)[0]


def dense_crfs(image: np.ndarray, scores: Sequence[np.ndarray], cfg: CrfConfig | None = None) -> list[np.ndarray]:
    """`dense_crf` of one image for each of several score maps with the same number of classes
    (the confident labels' low- and high-alpha CRFs): the pairwise terms, whose lattice
    construction is a fifth of a CRF's time, are built once. Each result equals its own
    `dense_crf` exactly (the unary only enters the mean-field iterations)."""
    cfg = cfg or CrfConfig()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise PsaError(f"dense CRF image must be H×W×3 RGB, got shape {image.shape}")
    if image.shape[0] * image.shape[1] == 0:
        raise PsaError(f"dense CRF image is empty: shape {image.shape}")
    scores = [np.asarray(probs) for probs in scores]
    for probs in scores:
        if probs.ndim != 3 or probs.shape[0] < 1 or probs.shape[1:] != image.shape[:2]:
            raise PsaError(f"dense CRF probs must be C×H×W matching the image {image.shape[:2]}, "
                           f"got shape {probs.shape}")
        if probs.shape[0] != scores[0].shape[0]:
            raise PsaError(f"dense CRFs of one image need the same number of classes, got "
                           f"{scores[0].shape[0]} and {probs.shape[0]}")
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError:
        raise PsaError("dense CRF needs pydensecrf2: pip install pydensecrf2") from None
    if not scores:
        return []

    classes, height, width = scores[0].shape
    rgb = np.ascontiguousarray(image.astype(np.uint8))
    crf = dcrf.DenseCRF2D(width, height, classes)
    crf.addPairwiseGaussian(sxy=cfg.gaussian_sxy, compat=cfg.gaussian_compat)
    crf.addPairwiseBilateral(sxy=cfg.bilateral_sxy, srgb=cfg.bilateral_srgb, rgbim=rgb,
                             compat=cfg.bilateral_compat)
    marginals = []
    for probs in scores:
        crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
        q = crf.inference(int(cfg.iterations))
        marginals.append(np.asarray(q, dtype=np.float32).reshape(classes, height, width))
    return marginals


def dense_crf_labels(image: np.ndarray, labels: np.ndarray, num_labels: int, cfg) -> np.ndarray:
    """IRN's label CRF (`misc/imutils.crf_inference_label`): the unary says each pixel's label
    with probability `cfg.gt_prob` (pydensecrf's `unary_from_labels`, no unsure pixels) →
    the CRF's argmax (H, W) int64. `cfg` has iterations, gt_prob, gaussian_sxy/compat and
    bilateral_sxy/srgb/compat (the irn method's LabelCrfConfig)."""
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.ndim != 3 or image.shape[2] != 3 or labels.shape != image.shape[:2]:
        raise PsaError(f"label CRF needs an H×W×3 image and an H×W label map, got {image.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_labels):
        raise PsaError(f"label CRF labels must lie in 0..{num_labels - 1}, got {labels.min()}..{labels.max()}")
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_labels
    except ImportError:
        raise PsaError("dense CRF needs pydensecrf2: pip install pydensecrf2") from None

    height, width = labels.shape
    crf = dcrf.DenseCRF2D(width, height, num_labels)
    unary = unary_from_labels(labels.astype(np.int64), num_labels, gt_prob=cfg.gt_prob, zero_unsure=False)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=cfg.gaussian_sxy, compat=cfg.gaussian_compat)
    crf.addPairwiseBilateral(sxy=cfg.bilateral_sxy, srgb=cfg.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image.astype(np.uint8)), compat=cfg.bilateral_compat)
    q = crf.inference(int(cfg.iterations))
    return np.asarray(q).reshape(num_labels, height, width).argmax(axis=0)
