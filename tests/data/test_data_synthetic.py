"""The embedded synthetic data set: determinism, label consistency, the part-vs-whole property
the demo relies on, and the VOC round trip."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from psa.config import DataConfig, SyntheticConfig
from psa.data import SyntheticSource, VocSource, build_source, materialize_voc
from psa.data.synthetic import EMBLEMS
from psa.errors import PsaError


def make(split="train", n=40, seed=0, classes=8, objects=4, size=112):
    return SyntheticSource(split, num_images=n, image_size=size, num_classes=classes,
                           max_objects=objects, seed=seed)


def test_deterministic_by_seed_split_index():
    a, b = make(), make()
    for index in (0, 7, 39):
        np.testing.assert_array_equal(a.load_image(index), b.load_image(index))
        np.testing.assert_array_equal(a.load_mask(index), b.load_mask(index))
    # order of access does not matter (lazy, per-index generation)
    later = make()
    np.testing.assert_array_equal(later.load_image(39), a.load_image(39))
    assert not np.array_equal(a.load_image(0), a.load_image(1))
    assert not np.array_equal(a.load_image(0), make(seed=1).load_image(0))
    assert not np.array_equal(a.load_image(0), make(split="val").load_image(0))
    # survives pickling (DataLoader workers)
    clone = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(clone.load_mask(5), a.load_mask(5))


def test_shapes_labels_and_masks_agree():
    source = make(n=60)
    assert source.classes == ("background",) + tuple(e[0] for e in EMBLEMS)
    assert source.has_masks
    counts = []
    for index in range(len(source)):
        image, mask, labels = source.load_image(index), source.load_mask(index), source.image_labels(index)
        assert image.shape == (112, 112, 3) and image.dtype == np.uint8 and image.flags.c_contiguous
        assert mask.shape == (112, 112) and mask.dtype == np.uint8
        assert source.image_size(index) == (112, 112)
        assert labels.dtype == np.int64 and labels.size >= 1
        assert labels.min() >= 1 and labels.max() <= 8
        assert sorted(set(np.unique(mask).tolist()) - {0}) == labels.tolist()
        counts.append(len(source.sample(index).classes))
    assert min(counts) >= 1 and max(counts) <= 4
    assert max(counts) >= 2  # several objects do occur
    multi = [len(set(source.sample(i).classes)) for i in range(len(source))]
    assert max(multi) >= 2  # and images with two different classes


def test_emblems_are_a_small_class_specific_part_of_each_object():
    source = make(n=60)
    fractions = []
    for index in range(len(source)):
        sample = source.sample(index)
        for k, class_id in enumerate(sample.classes, start=1):
            body = sample.instances == k
            emblem = sample.emblems & body
            assert np.all(sample.mask[body] == class_id)  # the mask labels the whole body
            assert emblem.sum() >= 6  # the emblem is visible
            assert emblem.sum() < 0.5 * body.sum()  # ...but only a minority of the object,
            fractions.append(emblem.sum() / body.sum())
            # emblem colour identifies the class: nearest emblem colour is the class's own
            colour = np.median(sample.image[emblem].astype(float), axis=0)
            palette = np.array([e[1] for e in EMBLEMS], dtype=float)
            assert np.argmin(np.abs(palette - colour).sum(1)) == class_id - 1
        assert not (sample.emblems & (sample.instances == 0)).any()
    assert np.mean(fractions) < 0.2  # ...typically a small one (bodies may be partly covered)


def test_body_colour_does_not_reveal_the_class():
    """The median body colour (emblem excluded) is saturated, unlike the muted background, but
    does not separate classes: for every class the body hues span several palette entries."""
    source = make(n=120, classes=2, objects=1)
    hues: dict[int, set] = {1: set(), 2: set()}
    for index in range(len(source)):
        sample = source.sample(index)
        body = (sample.instances == 1) & ~sample.emblems
        r, g, b = np.median(sample.image[body].astype(float), axis=0)
        assert (max(r, g, b) - min(r, g, b)) / max(r, g, b) > 0.3  # a saturated body colour
        hue = (np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) + 360) % 360
        hues[sample.classes[0]].add(int(round(hue / 60)) % 6)
    assert len(hues[1]) >= 4 and len(hues[2]) >= 4


def test_build_source_splits():
    data = DataConfig(kind="synthetic", synthetic=SyntheticConfig(num_train=12, num_val=5, num_classes=3))
    train, val, other = build_source(data, "train"), build_source(data, "val"), build_source(data, "test")
    assert (len(train), len(val), len(other)) == (12, 5, 5)
    assert not set(train.ids) & set(val.ids)
    assert not np.array_equal(val.load_image(0), other.load_image(0))
    assert train.classes == ("background", "red_cross", "blue_disc", "yellow_triangle")
    named = DataConfig(kind="synthetic", classes=["bg", "a", "b", "c", "d"])
    assert build_source(named, "val").classes == ("bg", "a", "b", "c", "d")
    with pytest.raises(PsaError, match="data.classes"):
        build_source(DataConfig(kind="synthetic", classes=["bg", "a"]), "val")
    with pytest.raises(PsaError, match="num_classes"):
        make(classes=9)


def test_materialize_voc_round_trip(tmp_path):
    train, val = make("train", n=6, classes=4, objects=3), make("val", n=4, classes=4, objects=3)
    list_file = materialize_voc(train, tmp_path / "voc")
    materialize_voc(val, tmp_path / "voc")
    assert list_file == tmp_path / "voc" / "ImageSets" / "Segmentation" / "train.txt"
    for source in (train, val):
        back = VocSource(tmp_path / "voc", source.split)
        assert back.ids == source.ids
        assert back.classes == source.classes
        assert back.has_masks
        for index in range(len(source)):
            np.testing.assert_array_equal(back.load_mask(index), source.load_mask(index))
            np.testing.assert_array_equal(back.image_labels(index), source.image_labels(index))
            diff = np.abs(back.load_image(index).astype(int) - source.load_image(index).astype(int))
            assert diff.mean() < 3.0
