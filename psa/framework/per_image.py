"""The skeleton every per-image step shares (CAM export, random walk, prediction, a new
method's own): refuse stale upstream outputs → shard the images over the processes → skip
what is written and still matches the recipe → load the model only if something is left →
write each image's files atomically (on a CPU, in forked worker processes: `run.cpu_workers`)
→ a done file and the provenance record.

A step supplies what differs: its images, the files of one image, the model, and the
computation of one image (`PerImageJob`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..config import Recipe
from ..engine.accel import make_accelerator, shard, sum_over_processes
from ..engine.cpu_workers import map_in_workers, worker_count
from ..engine.report import Reporter
from ..errors import OutputError, PsaError
from ..io import atomic_write_json
from ..provenance import (
    Provenance, StepSpec, begin_stage, check_upstream, describe, difference, finish_stage, matches, read_record,
    write_record,
)
from .outputs import prepare_folders


@dataclass
class PerImageJob:
    step: str  # its name in the registry (and in its record)
    title: str  # for the progress bar: "export CAMs"
    spec: StepSpec
    items: Sequence[Any]  # each has .image_id (psa.framework.items.Item, or any object with one)
    outputs: Callable[[Any], dict[str, Path]]  # one image's files, by name
    folders: list[Path]  # created (and cleared of stale temporary files) before writing
    load_model: Callable[[Any], Any]  # (accelerator) -> model, called only when an image is left to compute
    compute: Callable[[Any, Any, dict[str, Path], Any], None]  # (model, item, outputs, accelerator): writes them
    done_file: Optional[Path] = None  # the summary, written last
    extra: Optional[dict] = None  # inputs of this call beyond the recipe (an image list, --crf)
    # False for a folder the user named: outputs made with other inputs are refused, not removed
    remove_stale: bool = True
    summary: dict = field(default_factory=dict)  # added to the returned summary
    # True: an image whose computation raises PsaError (an unreadable file) is named in the log,
    # skipped with nothing of it written, and listed in the summary's "failed"; the rest go on
    skip_failed: bool = False


def run_per_image(recipe: Recipe, job: PerImageJob, reporter: Optional[Reporter] = None) -> dict:
    reporter = reporter or Reporter()
    prov = Provenance(recipe)
    check_upstream(prov, job.step, job.spec)  # outputs of a step the recipe no longer describes: refused
    expected = prov.expected(job.step, job.spec, extra=job.extra)
    record_path = job.spec.record(recipe)
    current = matches(record_path, expected, complete=False)
    if not job.remove_stale and not current:  # every process, before anything is written
        recorded = read_record(record_path)
        if recorded is not None:
            raise PsaError(f"{job.folders[0]} holds outputs made with other inputs "
                           f"({describe(difference(recorded, expected))}); choose another folder or empty it")
    accelerator = make_accelerator(recipe)
    mine = shard(list(job.items), accelerator)
    # a finished, unchanged step is skipped from file names alone: no model, no image read
    model = None
    if not current or not all(p.is_file() for item in mine for p in job.outputs(item).values()):
        model = job.load_model(accelerator)
    if accelerator.is_main_process:
        prepare_folders(recipe, *job.folders)
        _, reason = begin_stage(prov, job.step, job.spec, extra=job.extra, remove_stale=job.remove_stale)
        if reason:
            reporter.log(reason)
    accelerator.wait_for_everyone()

    started, written, failed = time.perf_counter(), 0, {}
    todo = [item for item in mine if not all(p.is_file() for p in job.outputs(item).values())]
    skipped = len(mine) - len(todo)
    workers = worker_count(recipe.run.cpu_workers, accelerator.device, len(todo))
    reporter.start(job.title, total=len(mine))
    reporter.update(skipped)

    def compute(item) -> tuple[str, Optional[str]]:
        return item.image_id, _compute(job, model, item, job.outputs(item), accelerator)

    for position, (image_id, error) in enumerate(map_in_workers(compute, todo, workers), skipped + 1):
        if error is None:
            written += 1
        else:
            failed[image_id] = error
            reporter.log(f"{job.step}: skipped {image_id}: {error}")
        reporter.update(position)
    reporter.finish()
    accelerator.wait_for_everyone()
    if job.skip_failed and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        failed = {k: v for part in gather_object([failed]) for k, v in part.items()}
    # every process's counts, in rank order: the done file shows each image was written once
    counts = np.zeros((2, accelerator.num_processes), dtype=np.int64)
    counts[:, accelerator.process_index] = written, skipped
    counts = sum_over_processes(accelerator, counts)
    summary = {"images": len(job.items), "written_here": written, "skipped_here": skipped, **job.summary,
               "seconds": round(time.perf_counter() - started, 2), "processes": accelerator.num_processes,
               "cpu_workers": workers,
               "written_by_process": counts[0].tolist(), "skipped_by_process": counts[1].tolist()}
    if job.skip_failed:
        summary["failed"] = failed
    if accelerator.is_main_process:
        if job.done_file is not None:
            atomic_write_json(job.done_file, summary)
        if failed:  # not complete: a rerun retries the failed images
            write_record(record_path, expected, complete=False)
        else:
            finish_stage(prov, expected, job.spec)
    return summary


def _compute(job: PerImageJob, model, item, paths: dict[str, Path], accelerator) -> Optional[str]:
    """One image; → None, or why it was skipped (none of its files left)."""
    try:
        job.compute(model, item, paths, accelerator)
    except PsaError as err:
        if not job.skip_failed or isinstance(err, OutputError):
            raise
        for path in paths.values():
            path.unlink(missing_ok=True)
        return str(err)
    return None
