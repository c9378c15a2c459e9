"""PetSource on a hand-made Oxford-IIIT Pet tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from psa.config import DataConfig
from psa.data import PetSource, build_source
from psa.errors import PsaError

TRAINVAL = """# Image CLASS-ID SPECIES BREED ID
# ID: 1:37 Class ids
Abyssinian_100 1 1 1
american_bulldog_10 2 2 1

great_pyrenees_7 3 2 12
"""
TEST = """#comment
Abyssinian_5 1 1 1
Bengal_1 4 1 2
"""


def write_pet(root: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    trimaps = {}
    for k, image_id in enumerate(["Abyssinian_100", "american_bulldog_10", "great_pyrenees_7",
                                  "Abyssinian_5", "Bengal_1"]):
        h, w = 12 + k, 15
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{image_id}.jpg")
        trimap = np.full((h, w), 2, np.uint8)
        trimap[3:9, 4:10] = 1
        trimap[3, 4:10] = 3
        (root / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
        Image.fromarray(trimap, mode="L").save(root / "annotations" / "trimaps" / f"{image_id}.png")
        trimaps[image_id] = trimap
    (root / "annotations" / "trainval.txt").write_text(TRAINVAL)
    (root / "annotations" / "test.txt").write_text(TEST)
    return trimaps


@pytest.fixture
def pet(tmp_path):
    root = tmp_path / "pet"
    return root, write_pet(root)


def test_species_mode(pet):
    root, trimaps = pet
    source = PetSource(root, "trainval")
    assert source.classes == ("background", "cat", "dog")
    assert source.ids == ["Abyssinian_100", "american_bulldog_10", "great_pyrenees_7"]
    assert [source.image_labels(i).tolist() for i in range(3)] == [[1], [2], [2]]
    assert source.image_labels(0).dtype == np.int64
    assert source.has_masks
    for index, image_id in enumerate(source.ids):
        trimap = trimaps[image_id]
        expected = np.where(trimap == 1, source.image_labels(index)[0], np.where(trimap == 2, 0, 255))
        mask = source.load_mask(index)
        assert mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, expected)
        image = source.load_image(index)
        assert image.shape == trimap.shape + (3,)
        assert source.image_size(index) == trimap.shape
    assert source.load_mask(1)[5, 5] == 2 and source.load_mask(1)[3, 5] == 255 and source.load_mask(1)[0, 0] == 0


def test_breed_mode_is_the_same_for_every_split(pet):
    root, trimaps = pet
    trainval = PetSource(root, "trainval", label_mode="breed")
    test = PetSource(root, "test", label_mode="breed")
    expected = ("background", "Abyssinian", "american_bulldog", "great_pyrenees", "Bengal")
    assert trainval.classes == expected
    assert test.classes == expected
    assert [test.image_labels(i).tolist() for i in range(2)] == [[1], [4]]
    assert test.load_mask(1)[5, 5] == 4
    # build_source dispatches on kind and label_mode
    data = DataConfig(kind="pet", root=str(root), label_mode="breed")
    assert build_source(data, "test").classes == expected


def test_bad_trimap_value_and_size(pet):
    root, trimaps = pet
    path = root / "annotations" / "trimaps" / "Bengal_1.png"
    bad = trimaps["Bengal_1"].copy()
    bad[0, 0] = 5
    Image.fromarray(bad, mode="L").save(path)
    source = PetSource(root, "test")
    with pytest.raises(PsaError, match="has value 5") as info:
        source.load_mask(1)
    assert str(path) in str(info.value)
    Image.fromarray(np.full((3, 3), 2, np.uint8), mode="L").save(path)
    with pytest.raises(PsaError, match=r"Bengal_1\.png is 3x3"):
        source.load_mask(1)
    path.unlink()
    assert not PetSource(root, "test").has_masks
    with pytest.raises(PsaError, match="Bengal_1"):
        source.load_mask(1)


def test_bad_lists(pet, tmp_path):
    root, _ = pet
    with pytest.raises(PsaError, match="label_mode"):
        PetSource(root, "trainval", label_mode="colour")
    with pytest.raises(PsaError, match="nosuch"):
        PetSource(root, "nosuch")
    with pytest.raises(PsaError, match="data.root"):
        PetSource(tmp_path / "absent", "trainval")
    lists = root / "annotations"
    (lists / "dup.txt").write_text("Abyssinian_5 1 1 1\nAbyssinian_5 1 1 1\n")
    with pytest.raises(PsaError, match="duplicate image id 'Abyssinian_5'"):
        PetSource(root, "dup")
    (lists / "short.txt").write_text("Abyssinian_5 1\n")
    with pytest.raises(PsaError, match=r"short\.txt:1"):
        PetSource(root, "short")
    (lists / "species.txt").write_text("Abyssinian_5 1 3 1\n")
    with pytest.raises(PsaError, match="Abyssinian_5: species 3"):
        PetSource(root, "species")
    (lists / "dots.txt").write_text("../Abyssinian_5 1 1 1\n")
    with pytest.raises(PsaError, match=r"'\.\./Abyssinian_5'"):
        PetSource(root, "dots")


def test_corrupt_image(pet):
    root, _ = pet
    path = root / "images" / "Bengal_1.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 broken")
    with pytest.raises(PsaError, match="cannot read image") as info:
        PetSource(root, "test").load_image(1)
    assert str(path) in str(info.value)
