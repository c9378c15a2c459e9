"""Fault injection, for real: tools killed with SIGKILL / SIGTERM / SIGINT mid-run, corrupt
recipes, data sets and checkpoints written by the test. Each case asserts the exact outcome:
exit code, the one stderr line and what it names, which files exist, and that a rerun
finishes with outputs identical to an uninterrupted run's.

Where a kill lands is random (after which checkpoint / how many images); the kill tests name
the seed when they fail, and `PSA_FAULT_SEED=<n>` replays it. Slow cases share one tiny
trained run per module and run their short, independent tool calls two at a time.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, run_cli, tool_command
from psa import load_recipe
from psa.io import save_label_png

DEMO = str(CORE_DEMO)
SEED = int(os.environ.get("PSA_FAULT_SEED", str(time.time_ns() % 1_000_000)))
RNG = random.Random(SEED)
WHERE = f"(PSA_FAULT_SEED={SEED})"
# single-threaded children: lean on a shared 2-core machine, and the same arithmetic in every run
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# 16 images / batch 8 = 2 steps per epoch; 4 epochs = 8 steps, a checkpoint after each
TRAIN_STEPS = 8
TRAIN_ARGS = (DEMO, *TINY_OVERRIDES, "run.deterministic=true", "cam.train.epochs=4",
              "cam.train.checkpoint_every=1")
NUM_IMAGES = 40  # the inference stages: enough images that a kill lands mid-way


# ----------------------------------------------------------------------------- helpers


def run(tool: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(tool_command(tool, *args), capture_output=True, text=True, timeout=timeout,
                          env=ENV, cwd=ROOT)


def run_many(jobs: dict[str, tuple], workers: int = 2) -> dict[str, subprocess.CompletedProcess]:
    """Independent short tool runs, two at a time (they mostly import torch)."""
    with ThreadPoolExecutor(workers) as pool:
        futures = {name: pool.submit(run, *job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


class Child:
    """A tool running in the background, its output in files (a pipe could fill and block it)."""

    def __init__(self, folder: Path, tool: str, *args: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.out_path, self.err_path = folder / f"{tool}.out", folder / f"{tool}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(tool_command(tool, *args), stdout=out, stderr=err, env=ENV, cwd=ROOT)

    def output(self) -> str:
        return f"stdout:\n{self.out_path.read_text()[-2000:]}\nstderr:\n{self.err_path.read_text()[-3000:]}"

    def wait_until(self, condition, what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"exited with {self.proc.returncode} before {what} {WHERE}\n{self.output()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting for {what} {WHERE}\n{self.output()}")
            time.sleep(0.005)

    def signal_and_wait(self, sig: int, timeout: float = 300) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


def count_files(folder: Path, suffix: str) -> int:
    try:
        return sum(1 for entry in os.scandir(folder) if entry.name.endswith(suffix) and not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


def complete_steps(ckpt_dir: Path) -> list[int]:
    if not ckpt_dir.is_dir():
        return []
    return sorted(int(p.name[5:]) for p in ckpt_dir.iterdir()
                  if p.is_dir() and re.fullmatch(r"step_\d{8}", p.name) and (p / "state.json").is_file())


def latest_step(ckpt_dir: Path) -> int:
    steps = complete_steps(ckpt_dir)
    return steps[-1] if steps else 0


def resumed_from(stdout: str) -> int:
    match = re.search(r"resumed from step\W+(\d+)", stdout)
    assert match, f"no 'resumed from step' row in:\n{stdout[-2000:]}"
    return int(match.group(1))


def load_state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def assert_bit_exact(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    differ = [k for k in want if got[k].dtype != want[k].dtype or not torch.equal(got[k], want[k])]
    assert not differ, f"{len(differ)} tensors differ, e.g. {differ[:3]} {WHERE}"


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{result.stderr[-3000:]}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def file_snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def temp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob(".*.tmp"))


def plant_temp_files(*folders: Path) -> list[Path]:
    """What a write killed mid-way leaves: '.<name>.<random>.tmp' (see psa.io)."""
    planted = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ".syn_train_00000.png.k1ll3d.tmp"
        path.write_bytes(b"\x89PNG half a file")
        planted.append(path)
    return planted


def assert_complete(folder: Path) -> int:
    """Every (non-temporary) file is whole: PNGs decode, npz arrays load, JSON parses."""
    checked = 0
    for path in folder.rglob("*"):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.load()
        elif path.suffix == ".npz":
            with np.load(path) as data:
                assert data.files, path
                for key in data.files:
                    data[key]
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            continue
        checked += 1
    return checked


def assert_same_files(got: Path, want: Path) -> None:
    """Same names; PNGs byte-identical; npz arrays identical (a zip's timestamps may differ)."""
    names = sorted(p.name for p in want.iterdir())
    assert sorted(p.name for p in got.iterdir()) == names, got
    for name in names:
        if name.endswith(".npz"):
            with np.load(got / name) as a, np.load(want / name) as b:
                assert a.files == b.files, name
                for key in b.files:
                    assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), f"{name}:{key}"
        else:
            assert (got / name).read_bytes() == (want / name).read_bytes(), name


