"""Real 2-process DDP on CPU (gloo) through `accelerate launch`, as users run it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY_OVERRIDES


def launch(script: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    port = str(random.randint(20000, 40000))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", port, str(script), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.slow
def test_two_process_ddp_keeps_ranks_identical(tmp_path):
    run = tmp_path / "ddp"
    result = launch(ROOT / "tests" / "scripts" / "ddp_train.py", str(ROOT / "recipes" / "demo.yaml"),
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
    result = launch(ROOT / "tools" / "train.py", str(ROOT / "recipes" / "demo.yaml"),
                    *TINY_OVERRIDES, f"run.dir={run}", "task=cam", "cam.train.batch_size=7")
    assert result.returncode != 0
    assert "recipe key 'cam.train.batch_size': the global batch 7 does not divide among 2 processes" \
        in result.stdout + result.stderr
    assert not (run / "cam").exists()
