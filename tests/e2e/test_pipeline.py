"""The whole pipeline, end to end, through the command-line tool, on a tiny synthetic set."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, tool_command
from psa import load_recipe


def run_tool(*args, timeout=600):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(tool_command(*args), capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


@pytest.mark.slow
def test_pipeline_runs_end_to_end_and_resumes(tmp_path):
    run = tmp_path / "run"
    args = ("pipeline", str(CORE_DEMO), *TINY_OVERRIDES, f"run.dir={run}",
            "cam.train.epochs=1", "affinity.train.epochs=1", "seg.train.epochs=1")
    first = run_tool(*args)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    summary = json.loads((run / "pipeline" / "summary.json").read_text())
    assert len(summary) == 5  # CAM ×2, the walk ×2, the segmentation network
    for row in summary.values():
        assert row["miou"] is None or 0.0 <= row["miou"] <= 1.0
    assert summary["segmentation network (val, never saw a mask)"]["split"] == "val"
    pseudo = sorted((run / "affinity" / "pseudo").glob("*.png"))
    assert len(pseudo) == 16
    assert np.asarray(Image.open(pseudo[0])).shape == (48, 48)
    assert len(list((run / "affinity" / "pseudo_crf").glob("*.png"))) == 16
    assert len(list((run / "seg" / "pred").glob("*.png"))) == 6
    assert list((run / "affinity" / "eval" / "rw_crf" / "pictures").glob("*.png"))
    assert list((run / "cam" / "tb").glob("events.out.tfevents.*"))
    assert "CAM + random walk" in first.stdout
    second = run_tool(*args)
    assert second.returncode == 0, second.stderr[-2000:]
    from psa.framework.registry import REGISTRY

    assert second.stdout.count("done already") == len(REGISTRY.selected(load_recipe(CORE_DEMO))) == 10
