"""Every benchmark in bench/ still runs: each script's `main(["--smoke", "--json", PATH])`,
in this process (bench/ on sys.path, one torch thread), exits 0 and writes its results with
the machine they were measured on. A smoke run takes toy sizes on the CPU; its numbers mean
nothing."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from conftest import ROOT

BENCH = ROOT / "bench"
SCRIPTS = sorted(path.stem for path in BENCH.glob("*.py") if path.stem != "harness")


def run_bench(name: str, args: list[str], monkeypatch) -> int:
    """bench/<name>.py's main(args) in this process, as `python bench/<name>.py` would see it."""
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the subprocesses some benchmarks start
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a second thread on a busy 2-core machine only slows the toy sizes down
    try:
        return importlib.import_module(name).main(args)
    finally:
        torch.set_num_threads(threads)


def test_the_scripts_are_found():
    assert {"random_walk", "cam_export", "gpu_stages", "skip_path"} <= set(SCRIPTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_benchmark_runs_in_smoke_mode_and_writes_its_json(name, tmp_path, monkeypatch, capsys):
    out = tmp_path / "results.json"
    assert run_bench(name, ["--smoke", "--json", str(out)], monkeypatch) == 0
    assert capsys.readouterr().out.strip()  # it printed its table
    written = json.loads(out.read_text())
    assert written["machine"]["torch"] == torch.__version__ and written["machine"]["cores"] >= 1
    assert len(written) > 1  # the results, not only the machine
