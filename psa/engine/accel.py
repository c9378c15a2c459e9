"""One way to build the Accelerator, so every tool runs on 1 CPU, N CPU processes (gloo),
one GPU or many GPUs/nodes (NCCL) without code changes."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from ..config import Recipe
from ..errors import PsaError

logger = logging.getLogger("psa")


def use_cpu() -> bool:
    """psa's CPU switch: without it, `accelerate launch --multi_gpu` on a machine without GPUs
    starts N processes that each run alone (rank 0 of 1, no process group)."""
    return not torch.cuda.is_available()


def check_launch(num_processes: int, environ=os.environ) -> None:
    """Refuse a process that the launcher started as one of N but Accelerate runs alone: each
    would train its own model and write every image, silently."""
    name = "WORLD_SIZE" if environ.get("WORLD_SIZE") else "LOCAL_WORLD_SIZE"
    launched = environ.get(name, "")
    if launched.isdigit() and int(launched) != num_processes:
        raise PsaError(f"the launcher started {launched} processes ({name}={launched}) but Accelerate "
                       f"runs this one as 1 of {num_processes}: on machines without GPUs set "
                       "ACCELERATE_USE_CPU=1 for the launch; a script that makes its own Accelerator or "
                       "PartialState before psa's must pass it cpu=True")


def make_accelerator(recipe: Recipe, grad_accum: int = 1, project_dir: str | None = None):
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, set_seed

    on_gpu = torch.cuda.is_available()
    if recipe.run.mixed_precision == "fp16" and not on_gpu:
        logger.warning("run.mixed_precision=fp16 has no effect on CPU (runs fp32); use bf16")
    accelerator = Accelerator(
        cpu=use_cpu(),  # `accelerate launch --multi_gpu` then gives real gloo DDP on CPU
        mixed_precision=recipe.run.mixed_precision,  # None defers to the launcher
        gradient_accumulation_steps=grad_accum,
        project_dir=project_dir,
        # seeded sampler: the shuffle order of epoch e depends only on (seed, e), so resume
        # can skip exactly the batches already seen. split_batches: a loader's batch size is
        # the global batch, cut into one slice per process, so a recipe means the same
        # experiment on 1 CPU or N GPUs (see check_global_batch).
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, split_batches=True,
                                                  # with pinned memory: copies overlap compute
                                                  non_blocking=on_gpu),
    )
    check_launch(accelerator.num_processes)
    set_seed(recipe.run.seed)
    if recipe.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif on_gpu:
        torch.backends.cudnn.benchmark = True
    return accelerator


def check_global_batch(batch_size: int, key: str, num_processes: int) -> int:
    """The per-process share of a global batch; one line naming the key when it does not divide."""
    if batch_size % num_processes:
        raise PsaError(f"recipe key '{key}': the global batch {batch_size} does not divide among "
                       f"{num_processes} processes; use a multiple of {num_processes}")
    return batch_size // num_processes


def shard(items: list, accelerator) -> list:
    """This process's share of a list (no padding, so nothing is counted twice)."""
    return items[accelerator.process_index :: accelerator.num_processes]


def sum_over_processes(accelerator, array: np.ndarray) -> np.ndarray:
    """A per-process array (confusion matrix, score rows) summed over every process, once."""
    if accelerator.num_processes == 1:
        return array
    return accelerator.reduce(torch.from_numpy(array).to(accelerator.device), "sum").cpu().numpy()
