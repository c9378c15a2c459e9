"""The reference's pair switches (docs/differences.md) reach the code they switch:
affinity.pairs and random_walk.pairs. The operators themselves are tested against independent
ports of the reference in test_pairs.py and tests/ops/test_random_walk.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import stage_dir
from psa import load_recipe
from psa.data import build_source
from psa.errors import PsaError
from psa.io import save_label_png
from psa.ops import pair_labels, pair_offsets, random_walk
from psa.ops.neighbors import reference_pair_mask


def test_pair_switches_default_to_all_and_are_validated(write_recipe):
    recipe = load_recipe(write_recipe("task: cam\n"))
    assert recipe.affinity.pairs == "all" and recipe.random_walk.pairs == "all"
    for key in ("affinity.pairs", "random_walk.pairs"):
        assert getattr(load_recipe(write_recipe("task: cam\n"), [f"{key}=reference"]),
                       key.split(".")[0]).pairs == "reference"
        with pytest.raises(PsaError, match=f"recipe key '{key}' must be one of all, reference, got 'some'"):
            load_recipe(write_recipe("task: cam\n"), [f"{key}=some"])


def _write_confident_labels(recipe):
    source = build_source(recipe.data, recipe.data.train_split)
    for index, image_id in enumerate(source.ids):
        save_label_png(stage_dir(recipe, "cam") / "labels" / f"{image_id}.png", source.load_mask(index))
    return source


@pytest.mark.parametrize("pairs", ["all", "reference"])
def test_affinity_dataset_supervises_the_chosen_pairs(tiny_recipe, pairs):
    from psa.methods.affinity.training import AffinityTrainDataset

    recipe = tiny_recipe(f"affinity.pairs={pairs}", "affinity.radius=3")
    dataset = AffinityTrainDataset(_write_confident_labels(recipe), recipe)
    item = dataset[0]
    want = pair_labels(item["label"], 3, pairs)
    for key in ("bg", "fg", "neg"):
        assert torch.equal(item[key], want[key]), key
    supervised = item["bg"] | item["fg"] | item["neg"]
    outside = supervised & ~reference_pair_mask(3, *item["label"].shape)
    assert outside.any() == (pairs == "all")


def test_the_random_walk_step_walks_over_the_chosen_pairs(tiny_recipe, monkeypatch):
    import psa.methods.affinity.walk as stage
    from psa.methods.affinity.training import build_affinity_model

    asked = []
    walk = stage.random_walk

    def spy(*args, **kwargs):
        asked.append(kwargs["pairs"])
        return walk(*args, **kwargs)

    monkeypatch.setattr(stage, "random_walk", spy)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(72, 80, 3), dtype=np.uint8)
    cams = rng.random((2, 72, 80)).astype(np.float32)
    torch.manual_seed(0)
    model = build_affinity_model(tiny_recipe(), load_weights_=False).eval()
    got = {}
    for pairs in ("all", "reference"):
        recipe = tiny_recipe(f"random_walk.pairs={pairs}", "random_walk.radius=3", "random_walk.logt=3")
        with torch.no_grad():
            got[pairs] = stage.walk_image(model, image, cams, recipe, torch.device("cpu"))
    assert asked == ["all", "reference"]
    assert got["all"].shape == got["reference"].shape == (3, 9, 10)
    assert (got["all"] - got["reference"]).abs().max() > 1e-4


def test_random_walk_reference_pairs_leave_band_only_pairs_out():
    """A CAM seeded in the bottom-left corner spreads only through pairs anchored there, which
    the reference's matrix does not have: with radius 3 the corner's 2×2 block only reaches
    the rest through pairs anchored above it."""
    height, width, radius = 8, 8, 3
    cam = torch.zeros(1, height, width)
    cam[0, -1, 0] = 1.0
    aff = torch.ones(len(pair_offsets(radius)), height, width)
    every = random_walk(cam, aff, beta=1.0, logt=0, radius=radius)
    ref = random_walk(cam, aff, beta=1.0, logt=0, radius=radius, pairs="reference")
    # one step: "all" moves mass to the corner's right-hand neighbour (a pair anchored in the
    # left band), the reference's matrix does not
    assert every[0, -1, 1] > 0 and ref[0, -1, 1] == 0
