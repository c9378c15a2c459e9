"""Bad input and faults a demanding user or a security-minded reviewer tries: each ends in one
line naming what is wrong, a non-zero exit, no traceback, nothing half-written, and the
user's own files untouched. Commands run in this process (`run_cli`) unless the case needs
a process of its own (a signal, a native crash it must survive, two at once)."""

from __future__ import annotations

import builtins
import errno
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, run_cli, tool_command
from psa import load_recipe
from psa.errors import PsaError
from psa.framework import run_lock
from psa.io import file_mode, save_label_png

DEMO = str(CORE_DEMO)


def one_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return lines[0]


def snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def photos(folder: Path, count: int = 2) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for k in range(count):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"photo{k}.png")
    return folder


# ----------------------------------------------------------------------------- outputs never touch inputs


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_predict_refuses_an_output_folder_among_its_photos(run_copy, tmp_path, where):
    folder = photos(tmp_path / "album" / "photos")
    out = {"same": folder, "inside": folder / "masks", "around": folder.parent}[where]
    before = snapshot(tmp_path / "album")
    line = one_line(run_cli("predict", str(run_copy / "recipe.yaml"), "--images", str(folder), "--out", str(out)))
    assert f"--out {out}" in line and "the photos" in line
    assert snapshot(tmp_path / "album") == before  # byte for byte, and nothing added


def test_predict_refuses_an_output_folder_holding_a_listed_photo(run_copy, tmp_path):
    folder = photos(tmp_path / "photos")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{folder / 'photo0.png'}\n")
    line = one_line(run_cli("predict", str(run_copy / "recipe.yaml"), "--images", str(listing), "--out", str(folder)))
    assert f"holds input image {folder / 'photo0.png'}" in line


def huge_png(path: Path, width: int, height: int) -> None:
    """A tiny file whose header says width x height (what a decompression bomb looks like)."""
    Image.new("L", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[ihdr + 17:ihdr + 21] = zlib.crc32(bytes(data[ihdr:ihdr + 17])).to_bytes(4, "big")
    path.write_bytes(bytes(data))


def test_a_huge_image_is_named_and_skipped_the_others_predicted(run_copy, tmp_path):
    folder = photos(tmp_path / "photos", count=1)
    huge_png(folder / "huge.png", 11000, 11000)
    out = tmp_path / "masks"
    line = one_line(run_cli("predict", str(run_copy / "recipe.yaml"), "--images", str(folder), "--out", str(out)))
    assert "1 of 2 images could not be read" in line and "11000x11000 is more than the" in line
    assert (out / "photo0.png").is_file() and not (out / "huge.png").exists()


# ----------------------------------------------------------------------------- one run per run folder


def _pipeline_at(barrier, recipe_file: str, queue) -> None:
    import psa.pipeline

    recipe = load_recipe(recipe_file)
    barrier.wait()
    try:
        psa.pipeline.run(recipe)
        queue.put("ran")
    except PsaError as err:
        queue.put(f"refused: {err}")


def test_two_pipelines_started_together_on_one_folder_one_runs_ten_times_out_of_ten(run_copy):
    context = multiprocessing.get_context("fork")
    for _ in range(10):
        barrier, queue = context.Barrier(2), context.Queue()
        children = [context.Process(target=_pipeline_at, args=(barrier, str(run_copy / "recipe.yaml"), queue))
                    for _ in range(2)]
        for child in children:
            child.start()
        outcomes = sorted(queue.get(timeout=120) for _ in children)
        for child in children:
            child.join(60)
        assert outcomes[0] == "ran" and outcomes[1].startswith("refused: run.dir "), outcomes
        assert "is in use by another psa command (pid " in outcomes[1]


def _hold_then_wait(run_dir: str, ready) -> None:
    run_lock.acquire(run_dir)
    ready.set()
    time.sleep(60)


def test_the_lock_of_a_killed_command_is_taken_over_with_one_line(tmp_path):
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_then_wait, args=(str(tmp_path / "run"), ready))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(PsaError, match=rf"run.dir {tmp_path / 'run'} is in use by another psa command "
                                       rf"\(pid {holder.pid} on "):
        run_lock.acquire(tmp_path / "run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    line = run_lock.acquire(tmp_path / "run")
    try:
        assert line is not None and f"was locked by pid {holder.pid}" in line and "took its lock over" in line
        assert run_lock.acquire(tmp_path / "run") is None  # this process again: held already
    finally:
        run_lock.release_all()
    assert run_lock.acquire(tmp_path / "run") is None  # released cleanly: nobody to take over from
    run_lock.release_all()


# ----------------------------------------------------------------------------- untrusted COCO files


def coco_file(path: Path, segmentation) -> Path:
    path.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "height": 20, "width": 30}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 1.0,
                         "bbox": [0, 0, 1, 1], "segmentation": segmentation}],
        "categories": [{"id": 1, "name": "cat"}]}).replace("NaN_", "NaN"))
    return path


