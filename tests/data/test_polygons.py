"""Instance ground truth from YOLO-seg polygon files: a hand-made case and coco_voc_mini."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import COCO_VOC_MINI
from psa.config import DataConfig
from psa.data import build_source
from psa.data.polygons import instances_from_polygons, polygon_area, read_polygons
from psa.errors import PsaError


def square(x0, y0, x1, y1, width, height):
    return " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)))


def test_larger_polygons_are_painted_first_and_background_instances_dropped(tmp_path):
    width, height = 40, 20
    path = tmp_path / "img.txt"
    # listed small first: the order of the file must not matter, the area does
    path.write_text("\n".join([
        "7 " + square(10, 5, 14, 9, width, height),   # small box in front of the big one
        "0 " + square(2, 2, 30, 18, width, height),    # big box
        "3 " + square(32, 2, 38, 8, width, height),    # an object the mask calls background
    ]) + "\n")
    semantic = np.zeros((height, width), np.uint8)
    semantic[2:18, 2:30] = 4
    semantic[5:9, 10:14] = 9
    found = instances_from_polygons(path, semantic)
    assert sorted(found.labels.tolist()) == [4, 9]
    big, small = (found.masks[found.labels.tolist().index(c)] for c in (4, 9))
    assert small.sum() >= 16 and not (big & small).any()  # the small one kept its pixels
    assert big[10, 20] and not big[6, 12] and small[6, 12]


def test_polygon_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1 0.1 0.1 0.2\n")
    with pytest.raises(PsaError, match=r"bad.txt line 1: a polygon needs at least 3"):
        read_polygons(path, 10, 10)
    path.write_text("1 0.1 0.1 0.2 0.2 1.5 0.3\n")
    with pytest.raises(PsaError, match="normalised"):
        read_polygons(path, 10, 10)
    assert polygon_area(np.array([[0, 0], [4, 0], [4, 3], [0, 3]], float)) == 12


@pytest.mark.skipif(not COCO_VOC_MINI.is_dir(), reason="../shared/data/coco_voc_mini not available")
def test_coco_voc_mini_instances_agree_with_its_semantic_masks():
    """The masks were painted from the same polygons in the same order: the instances of each
    image cover its object pixels, each inside its own class."""
    source = build_source(DataConfig(kind="voc", root=str(COCO_VOC_MINI), max_size=320), "trainval")
    assert source.has_instances
    covered = objects = inside = total = 0
    for index in range(0, len(source), 4):
        semantic, found = source.load_mask(index), source.load_instances(index)
        assert found.masks.shape[1:] == semantic.shape and len(found.labels) >= 1
        union = found.masks.any(axis=0)
        covered += int((union & (semantic > 0)).sum())
        objects += int((semantic > 0).sum())
        for mask, label in zip(found.masks, found.labels):
            inside += int((semantic[mask] == label).sum())
            total += int(mask.sum())
    assert covered / objects > 0.98
    assert inside / total > 0.97
