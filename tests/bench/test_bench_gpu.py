"""bench/gpu_stages.py stays runnable: it skips cleanly without CUDA, and its smoke mode runs
every code path on the CPU (where the sparse and the dense walk must agree)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

SCRIPT = ROOT / "bench" / "gpu_stages.py"


def run_smoke(out, monkeypatch) -> int:
    """The script's main in this process, bench/ on sys.path, one torch thread (as test_bench_smoke.py)."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return importlib.import_module(SCRIPT.stem).main(["--smoke", "--json", str(out)])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the bench would really run")
def test_without_cuda_it_says_skipped():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300, env=env,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "no CUDA device: skipped"


def test_smoke_mode_runs_every_stage_on_the_cpu(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench.json"
    assert run_smoke(out, monkeypatch) == 0
    assert "not measurements" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert {(r["stage"], r["precision"]) for r in data["train"]} == \
           {(s, p) for s in ("cam", "affinity") for p in ("fp32", "bf16")}
    assert all(r["images_per_s"] > 0 for r in data["train"] + data["export"])
    walk = data["walk"]["8"]
    assert walk["argmax_agreement"] == 1.0 and walk["sparse_ms"] > 0 and walk["dense_ms"] > 0
    assert data["voc_hours"]["resnet10t/fp32"]["total"] > 0
