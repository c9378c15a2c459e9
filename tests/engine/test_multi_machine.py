"""Several machines, tested on one: two `accelerate launch` "machines" on 127.0.0.1 with two
gloo processes each (4 ranks), sharing run.dir as a cluster shares its filesystem.

psa's own CPU switch (psa.engine.accel.use_cpu) is what makes the processes one gloo group
here: the launches get no ACCELERATE_* variable and an empty HF_HOME (no accelerate config).
With the switch removed they would run as 4 lone processes, which psa refuses."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, stage_dir
from test_distributed import EQUIVALENCE_OVERRIDES, _confident_labels_from_gt

DEMO = str(CORE_DEMO)
SCRIPTS = ROOT / "tests" / "scripts"
MACHINES, PROCESSES = 2, 4  # processes: the total over both machines
GLOBAL_BATCH = 8  # 2 images per process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_machines(folder: Path, script: Path, *args: str, timeout: int = 120) -> list[tuple[int, str]]:
    """Start machine 0 and machine 1 as the docs say; (exit code, stdout + stderr) of each."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HOME=str(folder / "hf_home"))
    common = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
              "--num_machines", str(MACHINES), "--num_processes", str(PROCESSES),
              "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
              "--same_network", "--rdzv_backend", "static", "--mixed_precision", "no", "--dynamo_backend", "no"]
    machines, logs = [], []
    for rank in range(MACHINES):
        logs.append(folder / f"machine{rank}.log")
        with logs[-1].open("w") as log:  # a file, not a pipe: neither machine blocks on its output
            machines.append(subprocess.Popen([*common, "--machine_rank", str(rank), str(script), *args],
                                             stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                             start_new_session=True))
    try:
        codes = [machine.wait(timeout=timeout) for machine in machines]
    finally:
        for machine in machines:  # a machine left waiting for its peer: its whole process group
            if machine.poll() is None:
                os.killpg(machine.pid, signal.SIGKILL)
                machine.wait()
    return [(code, log.read_text()) for code, log in zip(codes, logs)]


def assert_all_succeeded(results):
    for rank, (code, output) in enumerate(results):
        first = output.find("Traceback")  # the root cause, before the launcher's summary
        excerpt = output[first:first + 4000] if first >= 0 else output[-4000:]
        assert code == 0, f"machine {rank} exited {code}:\n{excerpt}"


def test_a_process_the_launcher_counted_among_several_may_not_run_alone():
    from psa.engine.accel import check_launch
    from psa.errors import PsaError

    check_launch(4, {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"})
    check_launch(1, {})  # a plain `python tools/...` run
    check_launch(1, {"WORLD_SIZE": "1"})
    for env in ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}, {"LOCAL_WORLD_SIZE": "2"}):
        with pytest.raises(PsaError) as refused:
            check_launch(1, env)
        name = "WORLD_SIZE" if "WORLD_SIZE" in env else "LOCAL_WORLD_SIZE"
        assert str(refused.value).startswith(f"the launcher started {env[name]} processes ({name}={env[name]}) "
                                             "but Accelerate runs this one as 1 of 1")
        assert "ACCELERATE_USE_CPU=1" in str(refused.value) and "\n" not in str(refused.value)


