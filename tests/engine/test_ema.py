"""The weight average (`train.ema_decay`): the update by hand, and in a training run."""

from __future__ import annotations

import pytest
import torch

from psa.engine.ema import WeightAverage, ema_decay_at
from conftest import stage_dir


def test_the_average_follows_the_formula_and_copies_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    average = WeightAverage(model, decay=0.9)
    start = model[0].weight.detach().clone()
    expected = start.clone()
    for update in range(1, 30):
        with torch.no_grad():
            model[0].weight.add_(0.1 * update)
            model[1].running_mean.fill_(float(update))
        average.update(model)
        decay = min(0.9, 1 - 1 / update)  # the mean so far, then the set decay
        expected = decay * expected + (1 - decay) * model[0].weight.detach()
        torch.testing.assert_close(average.model[0].weight, expected)
        assert average.model[1].running_mean.item() == update
    assert ema_decay_at(0.9, 1) == 0 and ema_decay_at(0.9, 4) == 0.75 and ema_decay_at(0.9, 1000) == 0.9
    assert not any(p.requires_grad for p in average.model.parameters()) and not average.model.training
    restored = WeightAverage(model, decay=0.9)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 29
    torch.testing.assert_close(restored.model[0].weight, expected)


@pytest.mark.slow
def test_a_run_hands_on_the_average_of_its_steps(tiny_recipe, tmp_path):
    """model.pt is the average of the weights after each step, recomputed here from the
    per-step checkpoints (each holds the raw model)."""
    from safetensors.torch import load_file

    from psa.engine.checkpoints import complete_checkpoints, load_weights
    from psa.framework.training import train_task
    from psa.methods.cam.training import build_cam_task

    recipe = tiny_recipe("cam.train.ema_decay=0.5", "cam.train.epochs=2", "cam.train.checkpoint_every=1",
                         "cam.train.keep_checkpoints=100", run_dir=tmp_path / "run")
    result = train_task(recipe, "cam")
    steps = complete_checkpoints(stage_dir(recipe, "cam") / "checkpoints")
    assert len(steps) == result.steps >= 3
    # batch-norm statistics are buffers: copied, not averaged
    averaged = {name for name, _ in build_cam_task(recipe).model.named_parameters()}
    average = None
    for update, checkpoint in enumerate(steps, start=1):
        raw = load_file(str(checkpoint / "model.safetensors"))
        decay = 0.0 if update == 1 else 0.5  # the first step copies, then 1 - 1/n passes 0.5 at once
        average = dict(raw) if average is None else {
            key: decay * average[key] + (1 - decay) * raw[key] if key in averaged else raw[key]
            for key in raw}
    saved, meta = load_weights(result.weights, "cam", "resnet10t")
    assert meta["ema_decay"] == 0.5
    for key in saved:
        torch.testing.assert_close(saved[key], average[key], msg=key)
    # and it is not the last raw model
    assert any(not torch.equal(saved[key], raw[key]) for key in averaged)
