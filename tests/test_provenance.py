"""Provenance: step outputs know what made them, stale ones are recomputed or refused, the
pipeline reruns like make, and a sweep shares what still fits.

One tiny finished run of every registered step (8 synthetic images, one training step per
network) is made per module, every step run with a recipe that records which keys it reads;
the contract tests are parametrised over every registered step; each other test works on a
copy of the run.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import CORE_DEMO, ROOT, TINY_OVERRIDES, Recording, method_overrides, stage_dir, tool_command
from psa import load_recipe
from psa.engine.report import Reporter
from psa.errors import PsaError
from psa.framework.registry import REGISTRY
from psa.provenance import DATA_KEYS, OPERATIONAL_KEYS, Provenance, covered, flatten, read_record, write_record

DEMO = str(CORE_DEMO)
# the tests' tiny recipe, smaller still: 8 images (one batch), one step per network, CRF in-process
OVERRIDES = (*TINY_OVERRIDES, *method_overrides(), "data.synthetic.num_train=8", "data.synthetic.num_val=4",
             "cam.scales=[1.0]", "cam.train.epochs=1", "affinity.train.epochs=1", "seg.train.epochs=1",
             "eval.crf_workers=1", "eval.num_pictures=1",
             "cam.train.lr=0.001",  # one step at 0.05 leaves all-zero CAMs
             "random_walk.logt=0")  # one walk step: 6x6 maps converge in a few, hiding beta
EVERY_STEP = f"pipeline.steps=[{','.join(REGISTRY.names())}]"


def recipe_at(run_dir: Path, *extra: str):
    return load_recipe(DEMO, [*OVERRIDES, EVERY_STEP, f"run.dir={run_dir}", *extra])


STEPS = REGISTRY.ordered(recipe_at(Path("unused")))


# ----------------------------------------------------------------------------- reading recorder


class ReadRecorder:
    """Rebuilds a recipe from subclasses of its section classes whose attribute reads are
    recorded as dotted keys ("random_walk.beta"). Reads made by the provenance bookkeeping
    itself (psa/provenance.py, and the stage specs it calls) or by dataclasses.asdict/replace
    (dumping or copying the whole recipe) are not the stage's and are left out."""

    SKIP = ("/psa/provenance.py", "/dataclasses.py")

    def __init__(self):
        self.reads: set[str] = set()
        self._classes: dict[type, type] = {}

    def _subclass(self, cls: type) -> type:
        if cls not in self._classes:
            names = {f.name for f in dataclasses.fields(cls)}
            recorder = self

            def __getattribute__(obj, name):
                value = object.__getattribute__(obj, name)
                if name in names and not dataclasses.is_dataclass(value) and recorder._by_a_stage():
                    try:
                        prefix = object.__getattribute__(obj, "_read_path")
                    except AttributeError:
                        prefix = ""  # a copy of the top-level recipe (dataclasses.replace)
                    recorder.reads.add(prefix + name)
                return value

            self._classes[cls] = type(f"Recording{cls.__name__}", (cls,), {"__getattribute__": __getattribute__})
        return self._classes[cls]

    def _by_a_stage(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_filename.endswith(self.SKIP):
                return False
            frame = frame.f_back
        return True

    def wrap(self, node, path: str = ""):
        values = {}
        for f in dataclasses.fields(node):
            value = object.__getattribute__(node, f.name)
            values[f.name] = self.wrap(value, f"{path}{f.name}.") if dataclasses.is_dataclass(value) else value
        wrapped = self._subclass(type(node))(**values)
        object.__setattr__(wrapped, "_read_path", path)
        return wrapped


def undeclared(reads: set[str], spec, more: tuple = ()) -> list[str]:
    allowed = (*spec.reads, *more, *spec.ignores, *OPERATIONAL_KEYS, *DATA_KEYS)
    return sorted(key for key in reads if not covered(key, allowed))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Every pipeline step, in order, each with a fresh read recorder: (run dir, reads per step)."""
    run_dir = tmp_path_factory.mktemp("provenance") / "run"
    # in-process: the recorder sees reads in this process only, not in forked image workers
    recipe = recipe_at(run_dir, "run.cpu_workers=1")
    reads = {}
    for step in STEPS:
        recorder = ReadRecorder()
        step.run(recorder.wrap(recipe), Reporter())
        reads[step.name] = recorder.reads
    return run_dir, reads


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(finished_run[0], copy, symlinks=True)
    return copy


def tree_state(folder: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*"))
            if p.is_file() and "tb" not in p.parts}


# ----------------------------------------------------------------------------- declared keys


@pytest.mark.slow
@pytest.mark.parametrize("name", [step.name for step in STEPS])
def test_every_recipe_key_a_step_reads_is_in_its_spec(finished_run, name):
    _, reads = finished_run
    step = REGISTRY.get(name)
    assert reads[name], f"the recorder saw no read in {name}"
    problems = [f"step {name} reads recipe key '{key}' that is not in its StepSpec: add it to `reads` where "
                f"method {step.method or '(the test)'} registers it (or to `ignores` if it cannot change the output, "
                "or to psa.provenance.OPERATIONAL_KEYS if it never changes any result)"
                for key in undeclared(reads[name], step.spec, step.spec.more_reads(recipe_at(Path("unused"))))]
    assert not problems, "\n".join(problems)


def test_the_recorder_sees_the_keys_that_matter(finished_run):
    """Else the test above could not fail."""
    _, reads = finished_run
    assert {"random_walk.beta", "random_walk.logt", "crf.iterations"} <= reads["random_walk"]
    assert {"cam.train.lr", "cam.crop_size", "run.seed"} <= reads["train_cam"]


@pytest.mark.slow
@pytest.mark.parametrize("name", [step.name for step in STEPS])
def test_every_step_is_done_on_an_unchanged_rerun_and_a_read_key_reruns_it_and_its_downstream(finished_run, name):
    """make-like: the plan of the finished run skips the step; a key it reads changes its
    record and those of the steps made from it (transitively), no other."""
    from psa.pipeline import plan

    recipe = recipe_at(finished_run[0])
    planned = {p.step.name: p.done for p in plan(recipe)}
    assert planned[name], f"{name} would rerun on an unchanged recipe"
    step = REGISTRY.get(name)
    skipped = (*OPERATIONAL_KEYS, *step.spec.unused(recipe))
    reads = (*step.spec.reads, *step.spec.more_reads(recipe))
    keys = [k for k, v in flatten(recipe).items() if covered(k, reads) and not covered(k, skipped)
            and isinstance(v, (int, float))]
    if not keys:
        pytest.skip(f"{name} reads no number or switch to change")
    changed = _with_value(recipe, keys[0])
    before, after = Provenance(recipe), Provenance(changed)
    moved = {s.name for s in STEPS if before.record(s)["fingerprint"] != after.record(s)["fingerprint"]}
    made_from = {s.name for s in STEPS if name in _ancestors(s, recipe)}
    readers = {s.name for s in STEPS if covered(keys[0], (*s.spec.reads, *s.spec.more_reads(recipe)))
               and not covered(keys[0], (*OPERATIONAL_KEYS, *s.spec.unused(recipe)))}
    expected = {s.name for s in STEPS if s.name in readers or _ancestors(s, recipe) & readers}
    assert name in moved and made_from <= moved and moved == expected, (keys[0], sorted(moved ^ expected))


@pytest.mark.slow
@pytest.mark.parametrize("name", [step.name for step in STEPS if step.spec.upstream(recipe_at(Path("unused")))])
def test_every_step_refuses_an_upstream_output_made_with_other_inputs(run_copy, name):
    recipe = recipe_at(run_copy)
    step = REGISTRY.get(name)
    upstream = step.spec.upstream(recipe)[0]
    record = read_record(upstream.record(recipe))
    record["inputs"]["data.stale_marker"] = "made by another recipe"
    write_record(upstream.record(recipe), {**record, "fingerprint": "0" * 16}, complete=True)
    if step.training is not None:  # a finished training is not redone, so not checked: unfinish it
        step.record(recipe).unlink()
    with pytest.raises(PsaError, match=rf"(made|trained) with other inputs than {name}\w* needs: data.stale_marker was "
                                       r"'made by another recipe', the recipe now says '\(not used\)'"):
        step.run(recipe, Reporter())


def _with_value(recipe, key: str):
    """A copy of `recipe` with the number or switch at dotted `key` changed (no check: nothing runs)."""
    *path, leaf = key.split(".")

    def replace(node, parts):
        if not parts:
            value = getattr(node, leaf)
            return dataclasses.replace(node, **{leaf: not value if isinstance(value, bool) else value * 2 + 1})
        return dataclasses.replace(node, **{parts[0]: replace(getattr(node, parts[0]), parts[1:])})
    return replace(recipe, path)


def _ancestors(step, recipe) -> set[str]:
    found, todo = set(), list(step.spec.upstream(recipe))
    while todo:
        up = todo.pop()
        if up.name not in found:
            found.add(up.name)
            todo.extend(up.spec.upstream(recipe))
    return found


def test_the_read_recorder_catches_an_undeclared_key(tiny_recipe):
    """The control: a stand-in stage reading a key its spec lacks is reported by name."""

    recorder = ReadRecorder()
    recipe = recorder.wrap(tiny_recipe())
    _ = recipe.cam.low_alpha, recipe.random_walk.beta, stage_dir(recipe, "affinity")
    assert undeclared(recorder.reads, REGISTRY.get("eval_rw").spec) == ["cam.low_alpha", "random_walk.beta"]
    assert undeclared(recorder.reads, REGISTRY.get("random_walk").spec) == ["cam.low_alpha"]


@pytest.mark.parametrize("method", ["supervised", "fixmatch", "mixmatch"])
def test_only_the_chosen_methods_settings_enter_the_classifiers_record(method):
    """A FixMatch setting changes a FixMatch classifier's record and leaves a supervised or
    MixMatch one (whose training never reads it) valid; the same for a MixMatch setting."""
    def fingerprint(*extra):
        recipe = load_recipe(DEMO, [*OVERRIDES, f"cam.method={method}", "cam.labeled.fraction=0.5", *extra])
        return Provenance(recipe).record(REGISTRY.get("train_cam"))["fingerprint"]

    base = fingerprint()
    assert (fingerprint("cam.fixmatch.tau_pos=0.9") != base) == (method == "fixmatch")
    assert (fingerprint("cam.mixmatch.temperature=0.3") != base) == (method == "mixmatch")
    assert fingerprint("cam.labeled.fraction=0.25") != base  # read by every method


def test_mask_crf_moves_the_refined_masks_and_leaves_the_confident_labels():
    """With `mask_crf` unset, refining steps record `crf` as before the key existed; once set,
    it alone changes them, and `crf` then changes only the CAM export's labels."""
    def records(*extra):
        provenance = Provenance(load_recipe(DEMO, [*OVERRIDES, *extra]))
        return {step: provenance.record(REGISTRY.get(step)) for step in ("export_cams", "random_walk", "eval_rw_crf")}

    base = records()
    assert not any(key.startswith("mask_crf") for key in base["random_walk"]["inputs"])
    assert base["random_walk"]["inputs"]["crf.bilateral_compat"] == 10.0
    mask = records("mask_crf.bilateral_compat=3")
    assert mask["export_cams"]["fingerprint"] == base["export_cams"]["fingerprint"]
    assert mask["random_walk"]["inputs"]["mask_crf.bilateral_compat"] == 3.0
    assert not any(key.startswith("crf.") for key in mask["random_walk"]["inputs"])
    for step in ("random_walk", "eval_rw_crf"):
        assert mask[step]["fingerprint"] != base[step]["fingerprint"]
    labels = records("mask_crf.bilateral_compat=3", "crf.bilateral_compat=5")
    assert labels["export_cams"]["fingerprint"] != mask["export_cams"]["fingerprint"]
    assert labels["random_walk"]["inputs"] == mask["random_walk"]["inputs"]  # only its upstream moved
    recipe = load_recipe(DEMO, ["mask_crf.bilateral_compat=3"])
    assert recipe.refining_crf().bilateral_compat == 3.0 and recipe.refining_crf().bilateral_sxy == 80.0
    plain = load_recipe(DEMO)
    assert plain.mask_crf is None and plain.refining_crf() is plain.crf


def test_min_confidence_enters_the_seg_record_only_when_set():
    """At its default (0) the trained network's record is the one from before the key existed;
    set, it moves train_seg and nothing upstream (CPS's: tests/methods/cps)."""
    def records(*extra):
        provenance = Provenance(load_recipe(DEMO, [*OVERRIDES, *extra]))
        return {step: provenance.record(REGISTRY.get(step)) for step in ("random_walk", "train_seg")}

    base = records()
    assert not any("min_confidence" in key for step in base.values() for key in step["inputs"])
    seg = records("seg.min_confidence=0.6")
    assert seg["train_seg"]["inputs"]["seg.min_confidence"] == 0.6
    assert seg["train_seg"]["fingerprint"] != base["train_seg"]["fingerprint"]
    assert seg["random_walk"] == base["random_walk"]


# ----------------------------------------------------------------------------- stale outputs


def _scores(run_dir: Path) -> dict:
    out = {}
    for path in sorted((run_dir / "affinity" / "rw_scores").glob("*.npz")):
        with np.load(path) as data:
            out[path.stem] = data["scores"].astype(np.float32)
    return out


def _brute_force_miou(pred_dir: Path, recipe) -> float:
    from psa.data import build_source

    source = build_source(recipe.data, recipe.data.eval_split)
    num = len(source.classes)
    inter, union = np.zeros(num), np.zeros(num)
    for index, image_id in enumerate(source.ids):
        gt = source.load_mask(index)
        pred = np.asarray(Image.open(pred_dir / f"{image_id}.png"))
        valid = gt != 255
        for c in range(num):
            inter[c] += np.sum((gt == c) & (pred == c) & valid)
            union[c] += np.sum(((gt == c) | (pred == c)) & valid)
    present = union > 0
    return float(np.mean(inter[present] / union[present]))


@pytest.mark.slow
def test_changing_beta_recomputes_the_walk_and_the_evaluation(run_copy, tmp_path):
    from psa.framework.evaluation import evaluate
    from conftest import run_random_walk

    before = _scores(run_copy)
    changed = recipe_at(run_copy, "random_walk.beta=1")
    # the trap: the old masks scored as if they belonged to beta=1
    with pytest.raises(PsaError, match=r"affinity/pseudo was made with other inputs than eval_rw needs: "
                                       r"random_walk.beta was 8.0, the recipe now says 1.0; rerun random_walk"):
        evaluate(changed, "rw")
    summary = run_random_walk(changed)
    assert summary["written_here"] == summary["images"] == 8
    after = _scores(run_copy)
    assert before.keys() == after.keys()
    assert any(np.abs(before[k] - after[k]).max() > 1e-4 for k in before)
    assert read_record(run_copy / "affinity" / "random_walk.provenance.json")["inputs"]["random_walk.beta"] == 1.0

    # recomputed in place == computed from scratch (a copy without the walk's outputs)
    fresh = tmp_path / "fresh"
    shutil.copytree(run_copy / "cam", fresh / "cam", symlinks=True)
    (fresh / "affinity").mkdir()
    shutil.copy2(run_copy / "affinity" / "model.pt", fresh / "affinity" / "model.pt")
    shutil.copy2(run_copy / "affinity" / "train.provenance.json", fresh / "affinity" / "train.provenance.json")
    run_random_walk(recipe_at(fresh, "random_walk.beta=1"))
    for name in ("pseudo", "pseudo_crf", "rw_scores"):
        for path in sorted((fresh / "affinity" / name).iterdir()):
            assert path.read_bytes() == (run_copy / "affinity" / name / path.name).read_bytes(), path

    metrics = evaluate(changed, "rw")
    assert metrics["miou"] == pytest.approx(_brute_force_miou(run_copy / "affinity" / "pseudo", changed), abs=1e-9)
    record = read_record(run_copy / "affinity" / "eval" / "rw" / "provenance.json")
    assert record["upstream"]["random_walk"]["inputs"]["random_walk.beta"] == 1.0


def one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.slow
def test_changing_the_class_list_refuses_in_one_line(run_copy):
    from conftest import export_cams

    for path in sorted((run_copy / "cam" / "cams").glob("*.npz"))[:3]:  # the IndexError case
        path.unlink()
    before = tree_state(run_copy)
    result = subprocess.run(tool_command("export_cams", DEMO, *OVERRIDES, f"run.dir={run_copy}",
                                         "data.synthetic.num_classes=6"),
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 2
    line = one_error_line(result)
    assert f"{run_copy / 'cam' / 'model.pt'} was trained with other inputs than export_cams needs: " in line
    assert 'data.classes was ["background", "red_cross", "blue_disc", "yellow_triangle", "green_bars"], ' \
           'the recipe now says ["background", "red_cross", "blue_disc", "yellow_triangle", "green_bars", ' \
           '"magenta_ring", "cyan_diamond"]' in line, line
    assert tree_state(run_copy) == before  # nothing written, nothing removed

    # weights without a provenance record (older runs): the checkpoint's own metadata decides
    (run_copy / "cam" / "train.provenance.json").unlink()
    with pytest.raises(PsaError, match=r"checkpoint .*cam/model.pt was trained with data.classes=\['background', "
                                       r"'red_cross', 'blue_disc', 'yellow_triangle', 'green_bars'\], the recipe says "
                                       r"data.classes=\[.*'cyan_diamond'\]$"):
        export_cams(recipe_at(run_copy, "data.synthetic.num_classes=6"))


@pytest.mark.slow
def test_an_affinity_net_of_another_radius_is_refused_naming_both_values(run_copy):
    from conftest import run_random_walk

    with pytest.raises(PsaError, match=r"affinity/model.pt was trained with other inputs than random_walk needs: "
                                       r"affinity.radius was 5, the recipe now says 4;"):
        run_random_walk(recipe_at(run_copy, "affinity.radius=4"))
    (run_copy / "affinity" / "train.provenance.json").unlink()
    with pytest.raises(PsaError, match=r"checkpoint .*affinity/model.pt was trained with affinity.radius=5, "
                                       r"the recipe says affinity.radius=4$"):
        run_random_walk(recipe_at(run_copy, "affinity.radius=4", "random_walk.beta=2"))


# ----------------------------------------------------------------------------- skipping, make-like reruns


def test_a_first_prediction_removes_nothing_and_a_stray_file_is_named(run_copy):
    """The empty subfolders a prediction step makes for its extras (classes/) are not outputs
    without a record; a label map left without one is, and is recomputed."""
    from psa.framework.prediction import predict

    recipe = recipe_at(run_copy)
    folder = run_copy / "seg" / "pred"
    shutil.rmtree(folder)
    first = Recording()
    predict(recipe, reporter=first)
    assert not [line for line in first.lines if "recomputing" in line]
    (folder / "predict.provenance.json").unlink()
    again = Recording()
    predict(recipe, reporter=again)
    assert any("outputs without a provenance record; recomputing" in line for line in again.lines)


@pytest.mark.slow
def test_an_unchanged_rerun_skips_every_step_without_reading_an_image(run_copy, monkeypatch):
    from psa.pipeline import run
    from psa.data.synthetic import SyntheticSource
    from conftest import export_cams
    from psa.framework.prediction import predict
    from conftest import run_random_walk

    def refuse(*args, **kwargs):
        raise AssertionError("an image was read on the skip path")

    for name in ("load_image", "load_mask", "sample"):
        monkeypatch.setattr(SyntheticSource, name, refuse)
    before = tree_state(run_copy)
    recipe = recipe_at(run_copy)
    assert run(recipe, Reporter()).ran == []
    assert export_cams(recipe)["skipped_here"] == 8
    assert run_random_walk(recipe)["written_here"] == 0
    assert predict(recipe)["written_here"] == 0
    after = tree_state(run_copy)
    summary = run_copy / "pipeline" / "summary.json"
    assert {p: v for p, v in after.items() if not p.name.endswith("_done.json") and p != summary} == \
           {p: v for p, v in before.items() if not p.name.endswith("_done.json") and p != summary}


@pytest.mark.slow
def test_the_pipeline_reruns_exactly_the_steps_downstream_of_a_change(run_copy):
    from psa.pipeline import run

    def pipeline(*extra, until=None):
        return run(recipe_at(run_copy, *extra), Reporter(), until=until).ran

    upstream = {p: v for p, v in tree_state(run_copy).items()
                if p.is_relative_to(run_copy / "cam") or p.name in ("model.pt", "train.provenance.json")}
    assert pipeline("random_walk.beta=1", until="eval_rw_crf") == ["random_walk", "eval_rw", "eval_rw_crf"]
    assert pipeline("random_walk.beta=1", until="eval_rw_crf") == []  # nothing twice
    assert {p: v for p, v in tree_state(run_copy).items() if p in upstream} == upstream  # nothing upstream
    assert pipeline("random_walk.beta=1", "eval.bg_sweep=[0.1,0.3,0.1]", until="eval_rw_crf") == ["eval_cam"]

    # further down, the segmentation network was trained on beta=8 masks: refused before anything runs
    walk = tree_state(run_copy / "affinity")
    with pytest.raises(PsaError, match=r"seg/model.pt was trained with other inputs: random_walk.beta was 8.0, "
                                       r"the recipe now says 2.0; .* or stop before it with --until eval_rw_crf$"):
        pipeline("random_walk.beta=2", "eval.bg_sweep=[0.1,0.3,0.1]")
    assert tree_state(run_copy / "affinity") == walk


# ----------------------------------------------------------------------------- sweeps


@pytest.mark.slow
def test_a_2x2_random_walk_sweep_trains_nothing_and_equals_four_separate_runs(run_copy, tmp_path, monkeypatch):
    import psa.framework.training
    import psa.sweep
    from psa.pipeline import run

    def no_training(*args, **kwargs):
        raise AssertionError("the sweep trained a network")

    monkeypatch.setattr(psa.framework.training, "train", no_training)
    grid = [*OVERRIDES, f"run.dir={run_copy}", "random_walk.beta=4,8", "random_walk.logt=0,1"]
    folder = tmp_path / "sweep"
    result = psa.sweep.run(DEMO, grid, Reporter(), until="eval_rw_crf", folder=str(folder)).result
    rows = result["rows"]
    assert [(r["random_walk.beta"], r["random_walk.logt"]) for r in rows] == [(4, 0), (4, 1), (8, 0), (8, 1)]
    for row in rows:
        assert not [s for s in row["ran"] if s.startswith("train_")]
        point = Path(row["dir"])
        assert (point / "affinity" / "model.pt").is_symlink()
        assert (point / "affinity" / "model.pt").resolve() == (run_copy / "affinity" / "model.pt").resolve()
        assert (point / "cam" / "cams").resolve() == (run_copy / "cam" / "cams").resolve()
    assert rows[2]["ran"] == []  # beta 8, logt 0 is the base run itself: all shared
    assert len((folder / "sweep.csv").read_text().splitlines()) == 5
    assert json.loads((folder / "sweep.json").read_text())["rows"] == json.loads(json.dumps(rows))
    assert Image.open(folder / "sweep.png").size[0] > 0
    assert list((folder / "tb").rglob("events.out.tfevents.*"))

    for row in rows:  # each point again as its own run, on a copy of the trained base
        alone = tmp_path / f"alone_{row['point']}"
        shutil.copytree(run_copy, alone, symlinks=True)
        recipe = recipe_at(alone, f"random_walk.beta={row['random_walk.beta']}",
                           f"random_walk.logt={row['random_walk.logt']}")
        run(recipe, Reporter(), until="eval_rw_crf")
        for step in ("eval_rw", "eval_rw_crf", "eval_cam"):
            metrics = json.loads((alone / ("cam" if step == "eval_cam" else "affinity") / "eval" /
                                  step.removeprefix("eval_") / "metrics.json").read_text())
            assert row[step] == metrics["miou"], (row["point"], step)
        for path in sorted((alone / "affinity" / "rw_scores").iterdir()):
            assert path.read_bytes() == (Path(row["dir"]) / "affinity" / "rw_scores" / path.name).read_bytes()

    # a killed sweep: one point lost its last evaluation; the rerun computes that alone
    shutil.rmtree(Path(rows[1]["dir"]) / "affinity" / "eval" / "rw_crf")
    again = psa.sweep.run(DEMO, grid, Reporter(), until="eval_rw_crf", folder=str(folder)).result
    assert [r["ran"] for r in again["rows"]] == [[], ["eval_rw_crf"], [], []]
    assert [r["eval_rw_crf"] for r in again["rows"]] == [r["eval_rw_crf"] for r in rows]
