"""The import contracts of setup.cfg hold for the tree, and each one breaks on the import it
exists to refuse (checked on a copy of the package with that one import added)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LINT = Path(sys.executable).with_name("lint-imports")
CONTRACTS = {
    "layers": "layers: command line >",
    "methods-independent": "methods: none imports another",
    "core-imports-no-method": "core: no module outside psa.methods imports one",
    "acyclic": "no import cycles between the modules of any package",
}
pytestmark = pytest.mark.skipif(not LINT.is_file(), reason="import-linter is not installed next to this Python")


def lint(where: Path) -> dict[str, bool]:
    """{contract: kept} from lint-imports run on the tree at `where`."""
    env = {**os.environ, "PYTHONPATH": str(where)}
    done = subprocess.run([str(LINT)], cwd=where, env=env, capture_output=True, text=True, timeout=120)
    text = " ".join(done.stdout.split())  # the report wraps long contract names
    verdicts = {name: re.search(re.escape(title) + r".*? (KEPT|BROKEN)", text) for name, title in CONTRACTS.items()}
    assert all(verdicts.values()), done.stdout[-3000:]
    kept = {name: found.group(1) == "KEPT" for name, found in verdicts.items()}
    assert (done.returncode == 0) == all(kept.values()), done.stdout[-3000:]
    return kept


@pytest.fixture
def package_copy(tmp_path):
    shutil.copytree(ROOT / "psa", tmp_path / "psa", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    return tmp_path


def add_import(root: Path, module: str, line: str) -> None:
    path = root / "psa" / module
    text = path.read_text()
    anchor = "from __future__ import annotations\n"
    assert anchor in text, path
    path.write_text(text.replace(anchor, f"{anchor}\n{line}\n", 1))


def test_the_tree_keeps_every_contract():
    assert lint(ROOT) == {name: True for name in CONTRACTS}


@pytest.mark.parametrize("contract, module, line", [
    ("layers", "engine/accel.py", "from ..framework.registry import REGISTRY"),  # an import up a layer
    ("methods-independent", "methods/seg/steps.py", "from ..affinity.layout import SECTION"),
    ("core-imports-no-method", "pipeline.py", "from .methods.affinity.layout import SECTION"),
    ("acyclic", "metrics/edges.py", "from .sweep import threshold_grid"),  # sweep -> segmentation, edges -> sweep
])
def test_each_contract_breaks_on_the_import_it_refuses(package_copy, contract, module, line):
    if contract == "acyclic":  # close the loop: segmentation -> edges as well
        add_import(package_copy, "metrics/segmentation.py", "from .edges import class_edges")
    add_import(package_copy, module, line)
    kept = lint(package_copy)
    assert not kept[contract], kept
