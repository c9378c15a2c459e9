import pytest
import torch
from torch import nn

from psa.engine.optim import build_optimizer, parameter_groups, poly_factor, set_poly_lr


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)  # frozen below
        self.body = nn.Conv2d(4, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.head = nn.Conv2d(4, 2, 1)
        self.stem.requires_grad_(False)

    def new_modules(self):
        return [self.head]


def test_four_groups_with_the_reference_multipliers():
    model = Tiny()
    groups = {g["name"]: g for g in parameter_groups(model, lr=0.01, weight_decay=5e-4)}
    ids = lambda g: {id(p) for p in g["params"]}  # noqa: E731
    assert ids(groups["backbone_weight"]) == {id(model.body.weight)}
    assert ids(groups["backbone_bias"]) == {id(model.body.bias), id(model.norm.weight), id(model.norm.bias)}
    assert ids(groups["new_weight"]) == {id(model.head.weight)}
    assert ids(groups["new_bias"]) == {id(model.head.bias)}
    assert [groups[n]["lr"] for n in ("backbone_weight", "backbone_bias", "new_weight", "new_bias")] == \
        pytest.approx([0.01, 0.02, 0.1, 0.2])
    assert [groups[n]["weight_decay"] for n in ("backbone_weight", "backbone_bias", "new_weight", "new_bias")] == \
        [5e-4, 0.0, 5e-4, 0.0]
    frozen = {id(p) for p in model.stem.parameters()}
    assert not frozen & set().union(*(ids(g) for g in groups.values()))


def test_poly_schedule_matches_the_formula_at_every_step():
    model = Tiny()
    optimizer = build_optimizer(model, lr=0.1, momentum=0.9, weight_decay=1e-4)
    max_step = 37
    for step in range(max_step + 1):
        set_poly_lr(optimizer, 0.1, step, max_step, 0.9)
        expected = 0.1 * (1 - step / max_step) ** 0.9
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(expected * group["lr_scale"])
    assert poly_factor(max_step, max_step, 0.9) == 0.0
    assert optimizer.defaults["momentum"] == 0.9


def test_sgd_step_uses_each_groups_lr():
    model = Tiny()
    optimizer = build_optimizer(model, lr=0.5, momentum=0.0, weight_decay=0.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert torch.allclose(before["body.weight"] - model.body.weight, torch.full_like(model.body.weight, 0.5))
    assert torch.allclose(before["head.weight"] - model.head.weight, torch.full_like(model.head.weight, 5.0))
    assert torch.allclose(before["head.bias"] - model.head.bias, torch.full_like(model.head.bias, 10.0))
    assert torch.equal(before["stem.weight"], model.stem.weight)


def test_adamw_uses_the_same_groups():
    model = Tiny()
    optimizer = build_optimizer(model, lr=1e-3, momentum=0.9, weight_decay=1e-4, kind="adamw")
    assert isinstance(optimizer, torch.optim.AdamW)
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == pytest.approx(
        {"backbone_weight": 1e-3, "backbone_bias": 2e-3, "new_weight": 1e-2, "new_bias": 2e-2})
    assert {g["name"]: g["weight_decay"] for g in optimizer.param_groups}["backbone_bias"] == 0.0
