from pathlib import Path

import pytest
import yaml

from psa.config import Recipe, dump_recipe, load_recipe
from psa.errors import PsaError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_reference_constants(write_recipe):
    recipe = load_recipe(write_recipe("task: cam\n"))
    assert recipe.cam.scales == [1.0, 0.5, 1.5, 2.0]
    assert (recipe.cam.low_alpha, recipe.cam.high_alpha) == (4.0, 32.0)
    assert (recipe.random_walk.alpha, recipe.random_walk.beta, recipe.random_walk.logt) == (16.0, 8.0, 8)
    assert recipe.affinity.radius == 5
    crf = recipe.crf
    assert (crf.gaussian_sxy, crf.gaussian_compat) == (3.0, 3.0)
    assert (crf.bilateral_sxy, crf.bilateral_srgb, crf.bilateral_compat, crf.iterations) == (80.0, 13.0, 10.0, 10)
    assert (recipe.cam.train.batch_size, recipe.cam.train.epochs, recipe.cam.crop_size) == (16, 15, 448)
    assert (recipe.affinity.train.batch_size, recipe.affinity.train.epochs) == (8, 8)


def test_base_inheritance_deep_merge_child_wins(write_recipe):
    write_recipe("run: {dir: runs/a, seed: 3}\ncam: {train: {lr: 0.5, epochs: 2}}\n", "bases/one.yaml")
    write_recipe("cam: {train: {epochs: 7}}\ndata: {kind: synthetic}\n", "bases/two.yaml")
    path = write_recipe("_base_: [bases/one.yaml, bases/two.yaml]\nrun: {seed: 9}\n")
    recipe = load_recipe(path)
    assert recipe.run.dir == "runs/a"  # from one
    assert recipe.run.seed == 9  # child wins
    assert recipe.cam.train.lr == 0.5  # one, not touched by two
    assert recipe.cam.train.epochs == 7  # two wins over one
    assert recipe.data.kind == "synthetic"


def test_base_relative_to_the_including_file(write_recipe):
    write_recipe("run: {seed: 4}\n", "deep/base/root.yaml")
    write_recipe("_base_: base/root.yaml\nrun: {dir: x}\n", "deep/mid.yaml")
    recipe = load_recipe(write_recipe("_base_: deep/mid.yaml\n"))
    assert (recipe.run.seed, recipe.run.dir) == (4, "x")


def test_overrides_are_typed_by_the_schema(write_recipe):
    path = write_recipe("task: cam\n")
    recipe = load_recipe(path, ["cam.train.lr=1e-3", "cam.scales=[1,0.5]", "model.pretrained=false",
                                "random_walk.logt=6", "run.mixed_precision=bf16", "cam.train.epochs=2.0"])
    assert recipe.cam.train.lr == pytest.approx(1e-3) and isinstance(recipe.cam.train.lr, float)
    assert recipe.cam.scales == [1, 0.5]
    assert recipe.model.pretrained is False
    assert recipe.random_walk.logt == 6
    assert recipe.run.mixed_precision == "bf16"
    assert recipe.cam.train.epochs == 2 and isinstance(recipe.cam.train.epochs, int)


def test_typed_lists_coerce_their_items(write_recipe):
    # [.., 0] and [.., 0.0] are one recipe: same values, same provenance fingerprint
    recipe = load_recipe(write_recipe("cam: {color_jitter: [0.3, 0.3, 0.3, 0], resize_long: [80.0, 112]}\n"))
    assert recipe.cam.color_jitter == [0.3, 0.3, 0.3, 0.0] and isinstance(recipe.cam.color_jitter[3], float)
    assert recipe.cam.resize_long == [80, 112] and isinstance(recipe.cam.resize_long[0], int)


def test_yaml_1e_minus_3_string_is_read_as_a_float(write_recipe):
    recipe = load_recipe(write_recipe("cam:\n  train:\n    lr: 1e-3\n"))
    assert recipe.cam.train.lr == pytest.approx(0.001)


@pytest.mark.parametrize("text, overrides, fragment", [
    ("cam: {train: {lrr: 0.1}}\n", [], "did you mean 'cam.train.lr'"),
    ("task: cam\n", ["random_walk.betta=3"], "random_walk.betta"),
    ("cam: {train: {lr: fast}}\n", [], "cam.train.lr"),
    ("cam: {train: {lr: -0.1}}\n", [], "cam.train.lr"),
    ("random_walk: {logt: -1}\n", [], "random_walk.logt"),
    ("affinity: {radius: 1}\n", [], "affinity.radius"),
    ("cam: {crop_size: 100}\n", [], "cam.crop_size"),
    ("task: nope\n", [], "task"),
    ("model: {pretrained: maybe}\n", [], "model.pretrained"),
    ("cam: 3\n", [], "cam"),
    ("task: cam\n", ["justakey"], "key=value"),
    ("cam: {fixmatch: {randaugment_space: [Solarize, Rotate]}}\n", [], "cam.fixmatch.randaugment_space"),
    ("cam: {fixmatch: {randaugment_space: []}}\n", [], "cam.fixmatch.randaugment_space"),
    ("cam: {color_jitter: [0.3, strong, 0.3, 0]}\n", [], "cam.color_jitter[1]"),
])
def test_bad_recipes_name_the_key(write_recipe, text, overrides, fragment):
    with pytest.raises(PsaError) as info:
        load_recipe(write_recipe(text), overrides)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_base_cycle_invalid_yaml_missing_file(write_recipe, tmp_path):
    with pytest.raises(PsaError, match="_base_ file not found: nothere.yaml"):
        load_recipe(write_recipe("_base_: nothere.yaml\n"))
    write_recipe("_base_: b.yaml\n", "a.yaml")
    write_recipe("_base_: a.yaml\n", "b.yaml")
    with pytest.raises(PsaError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")
    with pytest.raises(PsaError, match="invalid YAML .* line"):
        load_recipe(write_recipe("run: {dir: [unclosed\n", "bad.yaml"))
    with pytest.raises(PsaError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_yaml_is_read_safely(write_recipe):
    path = write_recipe("run: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(PsaError, match="invalid YAML"):
        load_recipe(path)


def test_dump_round_trips(write_recipe, tmp_path):
    recipe = load_recipe(write_recipe("task: affinity\n"), ["random_walk.beta=10", "data.classes=[bg, a, b]"])
    dumped = write_recipe(dump_recipe(recipe), "dumped.yaml")
    again = load_recipe(dumped)
    assert again == recipe
    assert isinstance(yaml.safe_load(dumped.read_text()), dict)


@pytest.mark.parametrize("name", sorted(path.stem for path in (ROOT / "recipes").glob("*.yaml")))
def test_shipped_recipes_load(name):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert isinstance(recipe, Recipe)
    if name == "reference_faithful":
        assert recipe.cam.train.momentum == pytest.approx(5e-4)