def overrides(run_dir: Path) -> list[str]:
    return [*TINY_OVERRIDES, *EQUIVALENCE_OVERRIDES, "task=affinity",
            f"affinity.train.batch_size={GLOBAL_BATCH}", f"run.dir={run_dir}"]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """AffinityNet trained in this process on the global batch: the run 4 ranks must match."""
    from psa import load_recipe
    from psa.framework.training import train_task

    run_dir = tmp_path_factory.mktemp("one")
    recipe = load_recipe(DEMO, overrides(run_dir))
    _confident_labels_from_gt(recipe)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the launched processes (OMP_NUM_THREADS=1): lean on a shared CPU
    try:
        return recipe, train_task(recipe, "affinity")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_two_machines_of_two_processes_train_affinity_like_one_process(one_process, tmp_path):
    from psa import load_recipe
    from psa.engine.checkpoints import load_weights

    _, one = one_process
    run_dir = tmp_path / "four"
    _confident_labels_from_gt(load_recipe(DEMO, overrides(run_dir)))
    assert_all_succeeded(launch_machines(tmp_path, SCRIPTS / "ddp_train.py", DEMO, *overrides(run_dir)))

    # 4 ranks took part, in one gloo group, and ended with the same weights
    ranks = sorted(p.name for p in run_dir.glob("rank*_of_*.pt"))
    assert ranks == [f"rank{r}_of_{PROCESSES}.pt" for r in range(PROCESSES)]
    four = json.loads((run_dir / f"result_of_{PROCESSES}.json").read_text())
    assert four["backend"] == "gloo"
    info = json.loads((run_dir / "affinity" / "run_info.json").read_text())
    assert info["world_size"] == PROCESSES
    assert info["batch"] == {"global": GLOBAL_BATCH, "per_process": GLOBAL_BATCH // PROCESSES}
    copies = [torch.load(run_dir / name, weights_only=True) for name in ranks]
    for copy in copies[1:]:
        for key in copies[0]:
            torch.testing.assert_close(copy[key], copies[0][key], rtol=0, atol=0, msg=key)

    # and followed one process step for step (16 images, global batch 8, 2 epochs)
    assert one.steps == four["steps"] == 4
    np.testing.assert_allclose(four["losses"], one.losses, rtol=1e-4)
    a, _ = load_weights(one.weights, "affinity", "resnet10t")
    b, _ = load_weights(run_dir / "affinity" / "model.pt", "affinity", "resnet10t")
    differ = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    scale = max(a[k].float().abs().max().item() for k in a)
    assert differ < 1e-5 * scale, (differ, scale)


@pytest.mark.slow
def test_without_the_cpu_switch_every_process_refuses_to_run_alone(tmp_path):
    from psa import load_recipe

    run_dir = tmp_path / "lone"
    _confident_labels_from_gt(load_recipe(DEMO, overrides(run_dir)))  # the refusal, not missing inputs, stops it
    results = launch_machines(tmp_path, SCRIPTS / "without_cpu_switch.py", str(ROOT / "tools" / "train.py"),
                              DEMO, *overrides(run_dir))
    refusal = (f"the launcher started {PROCESSES} processes (WORLD_SIZE={PROCESSES}) but "
               "Accelerate runs this one as 1 of 1")
    for rank, (code, output) in enumerate(results):
        assert code != 0, f"machine {rank} ran without the CPU switch:\n{output[-3000:]}"
        # its ranks refused (exit 2, psa's user-error code); the launcher may stop the second
        # rank with SIGTERM once the first has failed, so at least one, not both, says 2
        assert "exitcode  : 2" in output, output[-3000:]
    # the line is said by the main process (RANK 0) only, never once per rank
    assert sum(output.count(refusal) for _, output in results) <= 1, results[0][1][-3000:]
    assert not (run_dir / "affinity").exists()


def _cams_from_gt(recipe) -> int:
    """Stand-in CAM files for every image the walk covers: each present class's mask, scaled."""
    from psa.io import save_npz
    from psa.framework.items import default_splits, items_for

    items = items_for(recipe, default_splits(recipe, recipe.random_walk.split))
    for item in items:
        mask = item.source.load_mask(item.index)
        classes = np.array([c for c in np.unique(mask) if c not in (0, 255)], dtype=np.int64)
        cams = np.stack([(mask == c) * 0.7 for c in classes]) if len(classes) else np.zeros((0, *mask.shape))
        save_npz(stage_dir(recipe, "cam") / "cams" / f"{item.image_id}.npz", cams=cams.astype(np.float16),
                 classes=classes)
    return len(items)


@pytest.mark.slow
def test_the_random_walk_on_two_machines_writes_every_image_once(one_process, tmp_path):
    """tools/random_walk.py over 4 ranks: each image written by exactly one rank, as one
    process would write it."""
    import shutil

    from psa import load_recipe
    from conftest import run_random_walk

    _, one = one_process
    run_dir = tmp_path / "walk"
    (run_dir / "affinity").mkdir(parents=True)
    shutil.copy2(one.weights, run_dir / "affinity" / "model.pt")
    walk_recipe = load_recipe(DEMO, overrides(run_dir))
    images = _cams_from_gt(walk_recipe)
    assert_all_succeeded(launch_machines(tmp_path, ROOT / "tools" / "random_walk.py", DEMO, *overrides(run_dir)))

    done = json.loads((run_dir / "affinity" / "random_walk_done.json").read_text())
    assert done["processes"] == PROCESSES
    # 4 shards that cover the list: every file exists and the writes add up to one per image
    assert sum(done["written_by_process"]) == images and all(done["written_by_process"])
    assert done["skipped_by_process"] == [0] * PROCESSES
    ids = {p.stem for p in (run_dir / "cam" / "cams").glob("*.npz")}
    for folder in ("pseudo", "pseudo_crf"):
        assert {p.stem for p in (run_dir / "affinity" / folder).glob("*.png")} == ids
    assert {p.stem for p in (run_dir / "affinity" / "rw_scores").glob("*.npz")} == ids

    # the same scores as one process writes for the same inputs
    single_dir = tmp_path / "single"
    shutil.copytree(run_dir / "cam", single_dir / "cam")
    (single_dir / "affinity").mkdir()
    shutil.copy2(one.weights, single_dir / "affinity" / "model.pt")
    assert run_random_walk(load_recipe(DEMO, overrides(single_dir)))["written_by_process"] == [images]
    for image_id in ids:
        with np.load(run_dir / "affinity" / "rw_scores" / f"{image_id}.npz") as four, \
                np.load(single_dir / "affinity" / "rw_scores" / f"{image_id}.npz") as single:
            np.testing.assert_allclose(four["scores"].astype(np.float32), single["scores"].astype(np.float32),
                                       rtol=1e-2, atol=1e-3, err_msg=image_id)
