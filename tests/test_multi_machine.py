"""Several machines, tested on one: two `accelerate launch` "machines" on 127.0.0.1 with two
gloo processes each (4 ranks), sharing run.dir as a cluster shares its filesystem.

psa's own CPU switch (psa.engine.accel.use_cpu) is what makes the processes one gloo group
here: the launches get no ACCELERATE_* variable and an empty HF_HOME (no accelerate config).
With the switch removed they would run as 4 lone processes, which psa refuses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY_OVERRIDES
from test_distributed import EQUIVALENCE_OVERRIDES, _confident_labels_from_gt

DEMO = str(ROOT / "recipes" / "demo.yaml")
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
        assert code == 0, f"machine {rank} exited {code}:\n{output[first:first + 4000] if first >= 0 else output[-4000:]}"


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


@pytest.mark.slow
def test_without_the_cpu_switch_every_process_refuses_to_run_alone(tmp_path):
    from psa.config import load_recipe

    run_dir = tmp_path / "lone"
    _confident_labels_from_gt(load_recipe(DEMO, overrides(run_dir)))  # the refusal, not missing inputs, stops it
    results = launch_machines(tmp_path, SCRIPTS / "without_cpu_switch.py", str(ROOT / "tools" / "train.py"),
                              DEMO, *overrides(run_dir))
    for rank, (code, output) in enumerate(results):
        assert code != 0, f"machine {rank} ran without the CPU switch:\n{output[-3000:]}"
        assert output.count(f"the launcher started {PROCESSES} processes (WORLD_SIZE={PROCESSES}) but "
                            "Accelerate runs this one as 1 of 1") == PROCESSES // MACHINES, output[-3000:]
    assert not (run_dir / "affinity").exists()
