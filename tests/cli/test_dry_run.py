"""`psa pipeline --dry-run`: the plan it prints is what the pipeline then does, and it writes
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from psa import load_recipe
from psa.engine.report import Reporter
from psa.pipeline import run


def plan_rows(stdout: str) -> list[tuple[str, str, str]]:
    """(step, action, why) from the printed table; a long reason wraps onto lines whose step
    cell is empty."""
    rows: list[list[str]] = []
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) != 3:
            continue
        if cells[0]:
            rows.append(cells)
        elif rows:
            rows[-1][2] += " " + cells[2]
    return [tuple(row) for row in rows]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overrides", [[], ["random_walk.beta=4"]], ids=["unchanged", "one_key_changed"])
def test_the_dry_run_names_exactly_what_the_pipeline_then_runs_and_why(run_copy, overrides):
    recipe_file = str(run_copy / "recipe.yaml")
    before = snapshot(run_copy)
    done = run_cli("pipeline", recipe_file, *overrides, "--until", "eval_rw_crf", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert snapshot(run_copy) == before  # ran nothing, wrote nothing
    rows = plan_rows(done.stdout)
    to_run = [step for step, action, _ in rows if action == "run"]
    for step, action, why in rows:
        assert action in ("run", "skip"), (step, action)
        if action == "run":  # the changed key, both values
            assert why == "random_walk.beta was 8.0, the recipe now says 4.0", (step, why)

    result = run(load_recipe(recipe_file, overrides), Reporter(), until="eval_rw_crf")
    assert result.ran == to_run
    assert result.skipped == [step for step, action, _ in rows if action == "skip"]
    assert bool(to_run) == bool(overrides)


def test_a_dry_run_past_a_trained_network_whose_inputs_changed_is_refused_in_one_line(run_copy):
    done = run_cli("pipeline", str(run_copy / "recipe.yaml"), "random_walk.beta=4", "--dry-run")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "seg/model.pt was trained with other inputs: random_walk.beta was 8.0" in done.stderr