BAD_SEGMENTATIONS = {
    "far_polygon": [[1e9, 5, 3, 1e9, 7, 7]],
    "huge_polygon": [[1e30, 5, 3, 10, 7, 7]],
    "nan_polygon": "NAN",
    "garbled_rle": {"size": [20, 30], "counts": "garbage!!~~"},
    "short_rle": {"size": [20, 30], "counts": [5, 10]},
}


@pytest.mark.parametrize("case", list(BAD_SEGMENTATIONS))
def test_a_coco_segmentation_native_code_would_crash_on_is_named_by_its_annotation(case, tmp_path):
    """In a process of its own: pycocotools fed these dies of a signal or fills the memory."""
    segmentation = BAD_SEGMENTATIONS[case]
    path = coco_file(tmp_path / "instances.json", [["NaN_", 5, 3, 10, 7, 7]] if segmentation == "NAN" else segmentation)
    code = ("import sys\nfrom pathlib import Path\nfrom psa.data.coco_index import load_index\n"
            "from psa.errors import PsaError\n"
            "try:\n    load_index(Path(sys.argv[1]), 'data.coco.train_annotations')\n"
            "except PsaError as err:\n    print(err)\n    sys.exit(2)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])  # not a signal, not a traceback
    assert "annotation 7 (image 1)" in done.stdout and str(path) in done.stdout


def test_the_compressed_rle_reader_equals_pycocotools_on_random_masks():
    from pycocotools import mask as mask_utils

    from psa.data.coco_index import _compressed_counts

    rng = np.random.default_rng(0)
    for _ in range(100):
        height, width = rng.integers(1, 40, 2)
        mask = np.asfortranarray((rng.random((height, width)) < rng.random()).astype(np.uint8))
        runs = _compressed_counts(mask_utils.encode(mask)["counts"].decode())
        flat = mask.flatten(order="F")
        edges = np.flatnonzero(np.diff(flat)) + 1
        expected = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
        if flat[0] == 1:
            expected = [0, *expected]  # runs start with a zero run
        assert runs == expected
    assert _compressed_counts("0") == [0] and _compressed_counts("`") is None  # a continuation at the end


# ----------------------------------------------------------------------------- user strings, reading


@pytest.mark.parametrize("override, shown", [
    ("cam.tr[/x]ain=1", "unknown recipe key 'cam.tr[/x]ain'"),
    ("data.root=/x/[bold red]nope", "data root /x/[bold red]nope does not exist"),
])
def test_user_strings_are_printed_literally(tmp_path, override, shown):
    line = one_line(run_cli("train", DEMO, "data.kind=voc", f"run.dir={tmp_path / 'run'}", override))
    assert shown in line


def test_an_unreadable_data_root_is_one_line(tmp_path, monkeypatch):
    """chmod 000 does not stop root (tests may run as root): the access check is made to fail."""
    import psa.data.base

    (tmp_path / "voc").mkdir()
    real = os.access
    monkeypatch.setattr(psa.data.base.os, "access", lambda path, mode: False if str(path).endswith("voc") else
                        real(path, mode))
    line = one_line(run_cli("train", DEMO, "data.kind=voc", f"data.root={tmp_path / 'voc'}",
                            f"run.dir={tmp_path / 'run'}"))
    assert f"data root {tmp_path / 'voc'} cannot be read: permission denied" in line
    assert not (tmp_path / "run").exists()


def test_a_fifo_for_a_list_file_is_refused_not_read_forever(tmp_path):
    root = tmp_path / "voc"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    os.mkfifo(root / "ImageSets" / "Segmentation" / "train.txt")
    line = one_line(run_cli("train", DEMO, "data.kind=voc", f"data.root={root}", "data.train_split=train",
                            f"run.dir={tmp_path / 'run'}"))
    assert "train.txt: not a regular file" in line


def test_a_truncated_cam_file_is_named_by_the_evaluation_and_the_walk(run_copy):
    cam_file = sorted((run_copy / "cam" / "cams").glob("*.npz"))[0]
    cam_file.write_bytes(cam_file.read_bytes()[:40])
    line = one_line(run_cli("eval", str(run_copy / "recipe.yaml"), "--source", "cam"))
    assert f"cannot read CAM file {cam_file}" in line
    (run_copy / "affinity" / "random_walk.provenance.json").unlink()  # else the finished walk is skipped
    shutil.rmtree(run_copy / "affinity" / "pseudo")
    line = one_line(run_cli("walk", str(run_copy / "recipe.yaml"), "run.cpu_workers=1"))
    assert f"cannot read CAM file {cam_file}" in line


def test_a_run_dir_that_takes_no_files_is_named_so(tmp_path):
    line = one_line(run_cli("train", DEMO, *TINY_OVERRIDES, "run.dir=/proc/psa"))
    assert "run.dir /proc/psa is not writable" in line


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_names_the_file_being_written_and_keeps_nothing_of_it(run_copy, monkeypatch):
    import psa.io

    shutil.rmtree(run_copy / "cam" / "cams")
    (run_copy / "cam" / "export.provenance.json").unlink()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(psa.io.os, "fsync", full)
    line = one_line(run_cli("export", str(run_copy / "recipe.yaml"), "run.cpu_workers=1"))
    assert "disk full writing " in line and "MB free on its disk" in line and "cam/" in line
    assert not list(run_copy.rglob("*.tmp")) and not list((run_copy / "cam" / "cams").glob("*.npz"))


def test_a_full_disk_while_checkpointing_keeps_no_half_checkpoint(tmp_path, monkeypatch):
    import accelerate

    def full(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0")

    monkeypatch.setattr(accelerate.Accelerator, "save_state", full)
    run_dir = tmp_path / "run"
    line = one_line(run_cli("train", DEMO, *TINY_OVERRIDES, "cam.train.checkpoint_every=1", f"run.dir={run_dir}"))
    assert "cannot write checkpoint " in line and "unexpected pos" in line and "MB free on its disk" in line
    assert not list((run_dir / "cam" / "checkpoints").iterdir())


# ----------------------------------------------------------------------------- checkpoints, signals


@pytest.fixture
def checkpointed(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    done = run_cli("train", DEMO, *TINY_OVERRIDES, "cam.train.max_steps=1", "cam.train.checkpoint_every=1",
                   f"run.dir={run_dir}")
    assert done.returncode == 0, done.stderr
    return run_dir


class _Exploit:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (builtins.exec, (f"open({self.path!r}, 'w').write('pwned')",))


def test_a_pickle_in_a_resume_checkpoint_is_refused_in_a_sentence_that_says_so(checkpointed, tmp_path):
    checkpoint = next((checkpointed / "cam" / "checkpoints").iterdir())
    marker = tmp_path / "pwned"
    torch.save({"state": _Exploit(str(marker))}, checkpoint / "optimizer.bin")
    line = one_line(run_cli("train", DEMO, *TINY_OVERRIDES, "cam.train.max_steps=2", f"run.dir={checkpointed}"))
    assert f"checkpoint {checkpoint}: it holds pickled objects other than tensors" in line
    assert "cam.train.resume=never" in line and not marker.exists()


def test_an_unreadable_random_state_is_said_when_resuming(checkpointed):
    checkpoint = next((checkpointed / "cam" / "checkpoints").iterdir())
    (checkpoint / "random_states_0.pkl").write_bytes(b"not a pickle")
    done = run_cli("train", DEMO, *TINY_OVERRIDES, "cam.train.max_steps=2", f"run.dir={checkpointed}")
    assert done.returncode == 0, done.stderr
    assert "random_states_0.pkl) cannot be read; resuming without it" in " ".join(done.stdout.split())


def test_checkpoint_files_get_the_umasks_mode(checkpointed):
    files = [p for p in (checkpointed / "cam" / "checkpoints").rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files)
    assert {p.stat().st_mode & 0o777 for p in files} == {file_mode()}


@pytest.mark.slow
def test_ctrl_c_during_the_export_says_one_line_from_the_parent(tmp_path, finished_run):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir, symlinks=True)
    shutil.rmtree(run_dir / "cam" / "cams")
    (run_dir / "cam" / "export.provenance.json").unlink()
    # four scales (the reference's): slow enough an export that the signal lands mid-way
    args = ("export_cams", str(run_dir / "recipe.yaml"), f"run.dir={run_dir}", "cam.scales=[1.0,0.5,1.5,2.0]",
            "run.cpu_workers=2")
    child = subprocess.Popen(tool_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list((run_dir / "cam" / "cams").glob("*.npz")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, err = child.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip()]
    assert child.returncode == 130 and "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert lines == ["interrupted: finished outputs are kept; run the same command again to resume"]


# ----------------------------------------------------------------------------- checked up front, last resort


def test_a_bad_mask_is_refused_before_any_training(tmp_path):
    root = tmp_path / "voc"
    for folder in ("ImageSets/Segmentation", "JPEGImages"):
        (root / folder).mkdir(parents=True)
    (root / "classes.txt").write_text("background\ncat\n")
    rng = np.random.default_rng(0)
    for k in range(4):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"i{k}.jpg")
        save_label_png(root / "SegmentationClass" / f"i{k}.png", np.full((32, 32), 9 if k == 3 else 1, np.uint8))
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("i0\ni1\ni2\ni3\n")
    (root / "image_labels.txt").write_text("i0 1\ni1 1\ni2 1\ni3 1\n")
    run_dir = tmp_path / "run"
    line = one_line(run_cli("pipeline", DEMO, "data.kind=voc", f"data.root={root}", "data.train_split=train",
                            "data.eval_split=train", "data.val_split=train", f"run.dir={run_dir}"))
    assert f"mask {root / 'SegmentationClass' / 'i3.png'} has value 9" in line
    assert not (run_dir / "cam").exists()


def test_an_unforeseen_exception_is_one_line_naming_the_step(run_copy, monkeypatch):
    import psa.framework.evaluation

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(psa.framework.evaluation, "evaluate", boom)  # what every evaluation step calls
    (run_copy / "cam" / "eval" / "cam" / "provenance.json").unlink()
    line = one_line(run_cli("pipeline", str(run_copy / "recipe.yaml")), code=1)
    assert line.startswith("error: unexpected RuntimeError in step eval_cam: boom") and "PSA_DEBUG=1" in line
    monkeypatch.setenv("PSA_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        run_cli("pipeline", str(run_copy / "recipe.yaml"))
