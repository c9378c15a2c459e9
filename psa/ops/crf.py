"""Fully connected CRF (Krähenbühl & Koltun) through pydensecrf2, with the reference's
parameters and unary (§1.6)."""

from __future__ import annotations

import numpy as np

from ..config import CrfConfig
from ..errors import PsaError


def dense_crf(image: np.ndarray, probs: np.ndarray, cfg: CrfConfig | None = None) -> np.ndarray:
    """CRF marginals (C, H, W) float32 for an RGB image (H, W, 3) and class scores (C, H, W).

    `probs` are probabilities or non-negative scores: the unary is
    `pydensecrf.utils.unary_from_softmax(probs)` = -log(clip(probs, 1e-5, 1)), as the
    reference (no renormalisation). The image may have any dtype or memory layout; it is
    converted to C-contiguous uint8. Needs pydensecrf2 (`pip install pydensecrf2`)."""
    cfg = cfg or CrfConfig()
    image = np.asarray(image)
    probs = np.asarray(probs)
    if image.ndim != 3 or image.shape[2] != 3:
        raise PsaError(f"dense CRF image must be H×W×3 RGB, got shape {image.shape}")
    if probs.ndim != 3 or probs.shape[0] < 1 or probs.shape[1:] != image.shape[:2]:
        raise PsaError(f"dense CRF probs must be C×H×W matching the image {image.shape[:2]}, "
                       f"got shape {probs.shape}")
    if image.shape[0] * image.shape[1] == 0:
        raise PsaError(f"dense CRF image is empty: shape {image.shape}")
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError:
        raise PsaError("dense CRF needs pydensecrf2: pip install pydensecrf2") from None

    classes, height, width = probs.shape
    rgb = np.ascontiguousarray(image.astype(np.uint8))
    crf = dcrf.DenseCRF2D(width, height, classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    crf.addPairwiseGaussian(sxy=cfg.gaussian_sxy, compat=cfg.gaussian_compat)
    crf.addPairwiseBilateral(sxy=cfg.bilateral_sxy, srgb=cfg.bilateral_srgb, rgbim=rgb,
                             compat=cfg.bilateral_compat)
    q = crf.inference(int(cfg.iterations))
    return np.asarray(q, dtype=np.float32).reshape(classes, height, width)
