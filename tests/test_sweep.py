"""The sweep's grid parsing and its plot, without running a stage."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CORE_DEMO, ROOT
from psa.errors import PsaError
from psa.framework.grid import parse_grid, split_values
from psa.sweep import plan_points
from psa.viz import line_chart

DEMO = str(CORE_DEMO)


def test_commas_inside_brackets_belong_to_one_value():
    assert split_values("4,8") == ["4", "8"]
    assert split_values("[1,0.5],[1]") == ["[1,0.5]", "[1]"]
    assert split_values("[1,0.5]") == ["[1,0.5]"]
    axes, fixed = parse_grid(["random_walk.beta=4,8", "cam.scales=[1,0.5]", "cam.scales=[1,0.5],[1]"])
    assert [(a.key, a.values) for a in axes] == [("random_walk.beta", ("4", "8")), ("cam.scales", ("[1,0.5]", "[1]"))]
    assert fixed == ["cam.scales=[1,0.5]"]


@pytest.mark.parametrize("items, message", [
    (["random_walk.beta=8"], "a grid needs at least one axis"),
    (["random_walk.beta=4,4"], "grid axis random_walk.beta: a value is repeated"),
    (["random_walk.beta=4,"], "grid axis random_walk.beta: empty value"),
    (["random_walk.beta"], "must look like key=v1,v2"),
])
def test_a_bad_grid_is_named(items, message):
    with pytest.raises(PsaError, match=message):
        parse_grid(items)


def test_every_point_is_validated_before_anything_runs(tmp_path):
    with pytest.raises(PsaError, match="recipe key 'random_walk.beta' must be a number, got 'x'"):
        plan_points(DEMO, ["random_walk.beta=4,x", f"run.dir={tmp_path}"])
    assert not list(tmp_path.iterdir())
    base, folder, points, axes = plan_points(DEMO, ["random_walk.beta=4,8", "random_walk.logt=2,3",
                                                    f"run.dir={tmp_path}"])
    assert folder == tmp_path / "sweeps" / "random_walk.beta-random_walk.logt"
    assert [p.name for p in points] == ["beta=4,logt=2", "beta=4,logt=3", "beta=8,logt=2", "beta=8,logt=3"]
    assert [(p.recipe.random_walk.beta, p.recipe.random_walk.logt) for p in points] == [(4, 2), (4, 3), (8, 2), (8, 3)]
    assert {p.recipe.run.dir for p in points} == {str(folder / p.name) for p in points}


def test_line_chart_draws_higher_values_higher():
    colour = (128, 0, 0)  # the first series' colour (VOC palette entry 1)

    def right_end_height(values):
        chart = line_chart({"a": list(zip((1, 2), values))}, "t", "x", width=200, height=160)
        assert chart.dtype == np.uint8 and chart.shape == (160, 200, 3)
        ys, xs = np.nonzero(np.all(chart == colour, axis=2))
        return ys[xs == xs.max()].mean()  # the legend swatch is at the left: the right end is the line's

    assert right_end_height((10.0, 30.0)) < right_end_height((30.0, 10.0)) - 50  # image rows grow downwards
