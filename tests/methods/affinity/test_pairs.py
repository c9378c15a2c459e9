"""Pair offsets, pair labels, pair affinities and the affinity loss vs brute-force loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from psa.errors import PsaError
from psa.methods.affinity.ops import affinity_loss, pair_affinity
from psa.ops import pair_labels, pair_offsets, shift_pairs

IGNORE = 255


def brute_offsets(radius):
    """Every (dy, dx) with dx²+dy² < r², keeping one of each ±pair: dy > 0, or dy = 0 and dx > 0;
    ordered by dy, then dx."""
    found = []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dy * dy + dx * dx < radius * radius and (dy > 0 or (dy == 0 and dx > 0)):
                found.append((dy, dx))
    return sorted(found)


@pytest.mark.parametrize("radius", [2, 3, 4, 5, 6, 8])
def test_offsets_match_brute_force(radius):
    offsets = pair_offsets(radius)
    assert offsets == brute_offsets(radius)
    # every unordered neighbour pair exactly once
    both = set(offsets) | {(-dy, -dx) for dy, dx in offsets}
    assert len(both) == 2 * len(offsets)
    assert (0, 0) not in both


def test_offsets_radius5_reference():
    offsets = pair_offsets(5)
    assert len(offsets) == 34
    assert offsets[:4] == [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert offsets[4] == (1, -4) and offsets[-1] == (4, 2)
    rows = [sum(1 for dy, _ in offsets if dy == d) for d in range(5)]
    assert rows == [4, 9, 9, 7, 5]
    offsets.append((9, 9))  # callers get a copy; the cached list is not altered
    assert len(pair_offsets(5)) == 34


@pytest.mark.parametrize("radius", [0, 1, 2.5, "5"])
def test_offsets_bad_radius(radius):
    with pytest.raises(PsaError, match="radius"):
        pair_offsets(radius)


def test_shift_pairs_brute_force():
    x = torch.arange(2 * 6 * 7).reshape(2, 6, 7)
    offsets = pair_offsets(4)
    out = shift_pairs(x, offsets, fill=-1)
    assert out.shape == (2, len(offsets), 6, 7)
    for b in range(2):
        for k, (dy, dx) in enumerate(offsets):
            for y in range(6):
                for xx in range(7):
                    ty, tx = y + dy, xx + dx
                    want = x[b, ty, tx] if 0 <= ty < 6 and 0 <= tx < 7 else -1
                    assert out[b, k, y, xx] == want


def brute_pair_labels(label, radius):
    height, width = label.shape
    offsets = pair_offsets(radius)
    out = {key: np.zeros((len(offsets), height, width), bool) for key in ("bg", "fg", "neg")}
    for k, (dy, dx) in enumerate(offsets):
        for y in range(height):
            for x in range(width):
                ty, tx = y + dy, x + dx
                if not (0 <= ty < height and 0 <= tx < width):
                    continue
                a, b = int(label[y, x]), int(label[ty, tx])
                if a == IGNORE or b == IGNORE:
                    continue
                if a == b:
                    out["bg" if a == 0 else "fg"][k, y, x] = True
                else:
                    out["neg"][k, y, x] = True
    return out


def random_map(rng, height, width):
    return rng.choice([0, 1, 2, IGNORE], size=(height, width), p=[0.35, 0.25, 0.2, 0.2]).astype(np.uint8)


def blocky_map(rng, height, width, block=4):
    small = random_map(rng, -(-height // block), -(-width // block))
    return np.kron(small, np.ones((block, block), np.uint8))[:height, :width]


@pytest.mark.parametrize("radius", [3, 5])
@pytest.mark.parametrize("maker", [random_map, blocky_map])
def test_pair_labels_brute_force(radius, maker):
    rng = np.random.default_rng(radius)
    for height, width in [(13, 17), (9, 6), (3, 12)]:
        label = maker(rng, height, width)
        got = pair_labels(torch.from_numpy(label), radius)
        want = brute_pair_labels(label, radius)
        for key in ("bg", "fg", "neg"):
            assert got[key].dtype == torch.bool
            assert np.array_equal(got[key].numpy(), want[key]), key
        # the three sets are disjoint
        assert not (got["bg"] & got["fg"]).any() and not (got["neg"] & (got["bg"] | got["fg"])).any()


def test_pair_labels_batched_and_int64():
    rng = np.random.default_rng(0)
    labels = np.stack([blocky_map(rng, 12, 10), random_map(rng, 12, 10), blocky_map(rng, 12, 10, 3)])
    got = pair_labels(torch.from_numpy(labels.astype(np.int64)))
    assert got["bg"].shape == (3, 34, 12, 10)
    for b in range(3):
        want = brute_pair_labels(labels[b], 5)
        for key in ("bg", "fg", "neg"):
            assert np.array_equal(got[key][b].numpy(), want[key])
    # numpy input gives the same result
    assert torch.equal(pair_labels(labels)["neg"], got["neg"])


def test_pair_labels_bad_input():
    with pytest.raises(PsaError, match="label map"):
        pair_labels(torch.zeros(5, dtype=torch.long))
    with pytest.raises(PsaError, match="integer"):
        pair_labels(torch.zeros(4, 4))


def reference_cropped_labels(label, radius=5):
    """The reference's ExtractAffinityLabelInRadius (§2.3-2.4): anchors in rows 0..H-r, cols
    r-1..W-r; output (K, n_anchors), offset-major, anchors row-major."""
    floor = radius - 1
    height, width = label.shape
    crop_h, crop_w = height - floor, width - 2 * floor
    source = label[:crop_h, floor:floor + crop_w]
    bg, fg, neg = [], [], []
    for dy, dx in pair_offsets(radius):
        target = label[dy:dy + crop_h, floor + dx:floor + dx + crop_w]
        valid = (source < 255) & (target < 255)
        pos = source == target
        bg.append((pos & (source == 0)).reshape(-1))
        fg.append((pos & (source != 0) & valid).reshape(-1))
        neg.append((~pos & valid).reshape(-1))
    return {"bg": np.stack(bg), "fg": np.stack(fg), "neg": np.stack(neg)}, (crop_h, crop_w)


@pytest.mark.parametrize("maker", [random_map, blocky_map])
def test_pair_labels_equal_reference_on_its_pairs(maker):
    rng = np.random.default_rng(7)
    label = maker(rng, 56, 56)
    ref, (crop_h, crop_w) = reference_cropped_labels(label)
    assert ref["bg"].shape == (34, 2496)
    got = pair_labels(torch.from_numpy(label))
    for key in ("bg", "fg", "neg"):
        ours = got[key][:, :crop_h, 4:4 + crop_w].reshape(34, -1).numpy()
        assert np.array_equal(ours, ref[key]), key
    # and ours covers more: pairs anchored in the skipped band exist
    band = got["neg"].clone()
    band[:, :crop_h, 4:4 + crop_w] = False
    assert band.any()


@pytest.mark.parametrize("radius, height, width", [(5, 56, 56), (3, 11, 9), (4, 7, 20)])
def test_reference_pairs_are_exactly_the_references(radius, height, width):
    """pairs="reference" keeps the reference's pairs (same labels) and nothing else."""
    rng = np.random.default_rng(radius)
    label = blocky_map(rng, height, width)
    ref, (crop_h, crop_w) = reference_cropped_labels(label, radius)
    floor = radius - 1
    got = pair_labels(torch.from_numpy(label), radius, pairs="reference")
    every = pair_labels(torch.from_numpy(label), radius)
    for key in ("bg", "fg", "neg"):
        inside = got[key][:, :crop_h, floor:floor + crop_w].reshape(len(pair_offsets(radius)), -1).numpy()
        assert np.array_equal(inside, ref[key]), key
        assert int(got[key].sum()) == int(ref[key].sum())  # nothing outside the reference's anchors
    assert int(every["neg"].sum()) > int(got["neg"].sum())
    # batched maps too
    batched = pair_labels(torch.from_numpy(np.stack([label, label])), radius, pairs="reference")
    assert torch.equal(batched["fg"][1], got["fg"])


