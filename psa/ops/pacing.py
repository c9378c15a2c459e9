"""Many small CPU kernels in a row, each at the thread count that is fastest at the time.

One sparse product of the random walk on a 56×56 map takes about 0.4 ms. With several
intra-op threads every product ends on an OpenMP barrier, and while other processes hold the
cores a barrier waits for scheduler ticks: on the shared 2-core development machine a
2-thread product then took 30–36 ms against 0.7 ms on 1 thread (BENCHMARKS.md). One thread
never waits but leaves the other cores idle when they are free.

So every step is timed. A call starts with a few steps on one thread (its baseline), then
tries all the threads. They go on while, since the trial began, their steps have taken less
time than the baseline's (by a margin, plus one baseline step of grace for noise) would have:
the lead they build pays for a rare scheduler tick, and they stop at the step that uses it up,
so they never cost much more than one thread would. The trial's first step is not judged: it
also wakes the sleeping threads.
After a loss they are not tried again for a while, in any call, and for twice as long after
each further loss: a trial under load costs two slow steps. Kernels that give each output row
to one thread (CSR @ dense) compute the same bits on any thread count, so the choice changes
the speed only.

The thread count is the process's (torch.set_num_threads): not for several Python threads
stepping at once."""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import torch

BASELINE = 4  # one-thread steps that open every call
MULTI_MARGIN = 0.9  # several threads must take at most this fraction of a one-thread step
GRACE = 1.0  # one-thread steps of time they may lose before a lead is built (one noisy step)
FIRST_BACKOFF, MAX_BACKOFF = 0.25, 60.0  # seconds before several threads are tried again


@contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to `count` inside, the caller's restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Pacer:
    """Runs x ← step(x) repeatedly, choosing the thread count of each step (module docstring);
    remembers across calls when several threads last lost."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.next_trial = float("-inf")  # clock time before which several threads are not tried
        self.backoff = FIRST_BACKOFF

    def repeat(self, step: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, count: int,
               threads: int) -> torch.Tensor:
        """x ← step(x), `count` times, each on 1 thread or `threads`. Restores the thread count."""
        with intra_op_threads(1):
            if threads <= 1 or count <= BASELINE + 1:
                for _ in range(count):
                    x = step(x)
                return x
            single: list[float] = []  # seconds of the last one-thread steps
            # judged: steps on all threads since the trial; spent, allowed: their seconds, and
            # what the baseline allows them
            current, judged, spent, allowed = 1, -1, 0.0, 0.0
            for _ in range(count):
                if current == 1 and len(single) >= BASELINE and self.clock() >= self.next_trial:
                    base = statistics.median(single)
                    current, judged, spent, allowed = threads, -1, 0.0, GRACE * base
                    torch.set_num_threads(threads)
                start = self.clock()
                x = step(x)
                seconds = self.clock() - start
                if current == 1:
                    single = single[-BASELINE + 1:] + [seconds]
                    continue
                judged += 1
                if judged == 0:
                    continue  # the waking step
                spent, allowed = spent + seconds, allowed + MULTI_MARGIN * base
                if spent > allowed:
                    self._lost()
                    current = 1
                    torch.set_num_threads(1)
                elif judged == BASELINE:  # a trial that won: the next loss waits the least again
                    self.backoff = FIRST_BACKOFF
            return x

    def _lost(self) -> None:
        self.next_trial = self.clock() + self.backoff
        self.backoff = min(2 * self.backoff, MAX_BACKOFF)


PACER = Pacer()  # the process's: what it learnt about the load holds for every walk
