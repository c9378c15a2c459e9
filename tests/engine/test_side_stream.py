"""The second training stream: global batches cut per process, position a function of the step."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
import torch
from torch.utils.data import Dataset

from psa.engine.side_stream import SideData, SideStream
from psa.errors import PsaError


class Indices(Dataset):
    """Returns its index and one draw of torch's RNG (to see the seeded augmentation)."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        return {"index": index, "noise": torch.rand(())}


def _stream(rank: int, world: int, batch: int = 4) -> SideStream:
    accelerator = SimpleNamespace(process_index=rank, num_processes=world, device=torch.device("cpu"))
    return SideStream("unlabeled", SideData(Indices(), batch, "x.unlabeled_batch_size"), seed=3,
                      accelerator=accelerator, num_workers=0)


def _take(stream: SideStream, start: int, count: int) -> list[dict]:
    return list(itertools.islice(stream.batches(start), count))


def test_each_epoch_is_a_permutation_cut_into_global_batches():
    batches = _take(_stream(0, 1), 0, 4)  # 10 images, batch 4: 2 batches an epoch, 2 left out
    epoch0 = torch.cat([b["index"] for b in batches[:2]]).tolist()
    epoch1 = torch.cat([b["index"] for b in batches[2:]]).tolist()
    assert len(set(epoch0)) == len(set(epoch1)) == 8
    assert epoch0 != epoch1  # reshuffled each epoch


def test_processes_split_the_same_global_batch():
    whole = _take(_stream(0, 1), 0, 5)
    halves = [_take(_stream(rank, 2), 0, 5) for rank in range(2)]
    for step, batch in enumerate(whole):
        joined = torch.cat([halves[0][step]["index"], halves[1][step]["index"]])
        assert joined.tolist() == batch["index"].tolist()
        # the augmentation of an image is the same whichever process loads it
        noise = torch.cat([halves[0][step]["noise"], halves[1][step]["noise"]])
        assert torch.equal(noise, batch["noise"])


def test_resuming_at_a_position_continues_the_uninterrupted_stream():
    straight = _take(_stream(1, 2), 0, 7)
    resumed = _take(_stream(1, 2), 3, 4)
    for a, b in zip(straight[3:], resumed):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["noise"], b["noise"])


def test_batches_that_do_not_divide_or_do_not_fit_are_refused():
    with pytest.raises(PsaError, match="'x.unlabeled_batch_size'.*3 processes"):
        _stream(0, 3, batch=4)
    with pytest.raises(PsaError, match="'x.unlabeled_batch_size': 10 unlabeled images"):
        _stream(0, 1, batch=12)
