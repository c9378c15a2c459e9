"""CocoSource on COCO json files written here: labels, semantic and instance masks pixel for
pixel against masks painted by numpy, the mask cache, bad input, the real photos of
../shared/data/coco_voc_mini against their VOC copy, and the pipeline on all 80 categories."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from psa.config import CocoConfig, DataConfig
from psa.data import CocoSource, build_source
from psa.data.base import check_files
from psa.errors import PsaError
from psa.provenance import Provenance

from conftest import COCO_VOC_MINI

# COCO's 80 category ids and names, in id order (= the YOLO class order of coco_polygons/)
COCO_CATEGORIES = tuple(zip(
    (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31,
     32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57,
     58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87,
     88, 89, 90),
    ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
     "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
     "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
     "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
     "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
     "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
     "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
     "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
     "scissors", "teddy bear", "hair drier", "toothbrush")))
# COCO names of the 20 VOC classes -> VOC class index (coco_voc_mini/README.md)
VOC_OF_COCO = {"airplane": 1, "bicycle": 2, "bird": 3, "boat": 4, "bottle": 5, "bus": 6, "car": 7, "cat": 8,
               "chair": 9, "cow": 10, "dining table": 11, "dog": 12, "horse": 13, "motorcycle": 14,
               "person": 15, "potted plant": 16, "sheep": 17, "couch": 18, "train": 19, "tv": 20}


def rle_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE, computed here: run lengths over the column-major pixels,
    starting with a run of zeros."""
    counts, current, run = [], 0, 0
    for value in mask.ravel(order="F").astype(int):
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    return counts + [run]


