"""What the tools say and leave behind: user errors once (on the main process), written files
with the umask's permissions, plain progress lines with an ETA when stdout is no terminal."""

from __future__ import annotations

import os
import stat
import subprocess

import numpy as np
import pytest

from conftest import CORE_DEMO, ROOT, tool_command
from psa.cli.common import PlainProgress, RichReporter, run_tool
from psa.errors import PsaError
from psa.io import atomic_write_json, save_label_png


@pytest.fixture
def umask():
    """Set the process umask for one test, then restore it."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    save_label_png(tmp_path / "m.png", np.zeros((4, 4), np.uint8))
    for path in (tmp_path / "a.json", tmp_path / "m.png"):
        assert stat.S_IMODE(path.stat().st_mode) == mode, oct(path.stat().st_mode)


def test_a_user_error_is_one_line_on_the_main_process_only(capsys, monkeypatch):
    def fail():
        raise PsaError("data root /nowhere does not exist (recipe key data.root)")

    for rank, said in (("0", True), ("1", False)):
        monkeypatch.setenv("RANK", rank)
        with pytest.raises(SystemExit) as info:
            run_tool(fail)
        assert info.value.code == 2
        out, err = capsys.readouterr()
        assert out == ""
        if said:
            assert err.splitlines() == ["error: data root /nowhere does not exist (recipe key data.root)"]
        else:
            assert err == ""


def test_the_tools_say_a_bad_key_once_whatever_the_rank(tmp_path):
    for rank, lines in (("0", 1), ("1", 0)):
        done = subprocess.run(tool_command("train", str(CORE_DEMO), "cam.train.lrr=1",
                                           f"run.dir={tmp_path / 'run'}"),
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={**os.environ, "RANK": rank, "WORLD_SIZE": "2"})
        assert done.returncode == 2
        said = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(said) == lines and "Traceback" not in done.stderr, done.stderr
        if lines:
            assert said[0].startswith("error: ") and "cam.train.lr" in said[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_under_accelerate_launch_a_data_error_is_said_once(tmp_path):
    """Two real processes meet the same missing data root: one line from psa (the launcher then
    reports the failed processes in its own words, which psa does not control)."""
    from conftest import launch

    done = launch(ROOT / "tools" / "train.py", str(CORE_DEMO), "data.kind=voc",
                  f"data.root={tmp_path / 'nowhere'}", f"run.dir={tmp_path / 'run'}", "task=cam")
    assert done.returncode != 0
    ours = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error: ")]
    assert ours == [f"error: data root {tmp_path / 'nowhere'} does not exist or is not a folder (recipe key data.root)"]
    assert not (tmp_path / "run").exists()


def test_plain_progress_prints_a_line_with_an_eta_every_interval(capsys):
    now = [0.0]
    reporter = RichReporter(enabled=True, plain=True, every=30.0, clock=lambda: now[0])
    reporter.start("train cam", total=100, completed=20)  # resumed at step 20
    for step in range(21, 101):
        now[0] += 1.0
        reporter.update(step, loss=0.5)
    reporter.finish()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "train cam: 50/100 (50%) loss 0.5, 30s elapsed, ETA 50s",
        "train cam: 80/100 (80%) loss 0.5, 1m00s elapsed, ETA 20s",
        "train cam: 100/100 (100%) loss 0.5, 1m20s elapsed",
    ]


def test_plain_progress_is_quiet_between_intervals_and_off_the_main_process(capsys):
    now = [0.0]
    progress = PlainProgress("export CAMs", 10, 0, 30.0, lambda: now[0])
    now[0] = 29.0
    assert progress.update(5) is None
    now[0] = 31.0
    assert progress.update(6) == "export CAMs: 6/10 (60%), 31s elapsed, ETA 21s"
    quiet = RichReporter(enabled=False, plain=True)
    quiet.start("x", 3)
    quiet.update(3)
    quiet.finish()
    assert capsys.readouterr().out == ""
