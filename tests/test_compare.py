"""`psa compare`: rows per run, mean and sample standard deviation computed by hand, a fully
supervised run's network in a row of its own, the JSON the results docs keep."""

from __future__ import annotations

import json
import statistics

import pytest
import yaml

from conftest import run_cli
from psa.compare import FULL, compare_runs
from psa.errors import PsaError

WALK, NET = "CAM + random walk", "segmentation network (val, never saw a mask)"


def fake_run(root, name, seed, rows, labels="pseudo"):
    run = root / name
    (run / "pipeline").mkdir(parents=True)
    (run / "pipeline" / "summary.json").write_text(json.dumps(
        {label: {"miou": miou, "split": split, "images": 10} for label, (miou, split) in rows.items()}))
    (run / "recipe.yaml").write_text(yaml.safe_dump({"run": {"seed": seed}, "seg": {"labels": labels}}))
    return run


def test_rows_means_and_spreads_by_seed(tmp_path):
    runs = [fake_run(tmp_path, f"s{seed}", seed, {WALK: (walk, "train"), NET: (net, "val")})
            for seed, walk, net in ((0, 0.631, 0.587), (1, 0.573, 0.556), (2, 0.633, 0.618))]
    runs.append(fake_run(tmp_path, "gt0", 7, {NET: (0.705, "val")}, labels="gt"))
    comparison = compare_runs(runs)
    assert comparison.by == "seeds"
    rows = {row.name: row for row in comparison.rows}
    assert [row.name for row in comparison.rows] == [WALK, NET, FULL]
    assert rows[WALK].values == {"0": 63.1, "1": 57.3, "2": 63.3} and rows[WALK].kind == "pseudo"
    assert rows[WALK].mean == round(statistics.mean([63.1, 57.3, 63.3]), 2)
    assert rows[WALK].sd == round(statistics.stdev([63.1, 57.3, 63.3]), 2)
    assert rows[FULL].values == {"7": 70.5} and rows[FULL].kind == "full" and rows[FULL].sd is None
    data = comparison.as_dict()
    assert data["rows"][0] == {"name": WALK, "kind": "pseudo", "split": "train",
                               "seeds": {"0": 63.1, "1": 57.3, "2": 63.3}, "mean": rows[WALK].mean,
                               "sd": rows[WALK].sd}


def test_runs_of_one_seed_are_keyed_by_folder_and_a_missing_summary_is_named(tmp_path):
    runs = [fake_run(tmp_path, name, 0, {WALK: (0.5, "train")}) for name in ("a", "b")]
    assert compare_runs(runs).by == "runs" and compare_runs(runs).rows[0].values == {"a": 50.0, "b": 50.0}
    with pytest.raises(PsaError, match=r"nothing/pipeline/summary.json not found"):
        compare_runs([tmp_path / "nothing"])


def test_the_tool_writes_the_json_and_a_markdown_table(tmp_path):
    runs = [fake_run(tmp_path, f"s{seed}", seed, {WALK: (0.6 + seed / 100, "train")}) for seed in (0, 1)]
    done = run_cli("compare", *map(str, runs), "--markdown", "--json", str(tmp_path / "out.json"))
    assert done.returncode == 0, done.stderr
    assert f"| {WALK} | train | 60.0 | 61.0 | 60.5 | ±0.7 |" in done.stdout
    assert json.loads((tmp_path / "out.json").read_text())["rows"][0]["seeds"] == {"0": 60.0, "1": 61.0}
