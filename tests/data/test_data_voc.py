"""VocSource on hand-made VOC trees, every bad-data case, and the shared coco_voc_mini."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from psa.config import DataConfig
from psa.constants import VOC_CLASSES
from psa.data import VocSource, build_source
from psa.data.base import validate_ids
from psa.errors import PsaError
from psa.io import save_label_png

from conftest import COCO_VOC_MINI  # ../shared/data/coco_voc_mini, relative to the repo root

XML_TEMPLATE = """<annotation><filename>{id}.jpg</filename>{objects}</annotation>"""
OBJECT_TEMPLATE = "<object><name>{name}</name><difficult>{difficult}</difficult></object>"


def write_xml(root: Path, image_id: str, objects: list[tuple[str, int]]) -> Path:
    path = root / "Annotations" / f"{image_id}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(OBJECT_TEMPLATE.format(name=n, difficult=d) for n, d in objects)
    path.write_text(XML_TEMPLATE.format(id=image_id, objects=body))
    return path


def write_jpeg(path: Path, rgb: np.ndarray, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format="JPEG", quality=90)


def write_list(root: Path, split: str, lines: list[str]) -> Path:
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def voc(tmp_path):
    """Three images: 'a' (XML labels), 'b' (mask only, grayscale JPEG), 'c' (image_labels.txt)."""
    root = tmp_path / "voc"
    rng = np.random.default_rng(0)
    sizes = {"a": (20, 30), "b": (24, 16), "c": (18, 18)}
    masks = {}
    for image_id, (h, w) in sizes.items():
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        write_jpeg(root / "JPEGImages" / f"{image_id}.jpg", rgb, mode="L" if image_id == "b" else "RGB")
        mask = np.zeros((h, w), np.uint8)
        mask[2:8, 3:9] = {"a": 15, "b": 7, "c": 3}[image_id]
        mask[0, :] = 255
        masks[image_id] = mask
    save_label_png(root / "SegmentationClass" / "a.png", masks["a"])
    save_label_png(root / "SegmentationClass" / "b.png", masks["b"])
    save_label_png(root / "SegmentationClassAug" / "c.png", masks["c"])
    write_xml(root, "a", [("person", 0), ("dog", 1), ("person", 0)])
    (root / "image_labels.txt").write_text("c 3 19\n")
    write_list(root, "train", ["a", "", "b", "c", ""])
    return root, masks


def test_reads_images_masks_and_labels(voc):
    root, masks = voc
    source = VocSource(root, "train")
    assert source.ids == ["a", "b", "c"]
    assert len(source) == 3
    assert source.classes == VOC_CLASSES
    assert source.has_masks
    # images: the same pixels PIL decodes, as RGB, C-contiguous
    expected = np.asarray(Image.open(root / "JPEGImages" / "a.jpg").convert("RGB"))
    image = source.load_image(0)
    assert image.dtype == np.uint8 and image.flags.c_contiguous
    np.testing.assert_array_equal(image, expected)
    gray = source.load_image(1)
    assert gray.shape == (24, 16, 3)
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    # masks: raw palette indices (not colours), from SegmentationClass then SegmentationClassAug
    for index, image_id in enumerate(source.ids):
        np.testing.assert_array_equal(source.load_mask(index), masks[image_id])
        assert source.image_size(index) == masks[image_id].shape
    # labels: XML (difficult objects included), mask, image_labels.txt
    assert source.image_labels(0).tolist() == [12, 15]
    assert source.image_labels(0).dtype == np.int64
    assert source.image_labels(1).tolist() == [7]
    assert source.image_labels(2).tolist() == [3, 19]


def test_reference_list_format_and_list_paths(voc, tmp_path):
    root, masks = voc
    # the reference's train_aug format: image path, mask path relative to the root
    save_label_png(root / "SegmentationClassAug" / "a.png", np.zeros((20, 30), np.uint8) + 4)
    write_list(root, "train_aug", ["/JPEGImages/a.jpg /SegmentationClassAug/a.png",
                                   "/JPEGImages/c.jpg /SegmentationClassAug/c.png"])
    source = VocSource(root, "train_aug")
    assert source.ids == ["a", "c"]
    assert np.all(source.load_mask(0) == 4)  # the listed mask wins over SegmentationClass/a.png
    np.testing.assert_array_equal(source.load_mask(1), masks["c"])
    # a list file given by path: absolute, and relative to the root
    custom = root / "lists" / "mine.txt"
    custom.parent.mkdir()
    custom.write_text("c\nb\n")
    assert VocSource(root, str(custom)).ids == ["c", "b"]
    assert VocSource(root, "lists/mine.txt").ids == ["c", "b"]


def test_classes_argument_file_and_default(voc):
    root, _ = voc
    names = ["background", "thing", "other", "third"]
    (root / "classes.txt").write_text("\n".join(names) + "\n\n")
    write_list(root, "cset", ["c"])
    (root / "image_labels.txt").write_text("c 3\n")
    assert VocSource(root, "cset").classes == tuple(names)
    assert VocSource(root, "cset").image_labels(0).tolist() == [3]
    override = ("background",) + tuple(f"k{i}" for i in range(1, 25))
    assert VocSource(root, "cset", classes=override).classes == override
    # build_source passes data.classes through
    data = DataConfig(kind="voc", root=str(root), classes=list(override))
    assert build_source(data, "cset").classes == override


def test_label_file_takes_class_names_and_indices(voc):
    root, _ = voc
    (root / "classes.txt").write_text("background\ncat\ndog\nsea lion\n")
    write_list(root, "named", ["c", "x", "b"])  # b has a mask too: the label file wins
    (root / "image_labels.txt").write_text("c dog 1\nx cat\nb 3\n")
    source = VocSource(root, "named")
    assert [source.image_labels(i).tolist() for i in range(3)] == [[1, 2], [1], [3]]
    assert source.classes_from == str(root / "classes.txt")


@pytest.mark.parametrize("line, message", [
    ("c cat dgo",
     r"image_labels.txt:2: unknown class name 'dgo' \(classes from .*classes.txt\); did you mean 'dog'\?$"),
    ("c background", r"image_labels.txt:2: 'background' is the background \(line 0 of the class list\), "),
    ("c zebra", r"image_labels.txt:2: unknown class name 'zebra' \(classes from .*classes.txt\)$"),
])
def test_a_bad_class_name_is_one_line_naming_file_line_and_name(voc, line, message):
    root, _ = voc
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    (root / "image_labels.txt").write_text(f"a cat\n{line}\n")
    write_list(root, "named", ["c"])
    with pytest.raises(PsaError, match=message) as info:
        VocSource(root, "named").image_labels(0)
    assert str(root / "image_labels.txt") in str(info.value) and "\n" not in str(info.value)


def test_class_list_says_where_the_classes_come_from(voc):
    from psa.config import SyntheticConfig
    from psa.data import class_list

    root, _ = voc
    assert class_list(DataConfig(kind="voc", root=str(root)), "train") == (
        VOC_CLASSES, f"the 21 VOC classes (no {root / 'classes.txt'})")
    (root / "classes.txt").write_text("background\ncat\n")
    assert class_list(DataConfig(kind="voc", root=str(root)), "train") == (
        ("background", "cat"), str(root / "classes.txt"))
    assert class_list(DataConfig(kind="voc", root=str(root), classes=["bg", "x"]), "train")[1] == \
        "recipe key data.classes"
    synthetic = DataConfig(kind="synthetic", synthetic=SyntheticConfig(num_classes=2))
    assert class_list(synthetic, "train")[1] == "the synthetic generator (data.synthetic.num_classes=2)"


def test_xml_labels_need_known_names(voc):
    root, _ = voc
    path = write_xml(root, "a", [("person", 0), ("unicorn", 0)])
    with pytest.raises(PsaError, match="unicorn") as info:
        VocSource(root, "train").image_labels(0)
    assert str(path) in str(info.value)


def test_empty_labels_name_the_image(voc):
    root, _ = voc
    write_xml(root, "a", [])
    with pytest.raises(PsaError, match=r"image a has no foreground"):
        VocSource(root, "train").image_labels(0)
    # a mask with background and void only gives no label either
    save_label_png(root / "SegmentationClass" / "b.png", np.full((24, 16), 255, np.uint8))
    with pytest.raises(PsaError, match=r"image b has no foreground"):
        VocSource(root, "train").image_labels(1)


def test_label_file_class_out_of_range(voc):
    root, _ = voc
    (root / "image_labels.txt").write_text("c 3 21\n")
    with pytest.raises(PsaError, match=r"image c: class id 21 out of range"):
        VocSource(root, "train").image_labels(2)


def test_missing_root_and_list(tmp_path, voc):
    missing = tmp_path / "nowhere"
    with pytest.raises(PsaError, match="data.root") as info:
        VocSource(missing, "train")
    assert str(missing) in str(info.value)
    with pytest.raises(PsaError, match="data.root"):
        VocSource("", "train")
    root, _ = voc
    with pytest.raises(PsaError, match="no_such_split"):
        VocSource(root, "no_such_split")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_unreadable_image_names_the_file(voc, damage):
    root, _ = voc
    path = root / "JPEGImages" / "a.jpg"
    if damage == "garbage":
        path.write_bytes(b"this is not a jpeg at all" * 10)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    else:
        path.unlink()
    source = VocSource(root, "train")
    with pytest.raises(PsaError, match="cannot read image") as info:
        source.load_image(0)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_mask_of_wrong_size(voc):
    root, _ = voc
    save_label_png(root / "SegmentationClass" / "a.png", np.zeros((21, 30), np.uint8))
    with pytest.raises(PsaError) as info:
        VocSource(root, "train").load_mask(0)
    message = str(info.value)
    assert "a.png" in message and "21x30" in message and "20x30" in message


def test_mask_value_out_of_range(voc):
    root, _ = voc
    mask = np.zeros((20, 30), np.uint8)
    mask[5, 5] = 30
    save_label_png(root / "SegmentationClass" / "a.png", mask)
    with pytest.raises(PsaError, match=r"a\.png has value 30"):
        VocSource(root, "train").load_mask(0)


def test_missing_mask(voc):
    root, _ = voc
    (root / "SegmentationClass" / "b.png").unlink()
    source = VocSource(root, "train")
    assert not source.has_masks
    with pytest.raises(PsaError, match="no mask for image b"):
        source.load_mask(1)


@pytest.mark.parametrize("bad_id, pattern", [
    ("a", "duplicate image id 'a'"),
    ("../etc/passwd", r"contains '\.\.'"),
    ("/abs/id", "absolute"),
    ("\\\\server\\x", "absolute"),
])
def test_bad_ids_name_the_id_and_list(voc, bad_id, pattern):
    root, _ = voc
    path = write_list(root, "bad", ["a", bad_id])
    with pytest.raises(PsaError, match=pattern) as info:
        VocSource(root, "bad")
    assert str(path) in str(info.value)


def test_validate_ids_direct():
    assert validate_ids(["x", "y/z"], "list.txt") == ["x", "y/z"]
    with pytest.raises(PsaError, match="list.txt: empty image id"):
        validate_ids(["x", ""], "list.txt")
    with pytest.raises(PsaError, match="'C:/x'"):
        validate_ids(["C:/x"], "list.txt")
    with pytest.raises(PsaError, match="'a..b'"):
        validate_ids(["a..b"], "list.txt")
    with pytest.raises(PsaError, match="list.txt: no image ids"):
        validate_ids([], "list.txt")


def test_empty_list_file(voc):
    root, _ = voc
    path = write_list(root, "empty", ["", "  "])
    with pytest.raises(PsaError, match="no image ids") as info:
        VocSource(root, "empty")
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- real data


@pytest.mark.skipif(not COCO_VOC_MINI.is_dir(), reason="coco_voc_mini not available")
def test_coco_voc_mini():
    table = {}
    for line in (COCO_VOC_MINI / "image_labels.txt").read_text().splitlines():
        tokens = line.split()
        if tokens:
            table[tokens[0]] = sorted(int(t) for t in tokens[1:])
    train = VocSource(COCO_VOC_MINI, "train")
    val = VocSource(COCO_VOC_MINI, "val")
    assert (len(train), len(val)) == (68, 29)
    assert not set(train.ids) & set(val.ids)
    assert train.classes == VOC_CLASSES
    for source in (train, val):
        assert source.has_masks
        for index, image_id in enumerate(source.ids):
            image = source.load_image(index)
            mask = source.load_mask(index)
            assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
            assert mask.shape == image.shape[:2] == source.image_size(index)
            assert 218 <= min(mask.shape) and max(mask.shape) <= 640
            labels = source.image_labels(index).tolist()
            assert labels == table[image_id]
            present = sorted(set(np.unique(mask).tolist()) - {0, 255})
            assert present == labels  # the mask holds class indices, not palette colours
    gray_index = val.ids.index("000000000086")
    assert Image.open(COCO_VOC_MINI / "JPEGImages" / "000000000086.jpg").mode == "L"
    gray = val.load_image(gray_index)
    assert gray.shape[2] == 3
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])


def test_content_identity_follows_labels_masks_and_images(voc):
    """What provenance records of a split's files: a label, a mask or an image that changes
    changes it; a class written by index instead of name, or a file merely re-read, does not."""
    root, _ = voc
    (root / "classes.txt").write_text("\n".join(VOC_CLASSES) + "\n")

    def identity():
        return VocSource(root, "train").content_identity()

    first = identity()
    assert set(first) == {"labels", "masks", "images"}
    assert first["labels"].startswith(f"{root / 'Annotations'} + {root / 'image_labels.txt'}: 2 images, sha256 ")
    assert first["masks"].startswith("3 masks, ") and first["images"].startswith("3 images by content, ")
    assert identity() == first
    (root / "image_labels.txt").write_text("c bird train\n")  # "c 3 19" by name: the same labels
    assert identity() == first
    (root / "image_labels.txt").write_text("c 3 18\n")
    assert identity()["labels"] != first["labels"] and identity()["masks"] == first["masks"]
    (root / "image_labels.txt").write_text("c 3 19\n")
    save_label_png(root / "SegmentationClass" / "b.png", np.zeros((24, 16), np.uint8))
    assert identity()["masks"] != first["masks"] and identity()["labels"] == first["labels"]
    image = root / "JPEGImages" / "c.jpg"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))  # copied, remounted
    assert identity()["images"] == first["images"]
    Image.fromarray(np.full((24, 16, 3), 7, np.uint8)).save(image)  # an edited photo
    assert identity()["images"] != first["images"]


def test_content_identity_of_the_pet_layout(tmp_path):
    from test_data_pet import write_pet
    from psa.data import PetSource

    root = tmp_path / "pet"
    write_pet(root)
    first = PetSource(root, "trainval").content_identity()
    assert first["masks"].startswith("3 masks, ") and first["labels"].startswith(str(root / "annotations"))
    (root / "annotations" / "trimaps" / "Abyssinian_100.png").unlink()
    assert PetSource(root, "trainval").content_identity()["masks"].startswith("2 masks, ")
