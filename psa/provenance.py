"""Provenance: every step's output records a fingerprint of exactly what made it.

A step declares, next to its code, a `StepSpec`: the recipe keys whose values change what
it writes (`reads`), the keys it reads that do not (`ignores`), the data splits it reads and
the upstream steps whose outputs it consumes. Its *record* is then a pure function of the
recipe: those keys' values, the data identity (kind, root, class list, generator settings,
the ids of each split, its label files, masks and image files by content) and the records of
its upstream steps, hashed into a fingerprint. Nothing here decodes an image, and a file's
hash is kept for the process while its size and mtime hold, so checking again stays cheap.

The module knows no step: a spec names its upstream steps as objects (anything with a
`name` and a `spec`, as psa.framework's `Step`), and their records are computed from them.

A record is written as JSON next to the outputs; a later run compares it with the record its
recipe asks for. `difference()` names the first key that changed and both values, descending
into the upstream records, so an error can say "random_walk.beta was 8.0, the recipe now
says 1.0" rather than "fingerprint mismatch".
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Protocol

from .config import Recipe
from .data import build_source, data_identity
from .errors import PsaError
from .io import atomic_write_json

# Read by some stage, never change a result: where to write, how fast, how often to log
# (run.channels_last: a memory layout, the same model up to float rounding, like thread counts;
# run.cpu_workers: how many processes share the images).
OPERATIONAL_KEYS = (
    "task", "methods", "run.dir", "run.num_workers", "run.cpu_workers", "run.min_free_mb", "run.deterministic",
    "run.channels_last", "pipeline",
    "eval.crf_workers", "*.train.checkpoint_every", "*.train.keep_checkpoints", "*.train.resume",
    "*.train.log_every", "*.train.images_per_epoch",
)
# What `psa.data.build_source` reads; it enters every record as the data identity instead.
DATA_KEYS = ("data.kind", "data.root", "data.classes", "data.label_mode", "data.synthetic", "data.max_size",
             "data.coco")
# In a training's fingerprint, but a checkpoint written under another value still resumes
# (max_steps stops a run early; the LR schedule does not depend on it).
RESUMABLE_KEYS = ("*.train.max_steps",)


class Node(Protocol):
    """A step as provenance sees it: its name (the key of its record among its downstream
    steps' upstream records) and its spec."""

    name: str
    spec: "StepSpec"


def _no_splits(recipe: Recipe) -> list[str]:
    return []


def _no_upstream(recipe: Recipe) -> tuple:
    return ()


def _none(recipe: Recipe) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True)
class StepSpec:
    """What one step's output depends on, and where its record and outputs live."""

    reads: tuple[str, ...]  # recipe keys or whole sections ("crf") that change the output
    record: Callable[[Recipe], Path]  # the record file (JSON with "fingerprint")
    outputs: Callable[[Recipe], list[Path]] = lambda recipe: []  # besides the record; a sweep links them
    splits: Callable[[Recipe], list[str]] = _no_splits
    upstream: Callable[[Recipe], tuple[Node, ...]] = _no_upstream  # the steps whose outputs it consumes
    ignores: tuple[str, ...] = ()  # keys it reads that do not change its output
    # keys of `reads` that this recipe's choices leave unread (another method's settings), so
    # changing them keeps its outputs
    unused: Callable[[Recipe], tuple[str, ...]] = _none
    # keys read beyond `reads` under this recipe's choices (the settings of the chosen variant)
    more_reads: Callable[[Recipe], tuple[str, ...]] = _none
    # a training step: where its weights are (they are refused, never silently redone)
    weights: Optional[Callable[[Recipe], Path]] = None


def key_matches(pattern: str, key: str) -> bool:
    """'crf' covers 'crf.iterations'; '*' matches one path segment."""
    pattern_parts, key_parts = pattern.split("."), key.split(".")
    return len(pattern_parts) <= len(key_parts) and all(
        fnmatchcase(k, p) for p, k in zip(pattern_parts, key_parts))


def covered(key: str, patterns: Iterable[str]) -> bool:
    return any(key_matches(p, key) for p in patterns)


