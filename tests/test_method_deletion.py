"""A method is a folder: deleting one — its package, its tests (tests/methods/<name>) and the
recipes that use it — leaves everything else working. Checked on a copy of the repository,
for IRN and for CPS: the import contracts still hold, every remaining recipe loads and plans,
and every remaining test module imports; with PSA_DELETION_SUITE=full every remaining test
runs (about 8 minutes a method on 2 cores; docs/extending.md)."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from psa.config.loader import load_raw
from psa.framework.masks import MaskSource
from psa.framework.registry import REGISTRY

COPIED = ("psa", "tests", "tools", "recipes", "bench", "docs", "setup.cfg", "pyproject.toml", "README.md",
          "Makefile", "BENCHMARKS.md")


def recipes_using(method: str) -> list[Path]:
    """The recipes that name the method's sections, steps or pseudo-mask sources, through
    their `_base_` chain, or train its task."""
    package = importlib.import_module(f"psa.methods.{method}")
    sections = {path.split(".")[0] for path in package.SECTIONS}
    steps = {step.name for step in REGISTRY if step.method == method}
    sources = {source.name for source in REGISTRY.all(MaskSource) if source.step.method == method}
    found = []
    for path in sorted((ROOT / "recipes").rglob("*.yaml")):
        raw = load_raw(path)
        named = set((raw.get("pipeline") or {}).get("steps") or [])
        masks = {section.get("masks") for section in raw.values() if isinstance(section, dict)}
        if sections & set(raw) or raw.get("task") in sections or steps & named or sources & masks:
            found.append(path)
    return found


def copy_without(method: str, where: Path) -> Path:
    repo = where / "repo"
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, repo / name, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        else:
            shutil.copy2(source, repo / name)
    for path in recipes_using(method):
        (repo / path.relative_to(ROOT)).unlink()
    shutil.rmtree(repo / "psa" / "methods" / method)
    shutil.rmtree(repo / "tests" / "methods" / method)
    return repo


def run_in(repo: Path, *command: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_recipes_that_use_a_method_are_found():
    assert [p.name for p in recipes_using("irn")] == ["demo.yaml", "irn.yaml", "msrc.yaml"]
    assert [p.name for p in recipes_using("cps")] == ["cps.yaml", "demo_cps.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["irn", "cps"])
def test_deleting_a_method_leaves_every_other_test_passing(method, tmp_path):
    repo = copy_without(method, tmp_path)
    lint = run_in(repo, str(Path(sys.executable).with_name("lint-imports")), timeout=120)
    assert lint.returncode == 0, lint.stdout[-2000:]
    check = ("import sys, pathlib, psa\nfrom psa.framework.registry import REGISTRY\n"
             f"assert {method!r} not in REGISTRY.tasks() and not any(s.method == {method!r} for s in REGISTRY)\n"
             "for path in sorted(pathlib.Path('recipes').rglob('*.yaml')):\n"
             "    REGISTRY.selected(psa.load_recipe(path))\n"
             "print('recipes', len(list(pathlib.Path('recipes').rglob('*.yaml'))))")
    plans = run_in(repo, sys.executable, "-c", check, timeout=300)
    assert plans.returncode == 0 and plans.stdout.startswith("recipes "), plans.stderr[-3000:]
    pytest = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--ignore=tests/test_method_deletion.py")
    full = os.environ.get("PSA_DELETION_SUITE") == "full"
    tests = run_in(repo, *pytest, *([] if full else ["--collect-only"]), timeout=3600 if full else 300)
    assert tests.returncode == 0, tests.stdout[-4000:]
