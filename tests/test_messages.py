"""What the tools leave behind: written files with the umask's permissions."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

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