def flatten(recipe: Recipe) -> dict[str, Any]:
    """{dotted key: value} of every leaf of the recipe."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if isinstance(value, dict):
                walk(value, f"{key}.")
            else:
                flat[key] = value
    walk(dataclasses.asdict(recipe), "")
    return flat


def fingerprint_of(inputs: dict, upstream: dict) -> str:
    payload = {"inputs": inputs, "upstream": {name: rec["fingerprint"] for name, rec in upstream.items()}}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Provenance:
    """The records a recipe asks for, computed once per step (and once per data split)."""

    def __init__(self, recipe: Recipe):
        self.recipe = recipe
        self._flat = flatten(recipe)
        self._splits: dict[str, dict] = {}
        self._records: dict[str, dict] = {}

    def data_identity(self, splits: list[str]) -> dict[str, Any]:
        data = self.recipe.data
        identity: dict[str, Any] = {}
        for split in splits:
            if split not in self._splits:
                # list files, label files, masks and image files by their bytes: no image decoded
                source = build_source(data, split)
                ids = "\n".join(source.ids).encode("utf-8")
                self._splits[split] = {"classes": list(source.classes),
                                       "ids": f"{len(source.ids)} ids, sha256 {hashlib.sha256(ids).hexdigest()[:12]}",
                                       **source.content_identity()}
                files = source.identity()
                if files:  # annotation files by content (COCO's json)
                    self._splits[split]["files"] = files
            identity.setdefault("data.classes", self._splits[split]["classes"])
            for name, value in self._splits[split].items():
                if name != "classes":
                    identity[f"data.{name}[{split}]"] = value
        if splits:  # what the data kind's files or generator are (psa/data/kinds.py)
            identity.update(data_identity(data))
        return identity

    def record(self, step: Node) -> dict:
        """The record this recipe asks the registered `step` to have."""
        if step.name not in self._records:
            self._records[step.name] = self.expected(step.name, step.spec)
        return self._records[step.name]

    def expected(self, name: str, spec: StepSpec, extra: Optional[dict] = None) -> dict:
        """The record of step `name` with `spec` (a registered step's, or an ad-hoc variant's:
        an evaluation of a folder, a prediction into another folder) and `extra` inputs."""
        skipped = (*OPERATIONAL_KEYS, *spec.unused(self.recipe))
        reads = (*spec.reads, *spec.more_reads(self.recipe))
        inputs = {key: value for key, value in self._flat.items()
                  if covered(key, reads) and not covered(key, skipped)}
        inputs.update(self.data_identity(spec.splits(self.recipe)))
        inputs.update(extra or {})
        upstream = {up.name: self.record(up) for up in spec.upstream(self.recipe)}
        return {"step": name, "fingerprint": fingerprint_of(inputs, upstream), "inputs": inputs,
                "upstream": upstream}


# ----------------------------------------------------------------------------- records on disk


def read_record(path: Path) -> Optional[dict]:
    """The record at `path`, or None when there is none (or it is unreadable: treated as absent)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "fingerprint" in record else None


def write_record(path: Path, record: dict, complete: bool, **extra: Any) -> None:
    """Atomically; an identical record already there is left alone (a skipped stage writes nothing)."""
    record = {**record, "complete": complete, **extra}
    if Path(path).is_symlink() or read_record(path) != json.loads(_canonical(record)):
        atomic_write_json(path, record)


def difference(recorded: dict, expected: dict, ignore: Iterable[str] = ()) -> Optional[tuple[str, Any, Any]]:
    """(key, recorded value, expected value) of the first input that differs, looking into the
    upstream records too; None when the two agree (apart from keys matching `ignore`)."""
    ignore = tuple(ignore)
    old, new = recorded.get("inputs", {}), expected.get("inputs", {})
    for key in [*new, *(k for k in old if k not in new)]:
        if covered(key, ignore):
            continue
        if key not in old or key not in new or _canonical(old[key]) != _canonical(new[key]):
            return key, old.get(key, "(not recorded)"), new.get(key, "(not used)")
    old_up, new_up = recorded.get("upstream", {}), expected.get("upstream", {})
    for name in [*new_up, *(n for n in old_up if n not in new_up)]:
        if name not in old_up or name not in new_up:
            return f"upstream step {name}", "used" if name in old_up else "not used", \
                "used" if name in new_up else "not used"
        found = difference(old_up[name], new_up[name], ignore)
        if found is not None:
            return found
    if not ignore and recorded.get("fingerprint") != expected.get("fingerprint"):
        return "fingerprint", recorded.get("fingerprint"), expected.get("fingerprint")
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def describe(change: tuple[str, Any, Any]) -> str:
    key, old, new = change
    if key.startswith("data.") and key.endswith("]"):  # a split's files, not a recipe key
        return f"{key} changed: {_short(old)} then, {_short(new)} now"
    return f"{key} was {_short(old)}, the recipe now says {_short(new)}"


