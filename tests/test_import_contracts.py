"""The layer contracts of setup.cfg hold for the tree, and break on an import that runs up a
layer (checked on a copy of the package with one such import added)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LINT = Path(sys.executable).with_name("lint-imports")


def lint(where: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run([str(LINT)], cwd=where, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def package_copy(tmp_path):
    shutil.copytree(ROOT / "psa", tmp_path / "psa", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    return tmp_path


@pytest.mark.skipif(not LINT.is_file(), reason="import-linter is not installed next to this Python")
def test_the_tree_keeps_its_layers_and_an_upward_import_breaks_them(package_copy):
    kept = lint(package_copy)
    assert kept.returncode == 0 and "2 kept, 0 broken" in kept.stdout, kept.stdout[-2000:]

    accel = package_copy / "psa" / "engine" / "accel.py"
    text = accel.read_text()
    assert "from ..errors import PsaError\n" in text
    accel.write_text(text.replace("from ..errors import PsaError\n",
                                  "from ..errors import PsaError\nfrom ..stages.registry import REGISTRY\n", 1))
    broken = lint(package_copy)
    assert broken.returncode != 0
    assert "psa.engine is not allowed to import psa.stages" in broken.stdout, broken.stdout[-2000:]
    assert "0 kept, 2 broken" in broken.stdout  # the layers and, through stages -> engine, a cycle