def test_reference_pairs_change_the_loss_to_the_references():
    """The affinity loss over pairs="reference" labels is the reference's loss (§3.3), computed
    here on its (K, anchors) label lists."""
    rng = np.random.default_rng(11)
    label = blocky_map(rng, 12, 13)
    features = torch.from_numpy(rng.standard_normal((1, 4, 12, 13)))  # seeded: not the global RNG
    aff = pair_affinity(features, 4)
    loss, _ = affinity_loss(aff, {k: v[None] for k, v in pair_labels(torch.from_numpy(label), 4, "reference").items()})
    ref, (crop_h, crop_w) = reference_cropped_labels(label, 4)
    ref_aff = aff[0][:, :crop_h, 3:3 + crop_w].reshape(len(pair_offsets(4)), -1)
    terms = {}
    for key in ("bg", "fg", "neg"):
        mask = torch.from_numpy(ref[key]).double()
        nll = -torch.log(1 + 1e-5 - ref_aff) if key == "neg" else -torch.log(ref_aff + 1e-5)
        terms[key] = float((mask * nll).sum() / (mask.sum() + 1e-5))
    assert loss.item() == pytest.approx(terms["bg"] / 4 + terms["fg"] / 4 + terms["neg"] / 2, rel=1e-9)
    every, _ = affinity_loss(aff, {k: v[None] for k, v in pair_labels(torch.from_numpy(label), 4).items()})
    assert every.item() != pytest.approx(loss.item(), rel=1e-3)


