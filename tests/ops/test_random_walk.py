"""The sparse random walk vs the dense computation written out here: over every pair (psa's
default), and over the reference's pairs built from an independent port of its index lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psa.errors import PsaError
from psa.ops import pair_offsets, random_walk
from psa.ops.random_walk import transition_matrix


@pytest.fixture(autouse=True)
def default_threads():
    """Run on 1 thread and yield the default count. 256 tiny sparse products with 2 threads
    each wait on an OpenMP barrier, which costs ~8 ms apiece when the CPU is shared (see
    BENCHMARKS.md); the numerics are what is tested here. One test uses the default count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield threads
    torch.set_num_threads(threads)


def dense_transition(affinity, beta, radius):
    """The reference's formulation (§4) over every in-map pair: dense symmetric A with unit
    diagonal, A**beta, column-normalised. Built with explicit loops over offsets and pixels,
    in float64."""
    _, height, width = affinity.shape
    nodes = height * width
    a = torch.eye(nodes, dtype=torch.float64)
    for k, (dy, dx) in enumerate(pair_offsets(radius)):
        for y in range(height):
            for x in range(width):
                ty, tx = y + dy, x + dx
                if 0 <= ty < height and 0 <= tx < width:
                    p, q = y * width + x, ty * width + tx
                    assert a[p, q] == 0  # each pair once
                    a[p, q] = a[q, p] = float(affinity[k, y, x])
    a = a ** beta
    return a / a.sum(dim=0, keepdim=True)


def dense_walk(cam, affinity, beta, logt, radius):
    t = dense_transition(affinity, beta, radius)
    for _ in range(logt):
        t = t @ t
    channels, height, width = cam.shape
    return (cam.reshape(channels, -1).double() @ t).reshape(channels, height, width)


def random_inputs(generator, channels, height, width, radius, batch=None):
    lead = () if batch is None else (batch,)
    cam = torch.rand(*lead, channels, height, width, generator=generator)
    aff = torch.rand(*lead, len(pair_offsets(radius)), height, width, generator=generator)
    # values the network can produce: in (0, 1]; outside partners get junk that must be ignored
    return cam, aff.clamp_min(1e-3) ** 0.25


def rel_error(got, want):
    return ((got.double() - want).abs().max() / want.abs().max()).item()


@pytest.mark.parametrize("height, width, radius, beta, logt", [
    (6, 6, 5, 8.0, 8),
    (7, 11, 5, 8.0, 8),
    (12, 5, 5, 3.0, 4),
    (9, 8, 3, 1.0, 0),
    (5, 13, 4, 16.0, 6),
    (3, 4, 5, 8.0, 2),  # the map is smaller than the neighbourhood
])
def test_random_walk_equals_dense(height, width, radius, beta, logt):
    generator = torch.Generator().manual_seed(height * 100 + width)
    cam, aff = random_inputs(generator, 4, height, width, radius)
    got = random_walk(cam, aff, beta=beta, logt=logt, radius=radius)
    want = dense_walk(cam, aff, beta, logt, radius)
    assert got.shape == cam.shape and got.dtype == torch.float32
    assert rel_error(got, want) < 1e-4
    # elementwise too, not just relative to the largest value
    assert ((got.double() - want).abs() <= 1e-4 * want.abs() + 1e-7).all()


def test_logt0_is_one_step():
    generator = torch.Generator().manual_seed(1)
    cam, aff = random_inputs(generator, 3, 6, 7, 5)
    want = cam.reshape(3, -1).double() @ dense_transition(aff, 8.0, 5)
    got = random_walk(cam, aff, beta=8.0, logt=0)
    assert rel_error(got, want.reshape(3, 6, 7)) < 1e-5
    # and the walk does change the CAM
    assert (got - cam).abs().max() > 1e-2


def test_batched_equals_each_image(default_threads):
    generator = torch.Generator().manual_seed(2)
    cam, aff = random_inputs(generator, 21, 8, 10, 5, batch=3)
    torch.set_num_threads(default_threads)  # the multi-threaded kernel is covered too
    got = random_walk(cam, aff, beta=8.0, logt=5)
    torch.set_num_threads(1)
    assert got.shape == (3, 21, 8, 10)
    for b in range(3):
        want = dense_walk(cam[b], aff[b], 8.0, 5, 5)
        assert rel_error(got[b], want) < 1e-4
        torch.testing.assert_close(random_walk(cam[b], aff[b], beta=8.0, logt=5), got[b])


def test_partners_outside_the_map_are_never_read():
    """The affinity of a pair whose partner is outside is junk (NaN here): the CSR pattern
    leaves those slots out instead of zeroing what they hold."""
    generator = torch.Generator().manual_seed(5)
    cam, aff = random_inputs(generator, 3, 7, 9, 5)
    junk = aff.clone()
    for k, (dy, dx) in enumerate(pair_offsets(5)):
        for y in range(7):
            for x in range(9):
                if not (0 <= y + dy < 7 and 0 <= x + dx < 9):
                    junk[k, y, x] = float("nan")
    got = random_walk(cam, junk, beta=8.0, logt=6)
    assert torch.equal(got, random_walk(cam, aff, beta=8.0, logt=6))
    assert rel_error(got, dense_walk(cam, aff, 8.0, 6, 5)) < 1e-4


