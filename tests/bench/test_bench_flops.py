"""bench/flops.py counts what it says: meta-device counts equal real ones, the walk's formula
is the CSR pattern psa.ops.random_walk builds, and a stage's FLOPs follow its schedule."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from conftest import ROOT


@pytest.fixture
def bench(monkeypatch):
    """bench/flops.py, imported as `python bench/flops.py` sees it (bench/ on sys.path)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    return importlib.import_module("flops")


def test_counts_on_the_meta_device_equal_counts_on_real_tensors(bench):
    from psa.config import ModelConfig
    from psa.methods.affinity.model import AffinityNet
    from psa.models import build_backbone

    def count(device):
        torch.manual_seed(0)
        with torch.device(device):
            model = AffinityNet(build_backbone(ModelConfig(backbone="resnet10t"), load_weights=False))
        image = torch.zeros(1, 3, 40, 56, device=device)
        return bench.training_step(model, 48, lambda m, x: m(x, 5)), bench.flops(lambda: model.eval()(image, 5))

    assert count("meta") == count("cpu")


def test_the_walk_formula_counts_the_entries_of_the_walks_matrix(bench):
    from psa.ops.random_walk import transition_matrix

    for height, width in [(375, 500), (20, 30), (9, 60)]:
        nodes = (-(-height // 8), -(-width // 8))
        entries = transition_matrix(torch.rand(34, *nodes)).values().numel()
        assert bench.walk_products(height, width, 3, 8, 5) == 2 * entries * 8 * 256


def test_a_stage_follows_its_schedule_and_the_script_writes_its_table(bench, tmp_path, capsys):
    from psa import load_recipe

    data = {**bench.DATASETS["VOC 2012"], "train": 64, "val": 8}
    recipe = load_recipe(ROOT / "recipes" / "affinity.yaml", [])
    longer = load_recipe(ROOT / "recipes" / "affinity.yaml", ["cam.train.epochs=30", "seg.scales=[1.0]"])
    one, two = bench.stage_flops(recipe, "resnet10t", data), bench.stage_flops(longer, "resnet10t", data)
    assert two["train CAM"] == 2 * one["train CAM"]  # 30 epochs instead of 15
    assert two["train AffinityNet"] == one["train AffinityNet"]
    assert two["predict val"] < one["predict val"]  # one scale instead of three
    assert one["total"] == sum(v for k, v in one.items() if k != "total")

    out = tmp_path / "flops.json"
    assert bench.main(["--backbones", "resnet10t", "--datasets", "VOC 2012", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PROJECTION" in printed and "train segmentation" in printed
    written = json.loads(out.read_text())
    assert written["tflops_assumed"] == 100.0 and written["flops"]["VOC 2012"]["resnet10t"]["total"] > 0