def _short(value: Any) -> str:
    text = _canonical(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def matches(path: Path, expected: dict, complete: bool = True) -> bool:
    """Does the record at `path` hold `expected`'s fingerprint (and, if asked, say complete)?"""
    record = read_record(path)
    return (record is not None and record.get("fingerprint") == expected["fingerprint"]
            and (record.get("complete", True) or not complete))


def check_upstream(prov: Provenance, name: str, spec: StepSpec) -> None:
    """Refuse (one line naming the key and both values) when an output step `name` consumes
    was made from other inputs than the recipe asks for. An upstream output without a record
    (made before provenance existed, or copied in by hand) is trusted."""
    recipe = prov.recipe
    for upstream in spec.upstream(recipe):
        up_spec = upstream.spec
        path = up_spec.record(recipe)
        recorded = read_record(path)
        if recorded is None:
            continue
        expected = prov.record(upstream)
        if recorded["fingerprint"] != expected["fingerprint"]:
            change = difference(recorded, expected)
            trained = up_spec.weights is not None
            what = "was trained" if trained else "was made"
            if trained and difference(recorded, expected, ignore=RESUMABLE_KEYS) is None:
                hint = f"continue its training first ({upstream.name}: tools/train.py resumes it)"
            elif trained:
                hint = "retrain it in a new run.dir (tools/sweep.py reuses every unchanged stage)"
            else:
                hint = f"rerun {upstream.name} first"
            raise PsaError(f"{_output_name(path, up_spec, recipe)} {what} with other inputs than {name} "
                           f"needs: {describe(change)}; {hint}")


def _output_name(record_path: Path, spec: StepSpec, recipe: Recipe) -> str:
    outputs = spec.outputs(recipe)
    return str(outputs[0]) if outputs else str(record_path.parent)


# ----------------------------------------------------------------------------- per-image stages


def remove_output(path: Path) -> None:
    """Remove an output: a link (shared by a sweep) is unlinked, never followed; a folder is
    renamed first, so a kill half-way leaves no half-deleted folder under the real name."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        trash = path.with_name(f".{path.name}.stale")
        shutil.rmtree(trash, ignore_errors=True)
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)


def _holds_something(path: Path) -> bool:
    """A file or link, or a folder with one somewhere inside: the empty subfolders a stage
    makes before it writes (a prediction folder's classes/) are not outputs."""
    if path.is_symlink() or path.is_file():
        return True
    return path.is_dir() and any(_holds_something(child) for child in path.iterdir())


def begin_stage(prov: Provenance, step: str, spec: StepSpec, extra: Optional[dict] = None,
                remove_stale: bool = True) -> tuple[dict, Optional[str]]:
    """Main process, before a per-image stage writes: when its outputs were made from other
    inputs (or their record is missing), remove them, so that the stage recomputes every
    image; then record what the outputs now being written depend on. Returns the expected
    record and, if stale outputs were removed, a line saying why (for the log)."""
    recipe = prov.recipe
    expected = prov.expected(step, spec, extra=extra)
    path = spec.record(recipe)
    recorded = read_record(path)
    reason = None
    if recorded is None or recorded["fingerprint"] != expected["fingerprint"]:
        stale = [p for p in spec.outputs(recipe) if _holds_something(p)]
        if stale and recorded is not None and not remove_stale:  # a folder the user named: not ours to empty
            raise PsaError(f"{stale[0]} holds outputs made with other inputs ({describe(difference(recorded, expected))}); "
                           "choose another output folder or empty it")
        if not remove_stale:
            stale = []
        if stale:
            reason = (f"{step}: outputs made with other inputs ({describe(difference(recorded, expected))}); "
                      "recomputing" if recorded is not None else
                      f"{step}: outputs without a provenance record; recomputing")
        for output in stale:
            remove_output(output)
        write_record(path, expected, complete=False)
    return expected, reason


def finish_stage(prov: Provenance, expected: dict, spec: StepSpec) -> None:
    write_record(spec.record(prov.recipe), expected, complete=True)


# ----------------------------------------------------------------------------- training


def check_training(prov: Provenance, step: Node, checkpoint: Optional[Path], resume_key: str,
                   fresh: bool = False) -> dict:
    """Before a training writes anything (every process): its recorded inputs must be the ones
    the recipe asks for, else stop with one line; trained weights are never silently
    replaced, nor resumed under other inputs. `checkpoint`: what a resume would continue
    from; `fresh`: the recipe says `<resume_key>=never`, starting afresh on purpose.
    Returns the expected record."""
    recipe, spec = prov.recipe, step.spec
    check_upstream(prov, step.name, spec)
    expected = prov.record(step)
    recorded = read_record(spec.record(recipe))
    if recorded is not None and not fresh and recorded["fingerprint"] != expected["fingerprint"]:
        change = difference(recorded, expected, ignore=RESUMABLE_KEYS)
        if change is not None:
            weights = spec.weights(recipe)
            if checkpoint is not None:
                raise PsaError(f"checkpoint {checkpoint} does not fit this run ({describe(change)}); use a new "
                               f"run.dir or {resume_key}=never")
            if recorded.get("complete") and weights.is_file():
                raise PsaError(f"{weights} was trained with other inputs: {describe(change)}; use a new run.dir "
                               f"(tools/sweep.py reuses every unchanged stage) or delete {weights.parent} to retrain")
    return expected
