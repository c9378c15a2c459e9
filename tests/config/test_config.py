import dataclasses
from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml

from psa import load_recipe
from psa.config import Recipe, dump_recipe
from psa.config import loader
from psa.errors import PsaError

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.mark.parametrize("override, message", [
    ("cam.fixmatch.teacher=student", "recipe key 'cam.fixmatch.teacher' must be one of model, ema, got 'student'"),
    ("run.mixed_precision=fp8", "recipe key 'run.mixed_precision' must be one of null, no, bf16, fp16, got 'fp8'"),
    ("seg.labels=3", "recipe key 'seg.labels' must be one of pseudo, pseudo_crf, gt, got 3"),
])
def test_literal_choices_are_refused_in_one_line(write_recipe, override, message):
    with pytest.raises(PsaError) as info:
        load_recipe(write_recipe("task: cam\n"), [override])
    assert str(info.value) == message


@pytest.mark.parametrize("override, message", [
    ("cam.method=x", "recipe key 'cam.method' must be one of supervised, fixmatch, mixmatch, got 'x'"),
    ("seg.masks=rww", "recipe key 'seg.masks' must be one of {sources}, got 'rww' (did you mean 'rw'?)"),
    ("data.kind=vocc", "recipe key 'data.kind' must be one of coco, pet, synthetic, voc, got 'vocc' "
                       "(did you mean 'voc'?)"),
])
def test_choices_the_methods_register_are_refused_in_one_line(write_recipe, override, message):
    """cam.method names a registered CAM variant, seg.masks a pseudo-mask source, data.kind a
    data kind: the registry, not the schema, knows them."""
    from psa.framework.masks import MaskSource
    from psa.framework.registry import REGISTRY

    with pytest.raises(PsaError) as info:
        REGISTRY.check_recipe(load_recipe(write_recipe("task: cam\n"), [override]))
    assert str(info.value) == message.format(sources=", ".join(s.name for s in REGISTRY.all(MaskSource)))


def test_a_renamed_key_names_its_new_name(write_recipe):
    with pytest.raises(PsaError, match=r"^recipe key 'seg.walk' is now 'seg.masks'$"):
        load_recipe(write_recipe("seg: {walk: irn}\n"))


def test_a_recipe_pickles_and_a_fresh_process_rebuilds_its_method_sections(write_recipe, tmp_path):
    """What a spawned DataLoader worker does with a dataset that holds a section."""
    import pickle
    import subprocess
    import sys

    recipe = load_recipe(write_recipe("task: cam\n"), ["random_walk.beta=3", "cam.fixmatch.mu=2"])
    assert pickle.loads(pickle.dumps(recipe)) == recipe
    (tmp_path / "recipe.pkl").write_bytes(pickle.dumps(recipe.cam))
    code = ("import pickle, sys; cam = pickle.load(open(sys.argv[1], 'rb')); "
            "print(type(cam).__name__, cam.fixmatch.mu, cam.scales)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "recipe.pkl")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["CamConfig", "2", "[1.0,", "0.5,", "1.5,", "2.0]"]


@pytest.mark.parametrize("override, key", [
    ("cam.fixmatch.mu=0", "cam.fixmatch.mu"),
    ("cam.train.epochs=0", "cam.train.epochs"),
    ("affinity.train.lr=0", "affinity.train.lr"),
    ("cam.labeled.fraction=0", "cam.labeled.fraction"),
    ("data.synthetic.num_classes=9", "data.synthetic.num_classes"),
    ("seg.crop_size=20", "seg.crop_size"),  # SegNetworkConfig's check, inherited, under seg
])
def test_section_checks_name_their_dotted_key(write_recipe, override, key):
    # a data kind checks its own section when the recipe chooses it
    with pytest.raises(PsaError, match=rf"^recipe key '{key}' "):
        load_recipe(write_recipe("task: cam\ndata: {kind: synthetic}\n"), [override])


def test_cross_section_check_on_the_section_holding_both_fields(write_recipe):
    path = write_recipe("cam: {method: fixmatch, fixmatch: {teacher: ema}}\n")
    with pytest.raises(PsaError, match="'cam.fixmatch.teacher' ema needs .* cam.train.ema_decay"):
        load_recipe(path)
    assert load_recipe(path, ["cam.train.ema_decay=0.99"]).cam.fixmatch.teacher == "ema"


def test_pipeline_steps_default_to_the_registry_and_task_is_not_checked_here(write_recipe):
    recipe = load_recipe(write_recipe("task: anything\n"))
    assert recipe.pipeline.steps is None and recipe.task == "anything"


@dataclasses.dataclass
class _Leaf:
    size: int = 4
    mode: Literal["a", "b"] = "a"
    tags: list[float] = dataclasses.field(default_factory=list)

    def check(self, key):
        loader.require(self.size > 0, f"{key}.size", "must be > 0")


@dataclasses.dataclass
class _Root:
    name: Optional[str] = None
    leaf: _Leaf = dataclasses.field(default_factory=_Leaf)
    other: _Leaf = dataclasses.field(default_factory=lambda: _Leaf(size=0))  # a default the check refuses
    seen: list = dataclasses.field(default_factory=list)

    def check(self, key):
        self.seen.append(key)


def test_the_loader_is_generic(write_recipe):
    base = write_recipe("leaf: {size: 2, mode: b}\nother: {size: 1}\n", "base.yaml")
    path = write_recipe(f"_base_: {base.name}\nleaf: {{tags: [1, 1e-3]}}\n")
    root = loader.load(path, ["name=x"], _Root)
    assert root == _Root(name="x", leaf=_Leaf(2, "b", [1.0, 0.001]), other=_Leaf(1), seen=[""])
    assert loader.to_dict(root)["leaf"] == {"size": 2, "mode": "b", "tags": [1.0, 0.001]}
    with pytest.raises(PsaError, match="^recipe key 'leaf.mode' must be one of a, b, got 'c'$"):
        loader.load(path, ["leaf.mode=c"], _Root)
    with pytest.raises(PsaError, match="^recipe key 'leaf.size' must be > 0$"):
        loader.load(path, ["leaf.size=0"], _Root)
    with pytest.raises(PsaError, match="^recipe key 'other.size' must be > 0$"):  # defaults are checked too
        loader.build(_Root, {})
    with pytest.raises(PsaError, match="did you mean 'leaf.size'"):
        loader.load(path, ["leaf.sise=1"], _Root)