def test_map_sizes_in_turn_each_walk_on_their_own_pattern():
    """The CSR pattern is made once per map size and reused: sizes in turn, and a batch of a
    size seen alone before, still equal the dense walk."""
    generator = torch.Generator().manual_seed(6)
    for height, width in [(7, 11), (11, 7), (7, 11), (5, 5)]:
        cam, aff = random_inputs(generator, 2, height, width, 5)
        assert rel_error(random_walk(cam, aff, beta=8.0, logt=5), dense_walk(cam, aff, 8.0, 5, 5)) < 1e-4
    cam, aff = random_inputs(generator, 2, 7, 11, 5, batch=2)
    got = random_walk(cam, aff, beta=8.0, logt=5)
    for b in range(2):
        assert rel_error(got[b], dense_walk(cam[b], aff[b], 8.0, 5, 5)) < 1e-4


def test_float64_input_stays_float64():
    generator = torch.Generator().manual_seed(3)
    cam, aff = random_inputs(generator, 2, 7, 6, 5)
    got = random_walk(cam.double(), aff.double(), beta=8.0, logt=8)
    assert got.dtype == torch.float64
    assert rel_error(got, dense_walk(cam, aff.double(), 8.0, 8, 5)) < 1e-10


def test_transition_matrix_is_dense_reference():
    generator = torch.Generator().manual_seed(4)
    _, aff = random_inputs(generator, 1, 6, 9, 5)
    sparse = transition_matrix(aff, beta=4.0, radius=5)
    assert sparse.layout == torch.sparse_csr
    want = dense_transition(aff, 4.0, 5)
    torch.testing.assert_close(sparse.to_dense().double(), want, rtol=1e-5, atol=1e-7)
    # only in-image pairs and the diagonal are stored: 2 per pair + N
    pairs = sum(max(0, 6 - dy) * max(0, 9 - abs(dx)) for dy, dx in pair_offsets(5))
    assert sparse.values().numel() == 2 * pairs + 54
    batched = transition_matrix(torch.stack([aff, aff.flip(-1)]), beta=4.0)
    assert batched.shape == (108, 108)
    dense = batched.to_dense().double()
    torch.testing.assert_close(dense[:54, :54], want, rtol=1e-5, atol=1e-7)
    assert (dense[:54, 54:] == 0).all() and (dense[54:, :54] == 0).all()


