"""Real 2-process DDP on CPU (gloo) through `accelerate launch`, as users run it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, launch, stage_dir


@pytest.mark.slow
def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    run = tmp_path / "ddp"
    result = launch(ROOT / "tests" / "scripts" / "ddp_train.py", str(CORE_DEMO),
                    *TINY_OVERRIDES, f"run.dir={run}", "cam.train.epochs=2", "task=cam",
                    # frozen BN: with trainable BN on CPU each rank keeps its own running
                    # statistics (SyncBatchNorm is GPU-only), so only parameters would agree
                    "model.freeze_bn=true")
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(run / "rank0_of_2.pt", weights_only=True)
    rank1 = torch.load(run / "rank1_of_2.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    info = json.loads((run / "cam" / "run_info.json").read_text())
    assert info["world_size"] == 2
    assert info["batch"] == {"global": 8, "per_process": 4}
    # 16 images, global batch 8 → 2 steps per epoch, as on one process
    saved = torch.load(run / "cam" / "model.pt", weights_only=True)
    assert saved["meta"]["steps"] == 4
    # and training really changed the weights from their initialisation on both ranks
    assert not np.allclose(rank0["classifier.weight"].numpy(), 0)


@pytest.mark.slow
def test_a_global_batch_the_processes_do_not_divide_is_refused(tmp_path):
    run = tmp_path / "odd"
    result = launch(ROOT / "tools" / "train.py", str(CORE_DEMO),
                    *TINY_OVERRIDES, f"run.dir={run}", "task=cam", "cam.train.batch_size=7")
    assert result.returncode != 0
    assert "recipe key 'cam.train.batch_size': the global batch 7 does not divide among 2 processes" \
        in result.stdout + result.stderr
    assert not (run / "cam").exists()


# The affinity stage with frozen BN and no dropout is a deterministic function of the global
# batch, so 2 processes must follow 1 process step for step (up to float reduction order).
EQUIVALENCE_OVERRIDES = [
    "model.freeze_bn=true", "affinity.train.optimizer=sgd", "affinity.train.lr=0.05",
    "affinity.train.momentum=0.9", "affinity.train.epochs=2", "run.deterministic=true",
]
GLOBAL_BATCH = 8  # <task>.train.batch_size is the global batch: 4 per process with 2


def _confident_labels_from_gt(recipe):
    """Stand-in for the CAM export: gt masks with an uncertain band on the left, so the two
    processes' halves of a batch hold different numbers of pairs."""
    from psa.data import build_source
    from psa.io import save_label_png

    source = build_source(recipe.data, recipe.data.train_split)
    for index, image_id in enumerate(source.ids):
        mask = source.load_mask(index).copy()
        mask[:, : mask.shape[1] // 6 * (1 + index % 3)] = 255
        save_label_png(stage_dir(recipe, "cam") / "labels" / f"{image_id}.png", mask)


@pytest.mark.slow
def test_two_processes_train_affinity_like_one_on_the_same_global_batch(tiny_recipe, tmp_path):
    from psa.engine.checkpoints import load_weights
    from psa.framework.training import train_task
    from psa.methods.affinity.training import build_affinity_task

    single = tiny_recipe(*EQUIVALENCE_OVERRIDES, "task=affinity", f"affinity.train.batch_size={GLOBAL_BATCH}",
                         run_dir=tmp_path / "one")
    _confident_labels_from_gt(single)
    initial = {}

    def capture_initial(recipe):
        spec = build_affinity_task(recipe)
        initial.update({k: v.detach().clone() for k, v in spec.model.state_dict().items()})
        return spec

    one = train_task(single, "affinity", build=capture_initial)

    two_dir = tmp_path / "two"
    _confident_labels_from_gt(tiny_recipe(run_dir=two_dir))
    result = launch(ROOT / "tests" / "scripts" / "ddp_train.py", str(CORE_DEMO),
                    *TINY_OVERRIDES, *EQUIVALENCE_OVERRIDES, "task=affinity",
                    f"affinity.train.batch_size={GLOBAL_BATCH}", f"run.dir={two_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((two_dir / "result_of_2.json").read_text())

    # 16 images, global batch 8 → 2 steps per epoch, 2 epochs, whatever the process count
    assert one.steps == two["steps"] == 4
    # the logged loss of each step is the global batch's loss in both runs
    np.testing.assert_allclose(two["losses"], one.losses, rtol=1e-4)
    a, _ = load_weights(one.weights, "affinity", "resnet10t")
    b, _ = load_weights(two_dir / "affinity" / "model.pt", "affinity", "resnet10t")
    moved = max((a[k].float() - initial[k].float()).abs().max().item() for k in a)
    differ = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    # training moved the weights by far more than the runs differ: float reduction order only
    assert moved > 1e-3, moved
    assert differ < 1e-4 * moved, (differ, moved)
