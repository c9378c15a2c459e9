"""A per-image stage's images shared by forked worker processes, one thread each, on a CPU.

On the 2-core development machine torch's second thread speeds a frozen backbone's forward
up by only ~1.3× (its large stride-8 feature maps are memory-bound), and the dense CRF that
follows runs on one core while the other idles. Two processes of one thread each keep both
cores busy through the whole computation of an image (BENCHMARKS.md, "CAM export").

Fork, not spawn: the children inherit the stage's closures and the loaded model (copy on
write), so nothing is pickled but each image's index and its outcome. Never on a GPU.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from typing import Callable, Iterator, Optional, Sequence

import torch

_TASK: Optional[tuple[Callable, Sequence]] = None  # what the forked children run (set just before the fork)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(setting: int, device: torch.device, images: int, environ=os.environ) -> int:
    """How many processes compute this process's `images`: `setting` (0: one per core this
    process may use, the cores shared among the launcher's local processes), 1 on a GPU, where
    fork is unavailable, or for fewer than two images."""
    if device.type != "cpu" or "fork" not in multiprocessing.get_all_start_methods() or images < 2:
        return 1
    if setting == 0:
        local = environ.get("LOCAL_WORLD_SIZE", "1")
        setting = available_cores() // (int(local) if local.isdigit() and int(local) > 0 else 1)
    return max(1, min(setting, images))


def map_in_workers(fn: Callable, items: Sequence, workers: int) -> Iterator:
    """fn(item) for each item in `workers` forked processes of one torch thread each, results
    in completion order. An exception in a child is raised here (the rest are stopped)."""
    global _TASK
    if workers <= 1:
        yield from map(fn, items)
        return
    _TASK = (fn, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_start_worker, initargs=(os.getpid(),)) as pool:
            yield from pool.imap_unordered(_run, range(len(items)), chunksize=1)
    finally:
        _TASK = None


def _start_worker(parent: int) -> None:
    _die_with(parent)
    # Ctrl-C reaches the whole process group: the parent stops the pool and says so once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _die_with(parent: int) -> None:
    """A killed stage (SIGKILL, OOM) must not leave its workers writing images: on Linux the
    kernel kills each worker when its parent dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _run(index: int):
    fn, items = _TASK
    return fn(items[index])