def test_two_regions_spread_within_not_across():
    """Affinity 1 inside each half of the map, 0.05 across the border: a seed spreads over its
    half (almost uniformly after 256 steps) and essentially not into the other half."""
    height, width, radius = 8, 12, 5
    region = torch.zeros(height, width, dtype=torch.long)
    region[:, width // 2:] = 1
    aff = torch.zeros(len(pair_offsets(radius)), height, width)
    for k, (dy, dx) in enumerate(pair_offsets(radius)):
        for y in range(height):
            for x in range(width):
                ty, tx = y + dy, x + dx
                if 0 <= ty < height and 0 <= tx < width:
                    aff[k, y, x] = 1.0 if region[y, x] == region[ty, tx] else 0.05
    cam = torch.zeros(2, height, width)
    cam[0, 2, 1] = 1.0  # seed of class 0 in the left half
    cam[1, 5, 10] = 1.0  # seed of class 1 in the right half
    out = random_walk(cam, aff, beta=8.0, logt=8, radius=radius)
    left, right = region == 0, region == 1
    assert out[0][left].min() > 0.5 * out[0][left].max()
    assert out[1][right].min() > 0.5 * out[1][right].max()
    assert out[0][right].max() < 1e-6 * out[0][left].min()
    assert out[1][left].max() < 1e-6 * out[1][right].min()
    assert torch.equal(out.argmax(0), region)
    # without the learned boundary (uniform affinity) the seeds leak across
    leaky = random_walk(cam, torch.ones_like(aff), beta=8.0, logt=8, radius=radius)
    assert leaky[0][right].max() > 0.1 * leaky[0][left].max()


@pytest.mark.parametrize("cam_shape, aff_shape, match", [
    ((2, 6, 6), (33, 6, 6), "34 pair offsets"),
    ((2, 6, 6), (34, 6, 7), "does not match"),
    ((1, 2, 6, 6), (34, 6, 6), "both be batched"),
    ((2, 6, 6, 1, 1), (34, 6, 6), "cam must be"),
    ((2, 2, 6, 6), (3, 34, 6, 6), "does not match"),
])
def test_shape_errors(cam_shape, aff_shape, match):
    with pytest.raises(PsaError, match=match):
        random_walk(torch.rand(cam_shape), torch.rand(aff_shape))


def test_bad_parameters():
    cam, aff = torch.rand(2, 6, 6), torch.rand(34, 6, 6)
    with pytest.raises(PsaError, match="logt"):
        random_walk(cam, aff, logt=-1)
    with pytest.raises(PsaError, match="beta"):
        random_walk(cam, aff, beta=0)


def reference_indices_of_pairs(radius, size):
    """Port of the reference's `tool/pyutils.get_indices_of_pairs` (numpy, as it is written
    there): the anchors ("from") are the map without its bottom r-1 rows and left/right r-1
    columns; "to" holds, offset after offset, the partner of every anchor."""
    search_dst = [(0, x) for x in range(1, radius)]
    for y in range(1, radius):
        for x in range(-radius + 1, radius):
            if x * x + y * y < radius * radius:
                search_dst.append((y, x))
    radius_floor = radius - 1
    full_indices = np.reshape(np.arange(0, size[0] * size[1], dtype=np.int64), (size[0], size[1]))
    cropped_height = size[0] - radius_floor
    cropped_width = size[1] - 2 * radius_floor
    indices_from = np.reshape(full_indices[:-radius_floor, radius_floor:-radius_floor], [-1])
    indices_to_list = []
    for dy, dx in search_dst:
        indices_to = full_indices[dy:dy + cropped_height, radius_floor + dx:radius_floor + dx + cropped_width]
        indices_to_list.append(np.reshape(indices_to, [-1]))
    return indices_from, np.concatenate(indices_to_list, axis=0), search_dst


def reference_dense_walk(cam, affinity, beta, logt, radius):
    """The reference's infer_aff.py on its own index lists: A[from, to] = A[to, from] =
    affinity of the pair, unit diagonal, A**beta, column-normalised, logt squarings, cam @ T."""
    channels, height, width = cam.shape
    nodes = height * width
    ind_from, ind_to, search_dst = reference_indices_of_pairs(radius, (height, width))
    a = torch.eye(nodes, dtype=torch.float64)
    if ind_from.size:
        ind_to = ind_to.reshape(len(search_dst), -1)
        for k in range(len(search_dst)):
            # the network's aff[k, anchor]: our layout stores it at the anchor (y, x)
            values = affinity[k].reshape(-1).double()[torch.from_numpy(ind_from)]
            a[torch.from_numpy(ind_from), torch.from_numpy(ind_to[k])] = values
            a[torch.from_numpy(ind_to[k]), torch.from_numpy(ind_from)] = values
    a = a ** beta
    t = a / a.sum(dim=0, keepdim=True)
    for _ in range(logt):
        t = t @ t
    return (cam.reshape(channels, -1).double() @ t).reshape(channels, height, width), t


@pytest.mark.parametrize("height, width, radius, beta, logt", [
    (12, 14, 5, 8.0, 8),
    (9, 8, 3, 4.0, 5),
    (7, 13, 4, 16.0, 6),
    (6, 9, 5, 8.0, 3),  # 2 rows of anchors, 1 column
])
def test_reference_pairs_equal_the_references_own_index_lists(height, width, radius, beta, logt):
    generator = torch.Generator().manual_seed(height * 100 + width + 7)
    cam, aff = random_inputs(generator, 3, height, width, radius)
    want, t = reference_dense_walk(cam, aff, beta, logt=logt, radius=radius)
    got = random_walk(cam, aff, beta=beta, logt=logt, radius=radius, pairs="reference")
    assert ((got.double() - want).abs() <= 1e-4 * want.abs() + 1e-7).all()
    step = transition_matrix(aff, beta=beta, radius=radius, pairs="reference").to_dense().double()
    torch.testing.assert_close(step, reference_dense_walk(cam, aff, beta, 0, radius)[1], rtol=1e-5, atol=1e-7)
    # and the reference's matrix is not psa's: the border-band pairs make a difference
    every = random_walk(cam, aff, beta=beta, logt=logt, radius=radius, pairs="all")
    assert rel_error(every, want) > 1e-3


def test_reference_pairs_on_a_map_smaller_than_the_bands_leave_the_cam():
    """No anchors at all (width <= 2(r-1)): the reference's T is the identity."""
    generator = torch.Generator().manual_seed(9)
    cam, aff = random_inputs(generator, 2, 6, 8, 5)
    want, _ = reference_dense_walk(cam, aff, 8.0, 4, 5)
    torch.testing.assert_close(want, cam.double())
    torch.testing.assert_close(random_walk(cam, aff, beta=8.0, logt=4, pairs="reference"), cam)


def test_unknown_pair_set():
    with pytest.raises(PsaError, match="pairs must be one of all, reference"):
        random_walk(torch.rand(2, 6, 6), torch.rand(34, 6, 6), pairs="ref")
