"""dense_crf vs pydensecrf called directly, and vs a naive exact dense CRF written here."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from psa.config import CrfConfig
from psa.errors import PsaError
from psa.ops import dense_crf
from psa.ops.crf import dense_crfs

pydensecrf = pytest.importorskip("pydensecrf.densecrf")


def scene(seed, height=24, width=24, classes=3, noise=1.2):
    """A piecewise-constant colour image (`classes` regions + pixel noise), its region map, and
    noisy class probabilities whose argmax is wrong on a good share of the pixels."""
    rng = np.random.default_rng(seed)
    regions = np.zeros((height, width), np.int64)
    regions[:, width // 2:] = 1
    if classes > 2:
        regions[height // 2:, : width // 3] = 2
    # well-separated colours (an ambiguous palette makes the CRF flip whole regions)
    palette = np.array([[200, 40, 40], [40, 180, 60], [50, 60, 210], [220, 200, 60]])[:classes]
    palette = palette[rng.permutation(classes)] + rng.integers(-25, 26, (classes, 3))
    image = palette[regions] + rng.normal(0, 8, (height, width, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    logits = np.eye(classes)[regions].transpose(2, 0, 1) + noise * rng.normal(size=(classes, height, width))
    probs = np.exp(logits) / np.exp(logits).sum(0, keepdims=True)
    return image, regions, probs.astype(np.float32)


def direct(image, probs, cfg):
    import pydensecrf.densecrf as dcrf
    from pydensecrf.utils import unary_from_softmax

    classes, height, width = probs.shape
    crf = dcrf.DenseCRF2D(width, height, classes)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs)))
    crf.addPairwiseGaussian(sxy=cfg.gaussian_sxy, compat=cfg.gaussian_compat)
    crf.addPairwiseBilateral(sxy=cfg.bilateral_sxy, srgb=cfg.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image), compat=cfg.bilateral_compat)
    return np.array(crf.inference(cfg.iterations)).reshape(classes, height, width)


def naive_dense_crf(image, probs, cfg):
    """Exact fully connected CRF (Krähenbühl & Koltun), O(N²): Gaussian kernels on
    (x, y)/sxy and (x, y)/sxy + RGB/srgb, NORMALIZE_SYMMETRIC (K → D^-½ K D^-½, D = row sums),
    Potts compatibility, mean-field: Q ∝ exp(-U + Σ_m w_m · K̃_m Q)."""
    classes, height, width = probs.shape
    ys, xs = np.mgrid[0:height, 0:width]
    pos = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    rgb = image.reshape(-1, 3).astype(np.float64)

    def kernel(features):
        sq = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)
        k = np.exp(-0.5 * sq)
        norm = 1.0 / np.sqrt(k.sum(1) + 1e-20)
        return norm[:, None] * k * norm[None, :]

    kernels = [
        (cfg.gaussian_compat, kernel(pos / cfg.gaussian_sxy)),
        (cfg.bilateral_compat, kernel(np.concatenate([pos / cfg.bilateral_sxy, rgb / cfg.bilateral_srgb], 1))),
    ]
    unary = -np.log(np.clip(probs.reshape(classes, -1).astype(np.float64), 1e-5, 1.0))

    def softmax(logits):
        e = np.exp(logits - logits.max(0, keepdims=True))
        return e / e.sum(0, keepdims=True)

    q = softmax(-unary)
    for _ in range(cfg.iterations):
        logits = -unary
        for weight, k in kernels:
            logits = logits + weight * (q @ k)
        q = softmax(logits)
    return q.reshape(classes, height, width)


def test_equals_direct_pydensecrf():
    image, _, probs = scene(0)
    cfg = CrfConfig()
    got = dense_crf(image, probs, cfg)
    assert got.dtype == np.float32 and got.shape == probs.shape
    assert np.array_equal(got, direct(image, probs, cfg))
    np.testing.assert_allclose(got.sum(0), 1, atol=1e-5)
    # default config is the reference's
    assert np.array_equal(dense_crf(image, probs), got)
    # another configuration is passed through, not ignored
    other = CrfConfig(gaussian_sxy=1, gaussian_compat=1, bilateral_sxy=20, bilateral_srgb=5,
                      bilateral_compat=4, iterations=3)
    assert np.array_equal(dense_crf(image, probs, other), direct(image, probs, other))
    assert not np.allclose(dense_crf(image, probs, other), got)


def test_several_unaries_share_the_pairwise_terms_exactly():
    """One lattice for the low- and high-alpha CRFs of an image: each result equals its own
    direct pydensecrf call, bit for bit, and the two differ."""
    image, _, probs = scene(7)
    other = np.roll(probs, 1, axis=0)
    cfg = CrfConfig()
    first, second = dense_crfs(image, [probs, other], cfg)
    assert np.array_equal(first, direct(image, probs, cfg))
    assert np.array_equal(second, direct(image, other, cfg))
    assert not np.allclose(first, second)
    assert dense_crfs(image, [], cfg) == []
    with pytest.raises(PsaError, match="same number of classes"):
        dense_crfs(image, [probs, probs[:2]], cfg)


def test_accepts_views_and_float_images():
    image, _, probs = scene(1)
    want = dense_crf(image, probs)
    bgr = np.ascontiguousarray(image[:, :, ::-1])
    view = bgr[:, :, ::-1]  # RGB again, but a non-contiguous view
    assert not view.flags["C_CONTIGUOUS"]
    assert np.array_equal(dense_crf(view, probs), want)
    assert np.array_equal(dense_crf(image.astype(np.float32), probs), want)
    # scores are used as given (clipped at 1e-5, not renormalised): float64 too
    np.testing.assert_allclose(dense_crf(image, probs.astype(np.float64)), want, atol=1e-4)


@pytest.mark.parametrize("seed, classes", [(2, 2), (3, 3), (4, 3), (5, 4)])
def test_agrees_with_naive_dense_crf(seed, classes):
    image, regions, probs = scene(seed, classes=classes, noise=2.0)
    cfg = CrfConfig()
    got = dense_crf(image, probs, cfg).argmax(0)
    naive = naive_dense_crf(image, probs, cfg).argmax(0)
    assert (got == naive).mean() >= 0.97
    # not vacuous: the unary alone is wrong on many pixels and the CRF fixes most of them ...
    unary_accuracy = (probs.argmax(0) == regions).mean()
    assert unary_accuracy < 0.8
    assert (naive == regions).mean() > unary_accuracy + 0.15
    # ... and the appearance kernel matters: without it the oracle disagrees clearly
    no_bilateral = naive_dense_crf(image, probs, CrfConfig(bilateral_compat=0)).argmax(0)
    assert (got == no_bilateral).mean() < 0.9


def test_naive_crf_is_sensitive_to_the_image():
    """Sanity of the oracle itself: with a strong appearance kernel, a pixel whose colour
    matches the other region is pulled towards that region's label."""
    image, regions, probs = scene(6, classes=2, noise=0.2)
    cfg = CrfConfig()
    recoloured = image.copy()
    recoloured[5:8, 2:5] = image[5, -2]  # a patch with the right half's colour, in the left half
    before = naive_dense_crf(image, probs, cfg)[1, 5:8, 2:5].mean()
    after = naive_dense_crf(recoloured, probs, cfg)[1, 5:8, 2:5].mean()
    assert after > before + 0.1
    assert dense_crf(recoloured, probs, cfg)[1, 5:8, 2:5].mean() > before + 0.1


@pytest.mark.parametrize("image_shape, probs_shape", [
    ((8, 8), (2, 8, 8)),
    ((8, 8, 4), (2, 8, 8)),
    ((8, 8, 3), (2, 8, 9)),
    ((8, 8, 3), (8, 8)),
    ((8, 8, 3), (0, 8, 8)),
])
def test_shape_errors(image_shape, probs_shape):
    with pytest.raises(PsaError, match="dense CRF"):
        dense_crf(np.zeros(image_shape, np.uint8), np.ones(probs_shape, np.float32))


def test_missing_pydensecrf(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(PsaError, match="pip install pydensecrf2"):
        dense_crf(np.zeros((4, 4, 3), np.uint8), np.ones((2, 4, 4), np.float32))
