"""A second stream of training batches drawn alongside the loader that defines the epochs —
the unlabelled images of semi-supervised tasks, or the labelled ones when an epoch is counted
over the unlabelled set.

Its position is a pure function of how many main batches were drawn, so resume needs no extra
state: after k batches the stream is in its own epoch k // n at batch k % n. Each of its epochs
is a seeded permutation cut into global batches, and each global batch into one slice per
process, as the main loader's `split_batches`: the same recipe is the same experiment on any
number of processes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import PsaError
from .accel import check_global_batch
from .seeded import SeededAugmentation


@dataclass
class SideData:
    """A dataset the engine draws one global batch of per main batch."""

    dataset: Dataset
    batch_size: int  # global, like <task>.train.batch_size
    key: str  # the recipe key behind batch_size, named in errors


class SideStream:
    def __init__(self, name: str, side: SideData, seed: int, accelerator, num_workers: int):
        self.name = name
        self.global_batch = side.batch_size
        self.per_process = check_global_batch(side.batch_size, side.key, accelerator.num_processes)
        self.num_batches = len(side.dataset) // side.batch_size
        if self.num_batches == 0:
            raise PsaError(f"recipe key '{side.key}': {len(side.dataset)} {name} images are fewer than "
                           f"one batch of {side.batch_size}")
        # its own seed, so its augmentations never repeat the main loader's for the same index
        self.seed = (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)
        self.dataset = SeededAugmentation(side.dataset, self.seed)
        self.rank = accelerator.process_index
        self.device = accelerator.device
        self.num_workers = num_workers

    def _epoch_batches(self, epoch: int, first: int) -> list[list[int]]:
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + epoch))
        lo, hi = self.rank * self.per_process, (self.rank + 1) * self.per_process
        return [order[b * self.global_batch:(b + 1) * self.global_batch][lo:hi].tolist()
                for b in range(first, self.num_batches)]

    def batches(self, start: int) -> Iterator:
        """This process's slices of the global batches from the `start`-th on, forever."""
        from accelerate.utils import send_to_device

        epoch, first = divmod(start, self.num_batches)
        while True:
            self.dataset.epoch = epoch  # read by the workers forked for this epoch's loader
            loader = DataLoader(self.dataset, batch_sampler=self._epoch_batches(epoch, first),
                                num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                                # its own generator: starting an epoch must not draw from the
                                # global RNG (dropout's), or a resumed run would diverge
                                generator=torch.Generator().manual_seed(self.seed + epoch))
            for batch in loader:
                yield send_to_device(batch, self.device, non_blocking=True)
            epoch, first = epoch + 1, 0
