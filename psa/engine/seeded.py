"""Per-sample augmentation that depends only on (seed, epoch, index)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class SeededAugmentation(Dataset):
    """Each sample's random augmentation is a pure function of (seed, epoch, index), drawn from
    a private copy of torch's RNG. So the same images come out whatever the number of workers
    or processes, and a resumed run sees exactly what an uninterrupted one would have."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index) % (2**63))
            return self.dataset[index]
