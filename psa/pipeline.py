"""Every step in order, rerun like `make`: a step is done when its provenance record matches
what the recipe asks for (psa/provenance.py), so a killed pipeline resumes where it stopped and
a changed key reruns exactly the steps downstream of it. The steps are the registry's
(psa/framework/registry.py), in their dependency order; `pipeline.steps` picks some of them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from .config import Recipe
from .data import build_source
from .engine.report import Reporter, is_main_process
from .errors import PsaError
from .framework import run_lock
from .framework.registry import REGISTRY
from .framework.step import Step
from .io import atomic_write_json, read_json
from .layout import RunLayout
from .provenance import RESUMABLE_KEYS, Provenance, describe, difference, matches, read_record


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    done: bool  # its record matches the recipe: skipped
    why: str  # for a step to run: what changed ("" when it never ran)


@dataclass
class PipelineResult:
    ran: list[str] = field(default_factory=list)  # the steps that ran, in order
    skipped: list[str] = field(default_factory=list)  # done already
    left_out: list[str] = field(default_factory=list)  # evaluations whose split lacks their ground truth
    summary: dict = field(default_factory=dict)  # the summary table's rows (summarize)


def selected_steps(recipe: Recipe, until: Optional[str] = None) -> list[Step]:
    """The steps `pipeline.steps` names (null: the registry's default steps), in the order
    they run, up to and including `until` (which need not be selected itself)."""
    names = REGISTRY.names()
    if until is not None and until not in names:
        raise PsaError(f"--until {until!r} is not a step; steps: {', '.join(names)}")
    steps = REGISTRY.selected(recipe)
    if until is None:
        return steps
    order = [step.name for step in REGISTRY.ordered(recipe)]
    last = order.index(until)
    return [step for step in steps if order.index(step.name) <= last]


def unscorable(recipe: Recipe, steps: list[Step]) -> dict[str, list[str]]:
    """{split: [evaluation steps]}: the evaluations among `steps` whose split lacks the ground
    truth they score against (`Step.ground_truth`: a mask, or an instance map, for some
    image). They cannot run, so the plan leaves them out. Only file names are looked at."""
    available: dict[tuple[str, str], bool] = {}
    found: dict[str, list[str]] = {}
    for step in steps:
        if step.ground_truth is None:
            continue
        for split in step.spec.splits(recipe):
            key = (split, step.ground_truth)
            if key not in available:
                available[key] = bool(getattr(build_source(recipe.data, split), f"has_{step.ground_truth}"))
            if not available[key]:
                found.setdefault(split, []).append(step.name)
    return found


def left_out_message(found: dict[str, list[str]]) -> str:
    """One line for the log: which evaluations are left out, and why."""
    parts = [f"{', '.join(names)} (split {split!r})" for split, names in found.items()]
    return f"no ground truth (masks or instance maps) to score against, leaving out {'; '.join(parts)}"


def plan(recipe: Recipe, until: Optional[str] = None) -> list[PlannedStep]:
    """Which steps are done and which must run, from the records alone (no image is read).
    A step runs when its record is missing, incomplete or made from other inputs; since a
    record holds its upstream records, everything downstream of a change runs, nothing else.
    Evaluations whose split lacks their ground truth are left out (`unscorable`).
    Trained weights are never replaced silently: a finished training whose inputs changed
    stops the plan with one line naming the key (before anything runs)."""
    prov = Provenance(recipe)
    steps = selected_steps(recipe, until)
    left_out = {name for names in unscorable(recipe, steps).values() for name in names}
    planned = []
    for step in (step for step in steps if step.name not in left_out):
        expected = prov.record(step)
        path = step.record(recipe)
        if matches(path, expected):
            planned.append(PlannedStep(step, True, ""))
            continue
        recorded = read_record(path)
        change = difference(recorded, expected) if recorded is not None else None
        if (step.spec.weights is not None and recorded is not None and recorded.get("complete")
                and difference(recorded, expected, ignore=RESUMABLE_KEYS) is not None):
            weights = step.spec.weights(recipe)
            before = [p.step.name for p in planned if not p.done]
            hint = f", or stop before it with --until {before[-1]}" if before else ""
            raise PsaError(f"{weights} was trained with other inputs: {describe(change)}; use a new run.dir "
                           f"(tools/sweep.py reuses every unchanged stage), delete {weights.parent} to retrain{hint}")
        planned.append(PlannedStep(step, False, describe(change) if change else ""))
    return planned


def check_masks_first(recipe: Recipe, steps: list[PlannedStep]) -> None:
    """The ground-truth masks of every split an evaluation still to run scores, read and
    checked before the first step: a bad mask stops the run before hours of training, not at
    its evaluation. Generated data sets have no files to check."""
    splits = {split for planned in steps if not planned.done and planned.step.ground_truth == "masks"
              for split in planned.step.spec.splits(recipe)}
    if not splits or all(planned.step.evaluates is not None for planned in steps if not planned.done):
        return  # nothing but evaluations to run: each checks its own masks as it goes
    for split in sorted(splits):
        source = build_source(recipe.data, split)
        if getattr(source, "image_path", None) is None:
            continue
        for index in range(len(source)):
            source.load_mask(index)


def run(recipe: Recipe, reporter: Optional[Reporter] = None, until: Optional[str] = None) -> PipelineResult:
    """Run the steps whose records do not match the recipe; write and return the summary.
    It holds the run folder's lock meanwhile (psa/framework/run_lock.py)."""
    reporter = reporter or Reporter()
    REGISTRY.check_recipe(recipe)
    took_over = run_lock.acquire(recipe.run.dir)
    if took_over:
        reporter.log(took_over)
    try:
        return _run(recipe, reporter, until)
    finally:
        run_lock.release(recipe.run.dir)


def _run(recipe: Recipe, reporter: Reporter, until: Optional[str]) -> PipelineResult:
    result = PipelineResult()
    steps = plan(recipe, until)
    left_out = unscorable(recipe, selected_steps(recipe, until))
    if left_out:  # said once, before anything trains
        reporter.log(left_out_message(left_out))
        result.left_out = [name for names in left_out.values() for name in names]
    check_masks_first(recipe, steps)
    for planned in steps:
        step = planned.step
        if planned.done:
            reporter.step(step.name, "skip", str(step.record(recipe)))
            result.skipped.append(step.name)
            continue
        reporter.step(step.name, "start", planned.why)
        started = time.perf_counter()
        step.run(recipe, reporter)
        result.ran.append(step.name)
        reporter.step(step.name, "done", f"{time.perf_counter() - started:.1f}")
    result.summary = summarize(recipe)
    if is_main_process():
        atomic_write_json(RunLayout.of(recipe).summary, result.summary)
    return result


def metrics_of(recipe: Recipe, step: Step) -> Optional[dict]:
    """The metrics.json a step's summary rows read, or None before it ran."""
    return read_json(step.metrics(recipe)) if step.metrics is not None else None


def summarize(recipe: Recipe) -> dict:
    """{row label: row} in the order the steps run: each registered summary row whose step has
    run, {miou, split, images}; and each per-image step that finished with no evaluation
    scoring its outputs (no ground-truth masks), {outputs: images covered, split}."""
    steps = REGISTRY.ordered(recipe)
    scored = {step.evaluates.step.name for step in steps if step.evaluates is not None and metrics_of(recipe, step)}
    rows = {}
    for step in steps:
        for row in step.rows:
            metrics = metrics_of(recipe, step)
            if metrics is not None:
                rows[row.label] = {"miou": metrics.get(row.key), "split": metrics.get("split"),
                                   "images": metrics.get("images")}
        if step.count is not None and step.name not in scored:
            done = read_json(step.count.done(recipe))
            if done is not None:
                rows[step.count.label] = {"outputs": done.get("images"),
                                          "split": "+".join(dict.fromkeys(step.spec.splits(recipe)))}
    return rows