def ids_with_all(folders: list[Path], suffixes: list[str]) -> set[str]:
    sets = [{p.name[: -len(s)] for p in f.glob(f"*{s}") if not p.name.startswith(".")}
            for f, s in zip(folders, suffixes)]
    return set.intersection(*sets)


# ----------------------------------------------------------------------------- training faults


@pytest.fixture(scope="module")
def reference_training(tmp_path_factory):
    """The uninterrupted tiny CAM run every interrupted run must reproduce bit for bit."""
    folder = tmp_path_factory.mktemp("reference")
    result = run("train", *TRAIN_ARGS, f"run.dir={folder}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert resumed_from(result.stdout) == 0
    return load_state_dict(folder / "cam" / "model.pt")


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_is_bit_exact(reference_training, tmp_path):
    target = RNG.randint(1, TRAIN_STEPS - 3)
    run_dir = tmp_path / "run"
    ckpts = run_dir / "cam" / "checkpoints"
    child = Child(tmp_path, "train", *TRAIN_ARGS, f"run.dir={run_dir}")
    child.wait_until(lambda: latest_step(ckpts) >= target, f"checkpoint step {target}")
    assert child.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
    reached = latest_step(ckpts)
    assert target <= reached < TRAIN_STEPS, WHERE
    assert not (run_dir / "cam" / "model.pt").exists()
    # what a kill during a save leaves behind: a temporary checkpoint folder, a renamed one
    # whose state.json was never written, a half-written model.pt
    (ckpts / "step_00000099.tmp").mkdir(exist_ok=True)
    (ckpts / "step_00000099.tmp" / "model.safetensors").write_bytes(b"half")
    (ckpts / "step_00000098").mkdir()
    (ckpts / "step_00000098" / "model.safetensors").write_bytes(b"half")
    stale_weights = run_dir / "cam" / ".model.pt.k1ll3d.tmp"
    stale_weights.write_bytes(b"half")

    second = run("train", *TRAIN_ARGS, f"run.dir={run_dir}")
    assert second.returncode == 0, f"{WHERE}\n{second.stderr[-3000:]}"
    assert resumed_from(second.stdout) == reached, WHERE
    assert not (ckpts / "step_00000099.tmp").exists() and not (ckpts / "step_00000098").exists()
    assert not stale_weights.exists()
    assert complete_steps(ckpts)[-1] == TRAIN_STEPS
    assert_bit_exact(load_state_dict(run_dir / "cam" / "model.pt"), reference_training)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_checkpoints_exits_130_and_resumes(reference_training, tmp_path, sig):
    target = RNG.randint(1, TRAIN_STEPS - 3)
    run_dir = tmp_path / "run"
    ckpts = run_dir / "cam" / "checkpoints"
    child = Child(tmp_path, "train", *TRAIN_ARGS, f"run.dir={run_dir}")
    child.wait_until(lambda: latest_step(ckpts) >= target, f"checkpoint step {target}")
    assert child.signal_and_wait(sig) == 130, child.output()
    lines = child.err_path.read_text().strip().splitlines()
    assert len(lines) == 1, child.output()
    match = re.fullmatch(r"stopped by signal at step (\d+); resume with (\S+)", lines[0])
    assert match and match.group(2) == "cam.train.resume=auto", lines[0]
    load_recipe(DEMO, [match.group(2)])  # the hint is a recipe key a user can paste
    stopped = int(match.group(1))
    assert target <= stopped <= TRAIN_STEPS, WHERE
    # the checkpoint of the step reached, complete, and nothing final
    assert latest_step(ckpts) == stopped
    state = json.loads((ckpts / f"step_{stopped:08d}" / "state.json").read_text())
    assert state["step"] == stopped
    assert (ckpts / f"step_{stopped:08d}" / "model.safetensors").is_file()
    assert not list(ckpts.glob("*.tmp"))
    assert not (run_dir / "cam" / "model.pt").exists()

    second = run("train", *TRAIN_ARGS, f"run.dir={run_dir}")
    assert second.returncode == 0, f"{WHERE}\n{second.stderr[-3000:]}"
    assert resumed_from(second.stdout) == stopped > 0
    assert_bit_exact(load_state_dict(run_dir / "cam" / "model.pt"), reference_training)


@pytest.fixture(scope="module")
def training_errors(tmp_path_factory):
    """Three training runs that must stop with exit code 2, run two at a time:
    run.dir under a regular file; a 1e30 learning rate; a resume whose checkpoint was written
    with another optimizer (SGD, here by a run in this process) than the recipe now names."""
    from psa.framework.training import train_task

    unwritable = tmp_path_factory.mktemp("unwritable")
    (unwritable / "blocker").write_text("a regular file, not a folder\n")
    nan = tmp_path_factory.mktemp("nan")
    mismatch = tmp_path_factory.mktemp("mismatch")
    sgd = ("cam.train.optimizer=sgd", "cam.train.max_steps=1", "cam.train.checkpoint_every=1")
    train_task(load_recipe(DEMO, [*TINY_OVERRIDES, f"run.dir={mismatch / 'run'}", *sgd]), "cam")
    snapshots = {"unwritable": file_snapshot(unwritable), "mismatch": file_snapshot(mismatch)}
    nan_args = (DEMO, *TINY_OVERRIDES, f"run.dir={nan / 'run'}", "cam.train.lr=1e30", "cam.train.checkpoint_every=1")
    results = run_many({
        "unwritable": ("train", DEMO, *TINY_OVERRIDES, f"run.dir={unwritable / 'blocker' / 'run'}",
                       "cam.train.max_steps=1"),
        "nan": ("train", *nan_args),
        "mismatch": ("train", DEMO, *TINY_OVERRIDES, f"run.dir={mismatch / 'run'}", "cam.train.optimizer=adamw"),
    })
    return {"unwritable": (results["unwritable"], unwritable, snapshots["unwritable"]),
            "nan": (results["nan"], nan, nan_args),
            "mismatch": (results["mismatch"], mismatch, snapshots["mismatch"])}


@pytest.mark.slow
def test_unwritable_run_dir_exits_2_and_writes_nothing(training_errors):
    result, folder, before = training_errors["unwritable"]
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_error_line(result)
    run_dir = folder / "blocker" / "run"
    assert f"run directory {run_dir}" in line and "not writable" in line and "run.dir" in line
    assert file_snapshot(folder) == before  # the blocker file alone, untouched
    assert (folder / "blocker").read_text() == "a regular file, not a folder\n"


@pytest.mark.slow
def test_non_finite_loss_exits_2_naming_the_step_and_keeps_the_last_checkpoint(training_errors):
    from safetensors.torch import load_file

    from psa.data import build_source
    from psa.framework.classifier import build_cam_model

    result, folder, args = training_errors["nan"]
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_error_line(result)
    ckpts = folder / "run" / "cam" / "checkpoints"
    good = ckpts / "step_00000001"
    # step 1 is computed with the initial weights; its 1e30 update makes step 2 blow up
    assert re.search(r"cam: loss is (nan|inf|-inf) at step 2; stopped\.", line), line
    assert f"Last good checkpoint: {good} " in line
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_00000001"]
    assert json.loads((good / "state.json").read_text())["step"] == 1
    weights = load_file(str(good / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    recipe = load_recipe(DEMO, args[1:])
    model = build_cam_model(recipe, len(build_source(recipe.data, "train").classes), load_weights=False)
    model.load_state_dict(weights, strict=True)  # loadable into the model it came from
    assert not (folder / "run" / "cam" / "model.pt").exists()


@pytest.mark.slow
def test_resume_from_a_checkpoint_that_does_not_fit_exits_2_and_writes_nothing(training_errors):
    result, folder, before = training_errors["mismatch"]
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_error_line(result)
    checkpoint = folder / "run" / "cam" / "checkpoints" / "step_00000001"
    assert f"checkpoint {checkpoint} does not fit this run (" in line, line
    assert "cam.train.resume=never" in line
    assert file_snapshot(folder) == before  # checkpoint, weights, recipe.yaml, run_info.json untouched


# ----------------------------------------------------------------------------- inference faults


def base_overrides(run_dir: Path) -> tuple[str, ...]:
    return (*TINY_OVERRIDES, f"data.synthetic.num_train={NUM_IMAGES}", "cam.train.max_steps=2",
            "affinity.train.max_steps=2", f"eval.num_pictures={NUM_IMAGES}", f"run.dir={run_dir}")


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A tiny run on 40 images: CAM and AffinityNet trained in this process (2 steps each),
    and the uninterrupted CAM export, random walk and evaluation every killed rerun must
    reproduce (export and walk through the same CLI, environment and thread count)."""
    from psa.framework.training import train_task
    from psa.framework.evaluation import evaluate

    folder = tmp_path_factory.mktemp("base")
    recipe = load_recipe(DEMO, base_overrides(folder))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_task(recipe, "cam")
        result = run("export_cams", DEMO, *base_overrides(folder))
        assert result.returncode == 0, result.stderr[-3000:]
        train_task(recipe, "affinity")
        result = run("random_walk", DEMO, *base_overrides(folder))
        assert result.returncode == 0, result.stderr[-3000:]
        evaluate(recipe, "rw")
    finally:
        torch.set_num_threads(threads)
    assert count_files(folder / "affinity" / "pseudo", ".png") == NUM_IMAGES
    return folder


def _prepare_export(base_run, run_dir):
    shutil.copy2(base_run / "cam" / "model.pt", _mkdir(run_dir / "cam") / "model.pt")


def _prepare_random_walk(base_run, run_dir):
    shutil.copy2(base_run / "affinity" / "model.pt", _mkdir(run_dir / "affinity") / "model.pt")
    shutil.copytree(base_run / "cam" / "cams", run_dir / "cam" / "cams")


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


# tool, stage folder, prepare, output folders (the last one is polled), done file
SHARDED_STAGES = {
    "export": ("export_cams", "cam", _prepare_export, ["cams", "pred", "labels"], "export_done.json"),
    "random_walk": ("random_walk", "affinity", _prepare_random_walk, ["rw_scores", "pseudo_crf", "pseudo"],
                    "random_walk_done.json"),
}


@pytest.mark.slow
@pytest.mark.parametrize("stage_name", list(SHARDED_STAGES))
def test_stage_killed_mid_way_leaves_whole_files_and_rerun_completes_the_rest(base_run, tmp_path, stage_name):
    tool, stage, prepare, names, done_file = SHARDED_STAGES[stage_name]
    run_dir = tmp_path / "run"
    prepare(base_run, run_dir)
    out = run_dir / stage
    folders = [out / name for name in names]
    suffixes = [".npz" if name in ("cams", "rw_scores") else ".png" for name in names]
    target = RNG.randint(3, NUM_IMAGES // 2)
    child = Child(tmp_path, tool, DEMO, *base_overrides(run_dir))
    child.wait_until(lambda: count_files(folders[-1], ".png") >= target, f"{target} finished images")
    assert child.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
    assert not (out / done_file).exists()
    assert assert_complete(out) >= target
    done_before = ids_with_all(folders, suffixes)
    assert target <= len(done_before) < NUM_IMAGES, WHERE
    kept = {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()
            if not p.name.startswith(".") and p.name.split(".")[0] in done_before}
    plant_temp_files(*folders)

    second = run(tool, DEMO, *base_overrides(run_dir))
    assert second.returncode == 0, second.stderr[-3000:]
    assert temp_files(out) == []
    summary = json.loads((out / done_file).read_text())
    assert summary["written_here"] == NUM_IMAGES - len(done_before)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items()), "finished images were redone"
    for folder in folders:
        assert_same_files(folder, base_run / stage / folder.name)


@pytest.mark.slow
def test_eval_killed_while_writing_leaves_whole_files_and_rerun_matches(base_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(base_run / "affinity" / "pseudo", run_dir / "affinity" / "pseudo")
    out = run_dir / "affinity" / "eval" / "rw"
    target = RNG.randint(1, NUM_IMAGES // 2 - 4)
    child = Child(tmp_path, "eval", DEMO, *base_overrides(run_dir), "--source", "rw")
    child.wait_until(lambda: count_files(out / "pictures", ".png") >= target, f"{target} evaluation pictures")
    assert child.signal_and_wait(signal.SIGKILL) == -signal.SIGKILL
    assert count_files(out / "pictures", ".png") < NUM_IMAGES, f"the kill came too late {WHERE}"
    assert assert_complete(out) >= 1 + target  # metrics.json first, then pictures
    plant_temp_files(out, out / "pictures")

    second = run("eval", DEMO, *base_overrides(run_dir), "--source", "rw")
    assert second.returncode == 0, second.stderr[-3000:]
    assert temp_files(out) == []
    want = base_run / "affinity" / "eval" / "rw"
    got_metrics, want_metrics = (json.loads((d / "metrics.json").read_text()) for d in (out, want))
    got_metrics.pop("seconds"), want_metrics.pop("seconds")
    assert got_metrics == want_metrics
    assert (out / "iou_chart.png").read_bytes() == (want / "iou_chart.png").read_bytes()
    assert_same_files(out / "pictures", want / "pictures")


# ----------------------------------------------------------------------------- bad recipes

CAM_TRAIN = ("cam.train.max_steps=1",)
# name: (recipe files {name: text}, recipe to run, overrides, what the one line must contain)
RECIPE_CASES = {
    "unknown_key": ({}, None, ["cam.train.lrr=0.1"], ["unknown recipe key 'cam.train.lrr'", "'cam.train.lr'"]),
    "wrong_type": ({}, None, ["cam.train.epochs=many"], ["recipe key 'cam.train.epochs' must be an integer", "'many'"]),
    "missing_base": ({"r.yaml": "_base_: nothere.yaml\n"}, "r.yaml", [], ["_base_ file not found: nothere.yaml", "r.yaml"]),
    "inheritance_cycle": ({"a.yaml": "_base_: b.yaml\n", "b.yaml": "_base_: a.yaml\n"}, "a.yaml", [],
                          ["_base_ inheritance cycle", "a.yaml -> ", "b.yaml -> ", "a.yaml"]),
    "invalid_yaml": ({"r.yaml": "_base_: DEMO\ncam: {train: [1, 2}\n"}, "r.yaml", [], ["invalid YAML in ", "r.yaml line 2"]),
    "not_a_mapping": ({"r.yaml": "- just\n- a list\n"}, "r.yaml", [], ["recipe ", "r.yaml must be a mapping"]),
    "override_without_value": ({}, None, ["cam.train.lr"], ["override 'cam.train.lr' must look like key=value"]),
    "negative_lr": ({}, None, ["cam.train.lr=-0.1"], ["recipe key 'cam.train.lr' must be > 0, got -0.1"]),
    "negative_logt": ({}, None, ["random_walk.logt=-1"], ["recipe key 'random_walk.logt' must be >= 0, got -1"]),
    "radius_below_2": ({}, None, ["affinity.radius=1"], ["recipe key 'affinity.radius' must be >= 2, got 1"]),
    "crop_not_multiple_of_8": ({}, None, ["cam.crop_size=50"], ["recipe key 'cam.crop_size' must be a multiple of 8", "got 50"]),
}


@pytest.mark.parametrize("case", list(RECIPE_CASES))
def test_bad_recipe_exits_2_with_one_line_and_writes_nothing(case, tmp_path):
    files, recipe, overrides, expected = RECIPE_CASES[case]
    for name, text in files.items():
        (tmp_path / name).write_text(text.replace("DEMO", DEMO))
    recipe_path = str(tmp_path / recipe) if recipe else DEMO
    before = file_snapshot(tmp_path)
    result = run_cli("train", recipe_path, *TINY_OVERRIDES, *CAM_TRAIN, f"run.dir={tmp_path / 'run'}", *overrides)
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_error_line(result)
    for text in expected:
        assert text in line, (text, line)
    assert file_snapshot(tmp_path) == before
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- bad data

VOC_IDS = ["img0", "img1", "img2", "img3"]


def write_voc(root: Path) -> Path:
    """A valid 4-image VOC tree, 32x32 JPEGs, masks via save_label_png, labels from the masks."""
    rng = np.random.default_rng(0)
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    for i, image_id in enumerate(VOC_IDS):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            root / "JPEGImages" / f"{image_id}.jpg", quality=90)
        mask = np.zeros((32, 32), np.uint8)
        mask[8:20, 8:20] = 1 + i % 2
        save_label_png(root / "SegmentationClass" / f"{image_id}.png", mask)
    write_list(root, VOC_IDS)
    return root


def write_list(root: Path, lines: list[str]) -> None:
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(lines) + "\n")


def voc_args(root: Path, run_dir: Path, *extra: str) -> tuple[str, ...]:
    return (DEMO, "data.kind=voc", f"data.root={root}", "data.train_split=train", "data.eval_split=train",
            "data.val_split=train", "model.backbone=resnet10t", "run.num_workers=0", "cam.crop_size=32",
            "cam.resize_long=[30,34]", "cam.train.batch_size=2", "cam.train.max_steps=1", f"run.dir={run_dir}",
            *extra)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# name: (fault applied to the valid tree, extra overrides, what the one line must contain; {root} filled in)
DATA_CASES = {
    "missing_root": (lambda r: shutil.rmtree(r), (), ["data root {root} does not exist", "data.root"]),
    "missing_list": (lambda r: None, ("data.train_split=nosuch",),
                     ["split 'nosuch' not found", "{root}/ImageSets/Segmentation/nosuch.txt"]),
    "corrupt_jpeg": (lambda r: (r / "JPEGImages" / "img2.jpg").write_bytes(b"this is not a JPEG"), (),
                     ["cannot read image {root}/JPEGImages/img2.jpg: cannot identify image file"]),
    "truncated_jpeg": (lambda r: _truncate(r / "JPEGImages" / "img2.jpg"), (),
                       ["cannot read image {root}/JPEGImages/img2.jpg: image file is truncated"]),
    "mask_size_differs": (lambda r: save_label_png(r / "SegmentationClass" / "img2.png", np.ones((16, 32), np.uint8)),
                          (), ["mask {root}/SegmentationClass/img2.png is 16x32 (HxW) but its image is 32x32"]),
    "class_id_out_of_range": (lambda r: save_label_png(r / "SegmentationClass" / "img2.png",
                                                       np.full((32, 32), 7, np.uint8)),
                              (), ["mask {root}/SegmentationClass/img2.png has value 7, outside 0..2"]),
    "empty_image_label": (lambda r: (r / "image_labels.txt").write_text("img0 1\nimg1 2\nimg2\nimg3 1\n"), (),
                          ["image img2 has no foreground class label", "{root}/image_labels.txt"]),
    "duplicate_ids": (lambda r: write_list(r, ["img0", "img1", "img2", "img1"]), (),
                      ["{root}/ImageSets/Segmentation/train.txt: duplicate image id 'img1'"]),
    "dotdot_id": (lambda r: write_list(r, ["img0", "../img1"]), (),
                  ["{root}/ImageSets/Segmentation/train.txt:2: image id '../img1' contains '..'"]),
    "absolute_id": (lambda r: write_list(r, ["img0", f"{r}/JPEGImages/img1"]), (),
                    ["{root}/ImageSets/Segmentation/train.txt:2: image id '{root}/JPEGImages/img1' is an absolute path"]),
}


@pytest.fixture(scope="module")
def data_results(tmp_path_factory):
    cases = {}
    for name, (fault, extra, _) in DATA_CASES.items():
        folder = tmp_path_factory.mktemp(f"data_{name}")
        root = write_voc(folder / "voc")
        fault(root)
        cases[name] = (folder, root, ("train", *voc_args(root, folder / "run", *extra)))
    return {name: (run_cli(*job), folder, root) for name, (folder, root, job) in cases.items()}


def test_the_valid_voc_tree_passes_the_checks(tmp_path):
    """The control: without its fault, the tree every bad-data case starts from is fine."""
    from psa.data import VocSource
    from psa.data.base import check_files

    source = VocSource(write_voc(tmp_path / "voc"), "train")
    check_files(source, labels=True, masks=True)
    assert source.ids == VOC_IDS


@pytest.mark.slow
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_exits_2_with_one_line_and_writes_nothing(case, data_results):
    result, folder, root = data_results[case]
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_error_line(result)
    for text in DATA_CASES[case][2]:
        assert text.format(root=root) in line, (text, line)
    assert not (folder / "run").exists()


# ----------------------------------------------------------------------------- bad checkpoints

MARKER_CODE = "open({path!r}, 'w').write('pwned')"


class _Exploit:
    """Unpickling this calls exec(code): what a malicious model.pt does."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (builtins.exec, (self.code,))


def _malicious(path: Path, marker: Path) -> None:
    torch.save({"meta": {"task": "cam"}, "state_dict": _Exploit(MARKER_CODE.format(path=str(marker)))}, path)


CHECKPOINT_CASES = {
    "affinity_model_for_cam": ["checkpoint {model} is a 'affinity' model, this step needs a 'cam' model"],
    "wrong_backbone": ["checkpoint {model} was trained with backbone 'resnet10t'",
                       "the recipe says model.backbone='resnet18'"],
    "truncated": ["cannot load checkpoint {model}: "],
    "malicious_pickle": ["cannot load checkpoint {model}: ", "it holds pickled objects other than tensors"],
}


@pytest.fixture(scope="module")
def checkpoint_results(base_run, tmp_path_factory):
    jobs, cases = {}, {}
    for name in CHECKPOINT_CASES:
        folder = tmp_path_factory.mktemp(f"ckpt_{name}")
        model = folder / "run" / "cam" / "model.pt"
        model.parent.mkdir(parents=True)
        marker = folder / "pwned"
        extra = []
        if name == "affinity_model_for_cam":
            shutil.copy2(base_run / "affinity" / "model.pt", model)
        elif name == "wrong_backbone":
            shutil.copy2(base_run / "cam" / "model.pt", model)
            extra = ["model.backbone=resnet18"]
        elif name == "truncated":
            data = (base_run / "cam" / "model.pt").read_bytes()
            model.write_bytes(data[: len(data) // 2])
        else:
            _malicious(model, marker)
        cases[name] = (folder, model, marker, file_snapshot(folder))
        jobs[name] = ("export_cams", DEMO, *base_overrides(folder / "run"), *extra)
    results = run_many(jobs)
    return {name: (results[name], *cases[name]) for name in CHECKPOINT_CASES}


def test_the_malicious_pickle_really_runs_code_without_weights_only(tmp_path):
    """The control: the payload the loader refuses does execute code when unpickled plainly."""
    marker = tmp_path / "pwned"
    _malicious(tmp_path / "model.pt", marker)
    torch.load(tmp_path / "model.pt", weights_only=False)
    assert marker.read_text() == "pwned"


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint_exits_2_with_one_line_and_writes_nothing(case, checkpoint_results):
    result, folder, model, marker, before = checkpoint_results[case]
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_error_line(result)
    for text in CHECKPOINT_CASES[case]:
        assert text.format(model=model) in line, (text, line)
    assert file_snapshot(folder) == before  # no output folder, no marker file
    assert not marker.exists()