def test_pair_labels_unknown_pair_set():
    with pytest.raises(PsaError, match="pairs must be one of"):
        pair_labels(torch.zeros(6, 6, dtype=torch.long), 3, pairs="border")


def brute_affinity(features, radius):
    batch, channels, height, width = features.shape
    offsets = pair_offsets(radius)
    out = torch.zeros(batch, len(offsets), height, width, dtype=features.dtype)
    for b in range(batch):
        for k, (dy, dx) in enumerate(offsets):
            for y in range(height):
                for x in range(width):
                    ty, tx = y + dy, x + dx
                    if 0 <= ty < height and 0 <= tx < width:
                        dist = sum(abs(features[b, c, y, x] - features[b, c, ty, tx]) for c in range(channels))
                        out[b, k, y, x] = math.exp(-float(dist) / channels)
    return out


def test_pair_affinity_brute_force():
    torch.manual_seed(0)
    features = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    got = pair_affinity(features, 4)
    want = brute_affinity(features, 4)
    assert got.shape == (2, len(pair_offsets(4)), 7, 9)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    inside = pair_labels(torch.zeros(7, 9, dtype=torch.long), 4)["bg"]  # in-image pairs
    assert (got[:, inside] > 0).all() and (got[:, inside] <= 1).all()
    assert (got[:, ~inside] == 0).all()


def test_pair_affinity_float32_and_bf16():
    torch.manual_seed(1)
    features = torch.randn(1, 16, 6, 8)
    got = pair_affinity(features)
    want = brute_affinity(features.double(), 5).float()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    half = pair_affinity(features.bfloat16())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, pair_affinity(features.bfloat16().float()))


def naive_affinity(features, radius):
    """Plain autograd version: all offsets at once with shift_pairs (O(K·B·D·h·w) memory)."""
    offsets = pair_offsets(radius)
    partner = shift_pairs(features, offsets, fill=0.0)  # (B, D, K, h, w)
    inside = shift_pairs(torch.ones(features.shape[-2:], dtype=torch.bool), offsets, fill=False)
    return torch.exp(-(features.unsqueeze(2) - partner).abs().mean(1)) * inside


def test_pair_affinity_gradients():
    torch.manual_seed(2)
    small = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: pair_affinity(f, 3), (small,))
    features = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(2, len(pair_offsets(3)), 5, 6, dtype=torch.float64)
    (grad,) = torch.autograd.grad((pair_affinity(features, 3) * weights).sum(), features)
    (want,) = torch.autograd.grad((naive_affinity(features, 3) * weights).sum(), features)
    torch.testing.assert_close(grad, want)
    assert grad.abs().sum() > 0


def test_pair_affinity_bad_input():
    with pytest.raises(PsaError, match="features"):
        pair_affinity(torch.zeros(3, 4, 4))


