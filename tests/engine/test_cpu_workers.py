"""Per-image stages in forked worker processes: who runs, how many, and the same files."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from psa.engine.cpu_workers import map_in_workers, worker_count
from psa.errors import PsaError
from conftest import export_cams, load_cam_file
from psa.framework.training import train_task
from conftest import stage_dir


def test_worker_count():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert worker_count(3, cpu, 10) == 3
    assert worker_count(3, cpu, 2) == 2  # never more workers than images
    assert worker_count(3, cpu, 1) == 1
    assert worker_count(3, gpu, 10) == 1  # never forked next to a GPU context
    cores = len(os.sched_getaffinity(0))
    assert worker_count(0, cpu, 1000, environ={}) == cores
    # the cores are shared among the launcher's processes on this machine
    assert worker_count(0, cpu, 1000, environ={"LOCAL_WORLD_SIZE": "2"}) == max(1, cores // 2)


def where(value):
    return value * 10, os.getpid(), torch.get_num_threads()


def test_map_in_workers_runs_each_item_once_in_other_processes():
    results = list(map_in_workers(where, list(range(7)), workers=2))
    assert sorted(r[0] for r in results) == [10 * i for i in range(7)]
    assert os.getpid() not in {r[1] for r in results}
    assert {r[2] for r in results} == {1}  # one torch thread per worker
    # one worker: in this process, in order
    assert [r[:2] for r in map_in_workers(where, [1, 2], workers=1)] == [(10, os.getpid()), (20, os.getpid())]


def fails_on_three(value):
    if value == 3:
        raise PsaError("image 3 is unreadable")
    return value


def test_an_error_in_a_worker_reaches_the_caller():
    with pytest.raises(PsaError, match="image 3 is unreadable"):
        list(map_in_workers(fails_on_three, list(range(6)), workers=2))


def test_export_in_workers_writes_the_files_of_one_process(tiny_recipe, tmp_path):
    recipe = tiny_recipe("cam.train.epochs=1", "run.cpu_workers=1")
    train_task(recipe, "cam")
    one = export_cams(recipe)
    assert one["cpu_workers"] == 1
    stage, kept = stage_dir(recipe, "cam"), tmp_path / "in_process"
    for folder in ("cams", "labels", "pred"):
        shutil.move(stage / folder, kept / folder)
    # the same run (run.cpu_workers changes no result), its files made again by two workers
    two = export_cams(tiny_recipe("cam.train.epochs=1", "run.cpu_workers=2"))
    assert two["cpu_workers"] == 2 and two["written_here"] == one["written_here"] == 16
    for path in sorted((kept / "cams").glob("*.npz")):
        cams_a, classes_a = load_cam_file(path)
        cams_b, classes_b = load_cam_file(stage / "cams" / path.name)
        np.testing.assert_array_equal(classes_a, classes_b)
        np.testing.assert_allclose(cams_a, cams_b, atol=1e-3)  # fp16 files; threads change rounding only
        for folder in ("labels", "pred"):
            png = path.with_suffix(".png").name
            assert np.array_equal(np.asarray(Image.open(kept / folder / png)), np.asarray(Image.open(stage / folder / png)))
