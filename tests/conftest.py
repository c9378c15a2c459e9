"""Shared fixtures. Every test runs offline, on CPU, on data it makes or ships."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub in tests
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
COCO_VOC_MINI = SHARED_DATA / "coco_voc_mini"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def write_recipe(tmp_path):
    """Write a YAML recipe text into tmp_path and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


def tool_command(tool: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "tools" / f"{tool}.py"), *args]
