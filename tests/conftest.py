"""Shared fixtures. Every test runs offline, on CPU, on data it makes itself or reads from
../shared/data (skipping when that is absent); the repository ships no fetched data."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from psa.engine.report import Reporter

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub in tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
COCO_VOC_MINI = SHARED_DATA / "coco_voc_mini"
DEMO = ROOT / "recipes" / "demo.yaml"  # the whole demo: PSA and IRN
CORE_DEMO = ROOT / "recipes" / "_base_" / "demo.yaml"  # the demo without IRN: what the core's tests build on


@pytest.fixture
def write_recipe(tmp_path):
    """Write a YAML recipe text into tmp_path and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


def stage_dir(recipe, stage: str) -> Path:
    """<run.dir>/<stage> of a recipe (psa.layout.RunLayout)."""
    from psa.layout import RunLayout

    return RunLayout.of(recipe).stage(stage).path


def tool_command(tool: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / f"{tool}.py"), *args]


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    """`psa ARGV` in this process (no torch import to pay): its exit code and what it printed.
    For the tools' answers to bad input; what needs a process of its own (signals, several
    processes) runs `tool_command` instead."""
    import contextlib
    import io

    from psa.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return subprocess.CompletedProcess(["psa", *argv], code, out.getvalue(), err.getvalue())


def run_step(recipe, name: str, reporter=None):
    """Run one registered step, as `psa step NAME` does."""
    from psa.framework.registry import REGISTRY

    return REGISTRY.get(name).run(recipe, reporter or Reporter())


def launch(script: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """`script` under `accelerate launch` on 2 CPU processes (gloo)."""
    port = str(random.randint(20000, 40000))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", port, str(script), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)

# A recipe small enough for CPU tests: 48 px synthetic images, resnet10t, a few steps.
TINY_OVERRIDES = [
    "data.synthetic.num_train=16", "data.synthetic.num_val=6", "data.synthetic.image_size=48",
    "data.synthetic.max_objects=1", "model.backbone=resnet10t", "run.num_workers=0",
    "cam.crop_size=48", "cam.resize_long=[44,52]", "cam.scales=[1.0,0.5]",
    "cam.train.batch_size=8", "cam.train.epochs=2", "cam.train.lr=0.05",
    "affinity.crop_size=48", "affinity.train.batch_size=8", "affinity.train.epochs=2",
    "affinity.init=imagenet",
    "seg.crop_size=48", "seg.train.batch_size=8", "seg.train.epochs=2", "seg.scales=[1.0]",
    "eval.num_pictures=2",
]


def method_overrides() -> list[str]:
    """Each method's test-size settings (tests/methods/<name>/tiny.yaml) as overrides: what a
    recipe that runs every registered step adds to TINY_OVERRIDES. A method's folder deleted,
    its settings go with it."""
    import json

    import yaml

    def flat(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}={json.dumps(value)}"

    return [item for path in sorted((ROOT / "tests" / "methods").glob("*/tiny.yaml"))
            for item in flat(yaml.safe_load(path.read_text()) or {}, "")]


@pytest.fixture
def tiny_recipe(tmp_path):
    """Build the demo recipe (its core: recipes/_base_/demo.yaml, or `base`) shrunk to test
    size, with extra overrides; run.dir in tmp_path."""
    from psa import load_recipe

    def build(*overrides: str, run_dir: Path | None = None, base: Path = CORE_DEMO):
        run = run_dir or tmp_path / "run"
        return load_recipe(base, [*TINY_OVERRIDES, f"run.dir={run}", *overrides])

    return build


# the shared finished run: CAMs not all zero (8 steps at lr 0.003), one walk step of the 6x6
# maps (more make every mask uniform), the walk's CRF masks too, one epoch for the others
FINISHED_OVERRIDES = [*TINY_OVERRIDES, "cam.train.lr=0.003", "cam.train.epochs=4", "affinity.train.epochs=1",
                      "seg.train.epochs=1", "random_walk.logt=1", "random_walk.crf=true", "eval.crf_workers=1"]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One tiny finished run of the default pipeline (the core demo at test size), shared by
    every test that only reads it: copy it (shutil.copytree) before changing anything."""
    from psa import load_recipe
    from psa.pipeline import run

    run_dir = tmp_path_factory.mktemp("finished") / "run"
    run(load_recipe(CORE_DEMO, [*FINISHED_OVERRIDES, f"run.dir={run_dir}"]), Reporter())
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A copy of the finished run to change, whose recipe.yaml names the copy as its run.dir."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy, symlinks=True)
    recipe = copy / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace(str(finished_run), str(copy)))
    return copy


def assert_resumed_like_straight(reference, resumed, task: str) -> dict:
    """A run resumed from a checkpoint took the rest of `reference`'s steps with exactly its
    losses and ended with bit-identical weights. Returns the reference's metadata."""
    import pytest
    import torch

    from psa.engine.checkpoints import load_weights

    start = resumed.resumed_from
    assert resumed.steps == reference.steps
    assert resumed.losses == pytest.approx(reference.losses[start:], rel=0, abs=0)
    a, meta = load_weights(reference.weights, task, "resnet10t")
    b, _ = load_weights(resumed.weights, task, "resnet10t")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    return meta



class Recording(Reporter):
    """Keeps what a run logs and its step events."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []

    def log(self, message: str) -> None:
        self.events.append(("log", message))

    def step(self, name: str, event: str, detail: str = "") -> None:
        self.events.append((event, name))

    @property
    def lines(self) -> list[str]:
        return [text for kind, text in self.events if kind == "log"]


def export_cams(recipe, reporter=None) -> dict:
    return run_step(recipe, "export_cams", reporter)


def run_random_walk(recipe, reporter=None) -> dict:
    return run_step(recipe, "random_walk", reporter)


def load_cam_file(path):
    """→ (cams (K, H, W) float32, class ids (K,) int64)."""
    from psa.framework.cams import CamFile

    cam = CamFile.read(path)
    return cam.cams, cam.class_ids
