"""The `psa` command: its subcommands, `python tools/<tool>.py` as the same code, and help
that shows each example on its own line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from psa.cli.main import COMMANDS, build_parser

TOOLS = sorted(path.stem for path in (ROOT / "tools").glob("*.py"))


def test_psa_help_lists_every_subcommand():
    done = subprocess.run([sys.executable, "-m", "psa", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0
    for name in COMMANDS:
        assert f"    {name} " in done.stdout or f"    {name}\n" in done.stdout, name


@pytest.mark.skipif(shutil.which("psa", path=str(Path(sys.executable).parent)) is None,
                    reason="psa is not installed next to this Python (pip install -e .)")
def test_the_installed_console_script_is_the_same_command(tmp_path):
    script = shutil.which("psa", path=str(Path(sys.executable).parent))
    done = subprocess.run([script, "eval", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "usage: psa eval" in done.stdout


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_is_a_two_line_wrapper_of_a_subcommand(tool):
    code = [line for line in (ROOT / "tools" / f"{tool}.py").read_text().splitlines()
            if line.strip() and not line.startswith(('"""', "#"))]
    assert len(code) == 1 and code[0].startswith("from psa.cli.main import tool; tool(")
    command = code[0].split('tool("')[1].split('")')[0]
    assert command in COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_shows_each_example_on_its_own_line(name):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[name]  # argparse keeps them here
    text = sub.format_help()
    examples = [line.strip() for line in (COMMANDS[name].__doc__ or "").splitlines()
                if line.strip().startswith(("psa ", "accelerate launch", "python "))]
    assert examples, f"psa {name} has no example"
    lines = [line.strip() for line in text.splitlines()]
    for example in examples:
        assert example in lines, (name, example)