def test_affinity_loss_hand_example():
    # 1 image, 2 offsets, 1×3 map; outside-partner entries carry aff 0 and no label
    aff = torch.tensor([[[[0.9, 0.5, 0.0]], [[0.2, 0.8, 0.0]]]], requires_grad=True)
    bg = torch.tensor([[[[1, 0, 0]], [[0, 0, 0]]]], dtype=torch.bool)
    fg = torch.tensor([[[[0, 1, 0]], [[0, 1, 0]]]], dtype=torch.bool)
    neg = torch.tensor([[[[0, 0, 0]], [[1, 0, 0]]]], dtype=torch.bool)
    loss, parts = affinity_loss(aff, {"bg": bg, "fg": fg, "neg": neg})
    eps = 1e-5
    l_bg = -math.log(0.9 + eps) / (1 + eps)
    l_fg = (-math.log(0.5 + eps) - math.log(0.8 + eps)) / (2 + eps)
    l_neg = -math.log(1 + eps - 0.2) / (1 + eps)
    assert loss.item() == pytest.approx(l_bg / 4 + l_fg / 4 + l_neg / 2, rel=1e-6)
    assert float(parts["bg_loss"]) == pytest.approx(l_bg, rel=1e-6)
    assert float(parts["fg_loss"]) == pytest.approx(l_fg, rel=1e-6)
    assert float(parts["neg_loss"]) == pytest.approx(l_neg, rel=1e-6)
    assert [float(parts[f"{k}_count"]) for k in ("bg", "fg", "neg")] == [1, 2, 1]
    assert not any(v.requires_grad for v in parts.values())
    loss.backward()
    # d/da of -log(a+eps)/4/cnt at the bg pair, and of +log(1+eps-a)... at the neg pair
    assert aff.grad[0, 0, 0, 0].item() == pytest.approx(-1 / (0.9 + eps) / (1 + eps) / 4, rel=1e-5)
    assert aff.grad[0, 1, 0, 0].item() == pytest.approx(1 / (1 + eps - 0.2) / (1 + eps) / 2, rel=1e-5)
    assert aff.grad[0, 0, 0, 2].item() == 0


def test_affinity_loss_empty_sets_and_errors():
    aff = torch.full((1, 2, 2, 2), 0.5)
    empty = torch.zeros_like(aff, dtype=torch.bool)
    loss, parts = affinity_loss(aff, {"bg": empty, "fg": empty, "neg": empty})
    assert loss.item() == 0 and float(parts["fg_count"]) == 0
    with pytest.raises(PsaError, match="'neg'"):
        affinity_loss(aff, {"bg": empty, "fg": empty})
    with pytest.raises(PsaError, match="'fg'"):
        affinity_loss(aff, {"bg": empty, "fg": empty[0], "neg": empty})


def test_labels_affinity_loss_end_to_end():
    """pair_labels + pair_affinity + affinity_loss on a batch vs a flat loop over every pair."""
    rng = np.random.default_rng(3)
    labels = np.stack([blocky_map(rng, 8, 9, 3), random_map(rng, 8, 9)])
    features = torch.randn(2, 4, 8, 9, dtype=torch.float64)
    aff = pair_affinity(features, 3)
    loss, _ = affinity_loss(aff, pair_labels(torch.from_numpy(labels), 3))
    sums = {"bg": [0.0, 0], "fg": [0.0, 0], "neg": [0.0, 0]}
    for b in range(2):
        for y in range(8):
            for x in range(9):
                for dy, dx in pair_offsets(3):
                    ty, tx = y + dy, x + dx
                    if not (0 <= ty < 8 and 0 <= tx < 9):
                        continue
                    la, lb = int(labels[b, y, x]), int(labels[b, ty, tx])
                    if la == IGNORE or lb == IGNORE:
                        continue
                    a = math.exp(-float((features[b, :, y, x] - features[b, :, ty, tx]).abs().mean()))
                    key = "neg" if la != lb else ("bg" if la == 0 else "fg")
                    sums[key][0] += -math.log(1 + 1e-5 - a) if key == "neg" else -math.log(a + 1e-5)
                    sums[key][1] += 1
    terms = {k: s / (n + 1e-5) for k, (s, n) in sums.items()}
    assert all(n > 0 for _, n in sums.values())
    assert loss.item() == pytest.approx(terms["bg"] / 4 + terms["fg"] / 4 + terms["neg"] / 2, rel=1e-9)
