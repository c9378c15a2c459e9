"""Two gloo processes on CPU: each holds half of a global batch of sigmoids; FixMatch's prior
caps computed from `gather_rows` must equal the caps of the whole batch on one process.
Prints OK, or raises."""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from psa.engine.distributed import gather_rows  # noqa: E402
from psa.methods.semi_cam.ops import prior_caps  # noqa: E402


def check(rank: int, port: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    batch = torch.rand(12, 4, generator=torch.Generator().manual_seed(0))
    priors = torch.tensor([0.25, 0.5, 0.0, 0.75])
    mine = batch[6 * rank:6 * (rank + 1)]
    gathered = gather_rows(mine)
    assert torch.equal(gathered, batch), "gather_rows is not the global batch in rank order"
    whole = prior_caps(batch, batch, priors)
    local = prior_caps(mine, gathered, priors)
    for part, full in zip(local, whole):
        assert torch.equal(part, full[6 * rank:6 * (rank + 1)]), "caps differ from the one-process caps"
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(check, args=(sys.argv[1],), nprocs=2)
    print("OK")