def rect(x0: int, y0: int, x1: int, y1: int) -> list[int]:
    """A polygon around the pixels [y0:y1, x0:x1] (integer corners: pycocotools fills exactly those)."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def write_json(path: Path, dataset: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset))
    return path


def write_images(folder: Path, sizes: dict[str, tuple[int, int]], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)


# ----------------------------------------------------------------------------- a tiny file

H, W = 20, 24
# Non-contiguous ids, declared out of order: classes are background, car (3), dog (7), bird (12).
CATEGORIES = [{"id": 12, "name": "bird"}, {"id": 3, "name": "car"}, {"id": 7, "name": "dog"}]
CAR, DOG, BIRD = 1, 2, 3
L_SHAPE = [10, 5, 22, 5, 22, 10, 14, 10, 14, 14, 10, 14]  # [5:10, 10:22] + [10:14, 10:14], 76 px


def masks_a() -> dict[str, np.ndarray]:
    car = np.zeros((H, W), bool)
    car[5:10, 10:22] = car[10:14, 10:14] = True
    dog = np.zeros((H, W), bool)
    dog[2:16, 2:18] = True  # 224 px, under the car
    crowd = np.zeros((H, W), bool)
    crowd[14:20, 0:8] = True  # a crowd of birds, partly under the dog
    return {"car": car, "dog": dog, "crowd": crowd}


def masks_b() -> dict[str, np.ndarray]:
    car = np.zeros((16, 16), bool)
    car[1:5, 1:5] = car[8:12, 9:15] = True  # two polygons of one instance, 40 px
    dog = np.zeros((16, 16), bool)
    for y in range(6, 14):
        dog[y, max(0, y - 4):y + 1] = True  # a staircase, 35 px, over the car's second part
    return {"car": car, "dog": dog}


def tiny_dataset() -> dict:
    from pycocotools import mask as mask_utils

    b_dog = mask_utils.encode(np.asfortranarray(masks_b()["dog"].astype(np.uint8)))
    b_dog["counts"] = b_dog["counts"].decode("ascii")  # compressed RLE, as in results files
    return {
        "categories": CATEGORIES,
        "images": [{"id": 101, "file_name": "a.jpg", "height": H, "width": W},
                   {"id": 102, "file_name": "b.png", "height": 16, "width": 16},
                   {"id": 103, "file_name": "c.jpg", "height": 10, "width": 10}],  # no annotation
        "annotations": [
            # the car is listed first: painted in file order, the dog would cover it
            {"id": 1, "image_id": 101, "category_id": 3, "iscrowd": 0, "segmentation": [L_SHAPE]},
            {"id": 2, "image_id": 101, "category_id": 7, "iscrowd": 0, "segmentation": [rect(2, 2, 18, 16)]},
            {"id": 3, "image_id": 101, "category_id": 12, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": rle_counts(masks_a()["crowd"])}},
            {"id": 4, "image_id": 102, "category_id": 3, "iscrowd": 0,
             "segmentation": [rect(1, 1, 5, 5), rect(9, 8, 15, 12)]},
            {"id": 5, "image_id": 102, "category_id": 7, "iscrowd": 0, "segmentation": b_dog},
        ],
    }


@pytest.fixture
def coco(tmp_path):
    """data root with annotations/instances_train2014.json and train2014/; returns a DataConfig."""
    root = tmp_path / "coco"
    write_json(root / "annotations" / "instances_train2014.json", tiny_dataset())
    write_images(root / "train2014", {"a.jpg": (H, W), "b.png": (16, 16), "c.jpg": (10, 10)})
    return DataConfig(kind="coco", root=str(root), coco=CocoConfig(cache_dir=str(tmp_path / "cache")))


def test_classes_follow_the_sorted_category_ids(coco):
    source = build_source(coco, "train")
    assert source.classes == ("background", "car", "dog", "bird")
    assert source.category_ids == (0, 3, 7, 12)
    table = source.class_map()["classes"]
    assert [(c["index"], c["category_id"], c["name"]) for c in table] == [
        (0, None, "background"), (1, 3, "car"), (2, 7, "dog"), (3, 12, "bird")]


def test_image_labels_include_crowds_and_images_without_annotation_are_dropped(coco, caplog, monkeypatch):
    import psa.data.coco as coco_module

    monkeypatch.setattr(coco_module, "_REPORTED", set())  # other tests here read the same file
    with caplog.at_level(logging.INFO, logger="psa"):
        source = build_source(coco, "train")
        build_source(coco, "train")  # the next stage's source: no second line
    assert source.ids == ["a", "b"]
    assert source.dropped == 1
    lines = [r.getMessage() for r in caplog.records if "no annotation" in r.getMessage()]
    assert len(lines) == 1 and "1 of 3 images" in lines[0]
    assert source.image_labels(0).tolist() == [CAR, DOG, BIRD]
    assert source.image_labels(1).tolist() == [CAR, DOG]
    assert source.image_labels(0).dtype == np.int64


def test_semantic_masks_larger_first_crowd_void_pixel_for_pixel(coco):
    source = build_source(coco, "train")
    a = masks_a()
    expected = np.zeros((H, W), np.uint8)
    expected[a["crowd"]] = 255
    expected[a["dog"]] = DOG  # 224 px before the 76 px car
    expected[a["car"]] = CAR
    np.testing.assert_array_equal(source.load_mask(0), expected)
    assert (source.load_mask(0) == 255).sum() == 6 * 8 - 2 * 6  # the crowd minus what the dog covers
    b = masks_b()
    expected = np.zeros((16, 16), np.uint8)
    expected[b["car"]] = CAR
    expected[b["dog"]] = DOG  # 35 px over the 40 px car
    np.testing.assert_array_equal(source.load_mask(1), expected)


def test_file_order_and_skipped_crowds_paint_as_recam(coco):
    coco.coco.order, coco.coco.crowd = "file", "skip"
    a = masks_a()
    expected = np.zeros((H, W), np.uint8)
    expected[a["car"]] = CAR
    expected[a["dog"]] = DOG  # listed after the car: on top
    np.testing.assert_array_equal(build_source(coco, "train").load_mask(0), expected)


def test_instance_masks_in_file_order(coco):
    inst = build_source(coco, "train").load_instances(0)
    a = masks_a()
    np.testing.assert_array_equal(inst.masks, np.stack([a["car"], a["dog"], a["crowd"]]))
    assert inst.labels.tolist() == [CAR, DOG, BIRD]
    assert inst.crowd.tolist() == [False, False, True]
    assert inst.annotation_ids.tolist() == [1, 2, 3]
    inst = build_source(coco, "train").load_instances(1)
    np.testing.assert_array_equal(inst.masks, np.stack([masks_b()["car"], masks_b()["dog"]]))


def test_masks_are_cached_and_repainted_when_the_json_changes(coco, monkeypatch):
    import psa.data.coco as coco_module

    calls = []
    real = coco_module.paint_semantic
    monkeypatch.setattr(coco_module, "paint_semantic", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = build_source(coco, "train").load_mask(0)
    assert len(calls) == 1
    again = build_source(coco, "train").load_mask(0)  # a new source, as the next stage builds
    assert len(calls) == 1
    np.testing.assert_array_equal(again, first)
    assert len(list(Path(coco.coco.cache_dir).rglob("a.png"))) == 1

    dataset = tiny_dataset()
    dataset["annotations"][0]["category_id"] = 12  # the car becomes a bird
    write_json(Path(coco.root) / "annotations" / "instances_train2014.json", dataset)
    changed = build_source(coco, "train").load_mask(0)
    assert len(calls) == 2
    np.testing.assert_array_equal(changed, np.where(first == CAR, BIRD, first))


def test_the_data_identity_holds_the_annotation_files_content(coco, tmp_path):
    from psa.config import Recipe

    def identity():
        return Provenance(Recipe(data=coco)).data_identity(["train"])

    before = identity()
    assert "sha256" in json.dumps(before["data.files[train]"])
    dataset = tiny_dataset()
    dataset["annotations"][1]["segmentation"] = [rect(2, 2, 17, 16)]  # same ids, other mask
    write_json(Path(coco.root) / "annotations" / "instances_train2014.json", dataset)
    after = identity()
    assert after["data.ids[train]"] == before["data.ids[train]"]
    assert after["data.files[train]"] != before["data.files[train]"]
    coco.coco.cache_dir = str(tmp_path / "elsewhere")  # where masks are cached changes no result
    assert identity() == after


def test_an_id_list_split_finds_names_and_numeric_ids_in_either_file(coco):
    root = Path(coco.root)
    val = {"categories": CATEGORIES, "images": [{"id": 201, "file_name": "v.jpg", "height": 8, "width": 8}],
           "annotations": [{"id": 9, "image_id": 201, "category_id": 12, "segmentation": [rect(0, 0, 4, 4)]}]}
    write_json(root / "annotations" / "instances_val2014.json", val)
    write_images(root / "val2014", {"v.jpg": (8, 8)})
    (root / "mine.txt").write_text("b\n101\nv\n")
    source = build_source(coco, "mine.txt")
    assert source.ids == ["b", "a", "v"]
    assert source.image_labels(2).tolist() == [BIRD]
    assert source.image_path(2) == root / "val2014" / "v.jpg"
    assert set(source.identity()) == {"train", "val"}


def test_max_size_wraps_the_coco_source(coco):
    coco.max_size = 32
    source = build_source(coco, "train")
    assert source.load_mask(0).shape == (H, W)  # already small enough
    assert source.identity() == source.inner.identity()


# ----------------------------------------------------------------------------- bad input


def one_line(err: pytest.ExceptionInfo, *parts: str) -> str:
    text = str(err.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, (part, text)
    return text


def ann_file(coco: DataConfig) -> Path:
    return Path(coco.root) / "annotations" / "instances_train2014.json"


def test_a_missing_annotation_file_names_it_and_its_key(coco):
    ann_file(coco).unlink()
    with pytest.raises(PsaError) as err:
        build_source(coco, "train")
    one_line(err, str(ann_file(coco)), "data.coco.train_annotations")


def test_a_malformed_annotation_file_names_it(coco):
    ann_file(coco).write_text('{"images": [')
    with pytest.raises(PsaError) as err:
        build_source(coco, "train")
    one_line(err, str(ann_file(coco)), "not valid JSON", "line 1")


@pytest.mark.parametrize("field,value,words", [
    ("category_id", 99, ("annotation 4", "category id 99", "not among the file's categories")),
    ("category_id", None, ("annotation 4", "'category_id'")),
    ("image_id", 555, ("annotation 4", "image id 555")),
    ("segmentation", [[1, 2, 3, 4]], ("annotation 4", "polygon")),
    ("segmentation", {"size": [3, 3], "counts": [9]}, ("annotation 4", "RLE of size [3, 3]")),
])
def test_a_bad_annotation_names_the_file_and_its_id(coco, field, value, words):
    dataset = tiny_dataset()
    dataset["annotations"][3][field] = value
    write_json(ann_file(coco), dataset)
    with pytest.raises(PsaError) as err:
        build_source(coco, "train")
    one_line(err, str(ann_file(coco)), *words)


def test_an_image_without_a_file_names_the_id_and_the_file(coco):
    (Path(coco.root) / "train2014" / "b.png").unlink()
    source = build_source(coco, "train")
    for action in (lambda: source.load_image(1), lambda: check_files(source), lambda: source.load_mask(1)):
        with pytest.raises(PsaError) as err:
            action()
        one_line(err, "image b", "id 102", str(ann_file(coco)), "data.coco.train_images")


def test_an_image_of_another_size_than_its_record_is_refused(coco):
    write_images(Path(coco.root) / "train2014", {"a.jpg": (H + 1, W)})
    with pytest.raises(PsaError) as err:
        build_source(coco, "train").load_mask(0)
    one_line(err, "image a", f"{H}x{W}", f"{H + 1}x{W}")


@pytest.mark.parametrize("with_val", [True, False])
def test_an_unknown_id_in_a_list_file_names_the_line(coco, with_val):
    val = Path(coco.root) / "annotations" / "instances_val2014.json"
    if with_val:
        write_json(val, {"categories": CATEGORIES, "images": [], "annotations": []})
    (Path(coco.root) / "mine.txt").write_text("a\nnope\n")
    with pytest.raises(PsaError) as err:
        build_source(coco, "mine.txt")
    text = one_line(err, "mine.txt:2", "image id nope", str(ann_file(coco)))
    assert (str(val) in text) == with_val


def test_a_list_of_train_images_needs_no_val_file(coco):
    (Path(coco.root) / "mine.txt").write_text("b\n")
    source = build_source(coco, "mine.txt")
    assert source.ids == ["b"] and set(source.identity()) == {"train"}


def test_recipe_choices_are_checked(write_recipe):
    from psa import load_recipe

    path = write_recipe("data: {kind: coco}\n")
    assert load_recipe(path, ["data.coco.order=file"]).data.coco.order == "file"
    with pytest.raises(PsaError) as err:
        load_recipe(path, ["data.coco.order=random"])
    one_line(err, "data.coco.order")
    with pytest.raises(PsaError) as err:
        load_recipe(path, ["data.coco.val_images="])
    one_line(err, "data.coco.val_images")


# ----------------------------------------------------------------------------- real photos


def polygon_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def yolo_instances(path: Path, width: int, height: int) -> list[tuple[int, np.ndarray]]:
    """(category index 0..79, polygon in pixels) per line of a YOLO-seg label file."""
    rows = []
    for line in path.read_text().split("\n"):
        tokens = line.split()
        if tokens:
            rows.append((int(tokens[0]), np.array(tokens[1:], float).reshape(-1, 2) * [width, height]))
    return rows


@pytest.mark.skipif(not (COCO_VOC_MINI / "coco_polygons").is_dir(), reason="needs ../shared/data/coco_voc_mini")
def test_coco_voc_mini_as_a_coco_json_gives_its_voc_masks(tmp_path):
    from pycocotools import mask as mask_utils

    images, anns, shapes = [], [], {}
    for number, txt in enumerate(sorted((COCO_VOC_MINI / "coco_polygons").glob("*.txt")), start=1):
        width, height = Image.open(COCO_VOC_MINI / "JPEGImages" / f"{txt.stem}.jpg").size
        images.append({"id": number, "file_name": f"{txt.stem}.jpg", "height": height, "width": width})
        shapes[txt.stem] = yolo_instances(txt, width, height)
        for k, xy in shapes[txt.stem]:
            anns.append({"id": len(anns) + 1, "image_id": number, "category_id": COCO_CATEGORIES[k][0],
                         "iscrowd": 0, "area": polygon_area(xy), "segmentation": [xy.ravel().tolist()],
                         "bbox": [float(xy[:, 0].min()), float(xy[:, 1].min()),
                                  float(np.ptp(xy[:, 0])), float(np.ptp(xy[:, 1]))]})
    dataset = {"images": images, "annotations": anns,
               "categories": [{"id": i, "name": n} for i, n in COCO_CATEGORIES]}
    data = DataConfig(kind="coco", root=str(COCO_VOC_MINI), coco=CocoConfig(
        train_annotations=str(write_json(tmp_path / "mini.json", dataset)), train_images="JPEGImages",
        cache_dir=str(tmp_path / "cache")))
    source = build_source(data, "train")
    assert len(source) == 97 and len(source.classes) == 81
    to_voc = np.zeros(256, np.uint8)
    to_voc[255] = 255
    for k, name in enumerate(source.classes[1:], start=1):
        to_voc[k] = VOC_OF_COCO.get(name, 0)  # every other COCO object is VOC background

    compared = 0
    for index, image_id in enumerate(source.ids):
        shapes_here = shapes[image_id]
        height, width = source.image_size(index)
        # The VOC copy filled each polygon with PIL, largest shoelace area first; here pycocotools
        # fills them, largest pixel area first. The two fills differ on a thin band along the
        # outlines, left out; images where the two orders swap two overlapping instances are skipped.
        ours = [mask_utils.decode(mask_utils.frPyObjects([xy.ravel().tolist()], height, width)[0]).astype(bool)
                for _, xy in shapes_here]
        band = np.zeros((height, width), bool)
        for (_, xy), mask in zip(shapes_here, ours):
            pil = Image.new("1", (width, height), 0)
            ImageDraw.Draw(pil).polygon([tuple(p) for p in xy], fill=1)
            band |= np.asarray(pil) ^ mask
        by_shoelace = np.argsort([-polygon_area(xy) for _, xy in shapes_here], kind="stable")
        by_pixels = np.argsort([-m.sum() for m in ours], kind="stable")
        rank_a, rank_b = np.argsort(by_shoelace), np.argsort(by_pixels)
        if any((rank_a[i] < rank_a[j]) != (rank_b[i] < rank_b[j]) and (ours[i] & ours[j]).any()
               for i in range(len(ours)) for j in range(i + 1, len(ours))):
            continue
        voc = np.asarray(Image.open(COCO_VOC_MINI / "SegmentationClass" / f"{image_id}.png"))
        mine = to_voc[source.load_mask(index)]
        assert band.mean() < 0.02, image_id
        np.testing.assert_array_equal(mine[~band], voc[~band], err_msg=image_id)
        compared += 1
    assert compared >= 90  # the rule was compared on nearly every photo, not skipped


# ----------------------------------------------------------------------------- the pipeline


def write_coco_photos(root: Path, split: str, count: int, seed: int) -> Path:
    """`count` 48 px images, each with one or two filled boxes of person (1) or car (3) on
    noise, and their instances in `annotations/instances_<split>.json` with all 80 categories."""
    rng = np.random.default_rng(seed)
    colours = {1: (230, 40, 40), 3: (40, 60, 230)}
    images, anns = [], []
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        rgb = rng.integers(60, 140, (48, 48, 3), dtype=np.uint8)
        cats = [1, 3] if number % 3 == 0 else [[1], [3]][number % 2]
        for cat in cats:
            x0, y0 = (int(v) for v in rng.integers(2, 22, 2))
            size = int(rng.integers(14, 24))
            rgb[y0:y0 + size, x0:x0 + size] = colours[cat]
            anns.append({"id": len(anns) + 1, "image_id": number, "category_id": cat, "iscrowd": 0,
                         "segmentation": [rect(x0, y0, x0 + size, y0 + size)]})
        name = f"{split}_{number:04d}.png"
        Image.fromarray(rgb).save(folder / name)
        images.append({"id": number, "file_name": name, "height": 48, "width": 48})
    return write_json(root / "annotations" / f"instances_{split}.json", {
        "images": images, "annotations": anns,
        "categories": [{"id": i, "name": n, "supercategory": "x"} for i, n in COCO_CATEGORIES]})


@pytest.mark.slow
def test_the_pipeline_runs_on_80_categories(tiny_recipe, tmp_path):
    from psa import pipeline

    root = tmp_path / "coco"
    write_coco_photos(root, "train", 12, seed=0)
    write_coco_photos(root, "val", 4, seed=1)
    recipe = tiny_recipe(
        "data.kind=coco", f"data.root={root}", "data.train_split=train", "data.eval_split=train",
        "data.val_split=val", "data.coco.train_annotations=annotations/instances_train.json",
        "data.coco.train_images=train", "data.coco.val_annotations=annotations/instances_val.json",
        "data.coco.val_images=val", f"data.coco.cache_dir={tmp_path / 'cache'}",
        "cam.train.epochs=1", "affinity.train.epochs=1", "random_walk.crf=false",
        "pipeline.steps=[train_cam,export_cams,eval_cam,train_affinity,random_walk,eval_rw]")
    result = pipeline.run(recipe)
    assert result.ran == ["train_cam", "export_cams", "eval_cam", "train_affinity", "random_walk", "eval_rw"]
    run = Path(recipe.run.dir)
    metrics = json.loads((run / "affinity" / "eval" / "rw" / "metrics.json").read_text())
    assert len(metrics["iou"]) == 81 and "toothbrush" in metrics["iou"]
    assert set(metrics["present"]) == {"background", "person", "car"}
    table = json.loads((run / "data" / "coco_classes.json").read_text())["classes"]
    assert [(c["index"], c["category_id"]) for c in table[:4]] == [(0, None), (1, 1), (2, 2), (3, 3)]
    assert table[80] == {"index": 80, "category_id": 90, "name": "toothbrush"}
    assert len(list((run / "affinity" / "pseudo").glob("*.png"))) == 12

    assert pipeline.run(recipe).ran == []  # unchanged: every step skipped
    train_json = root / "annotations" / "instances_train.json"
    dataset = json.loads(train_json.read_text())
    dataset["annotations"][0]["segmentation"] = [rect(0, 0, 10, 10)]  # same ids and labels, other mask
    write_json(train_json, dataset)
    with pytest.raises(PsaError) as err:  # trained weights are never replaced silently
        pipeline.plan(recipe)
    one_line(err, "cam/model.pt was trained with other inputs", "data.files[train]")
