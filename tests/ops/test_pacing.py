"""psa.ops.pacing: the thread count of each step, chosen from the steps' own times (a fake clock
here, so the choices are exact), and the random walk's bits on any thread count."""

from __future__ import annotations

import sys

import pytest
import torch

from psa.ops import random_walk
from psa.ops.pacing import BASELINE, FIRST_BACKOFF, Pacer


class FakeCPU:
    """A clock and a step whose duration depends on torch's thread count at the time."""

    def __init__(self, seconds: dict[int, float]):
        self.now, self.seconds, self.threads_used = 0.0, dict(seconds), []

    def clock(self) -> float:
        return self.now

    def step(self, x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        self.threads_used.append(threads)
        self.now += self.seconds[threads]
        return x + 1


@pytest.fixture(autouse=True)
def caller_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # the caller's count, restored by every call
    yield
    torch.set_num_threads(before)


def test_idle_cores_the_walk_runs_on_all_threads_after_its_baseline():
    cpu = FakeCPU({1: 0.43e-3, 2: 0.25e-3})
    out = Pacer(cpu.clock).repeat(cpu.step, torch.zeros(1), 256, threads=2)
    assert out.item() == 256  # every step, once
    assert cpu.threads_used == [1] * BASELINE + [2] * (256 - BASELINE)
    assert torch.get_num_threads() == 3


def test_under_load_two_trial_steps_then_one_thread_and_no_trial_until_the_backoff_ends():
    cpu = FakeCPU({1: 0.7e-3, 2: 30e-3})
    pacer = Pacer(cpu.clock)
    pacer.repeat(cpu.step, torch.zeros(1), 256, threads=2)
    assert cpu.threads_used == [1] * BASELINE + [2, 2] + [1] * (256 - BASELINE - 2)
    # the next walks before the backoff ends try no second thread
    cpu.threads_used.clear()
    while cpu.now + 64 * 0.7e-3 < pacer.next_trial:
        pacer.repeat(cpu.step, torch.zeros(1), 64, threads=2)
    assert cpu.threads_used and set(cpu.threads_used) == {1}
    # later they try again, once, and the wait doubles after this second loss
    cpu.now = pacer.next_trial
    cpu.threads_used.clear()
    pacer.repeat(cpu.step, torch.zeros(1), 256, threads=2)
    assert cpu.threads_used.count(2) == 2
    assert pacer.backoff == 4 * FIRST_BACKOFF
    assert torch.get_num_threads() == 3


def test_load_arriving_mid_walk_stops_all_threads_at_the_step_that_uses_up_their_lead():
    cpu = FakeCPU({1: 0.43e-3, 2: 0.25e-3})
    steps = 0

    def step(x):
        nonlocal steps
        steps += 1
        if steps == 100:
            cpu.seconds[2] = 30e-3  # another process takes a core
        return cpu.step(x)

    out = Pacer(cpu.clock).repeat(step, torch.zeros(1), 256, threads=2)
    assert out.item() == 256
    assert cpu.threads_used == [1] * BASELINE + [2] * (100 - BASELINE) + [1] * 156


def test_a_rare_tick_is_paid_from_the_lead_and_a_frequent_one_is_not():
    """The first step on all threads (waking them) is not judged; a 9 ms scheduler tick after
    190 fast steps costs less than their lead, ticks every 20 steps cost more."""
    for every, stays in ((1000, True), (20, False)):
        cpu = FakeCPU({1: 0.43e-3, 2: 0.25e-3})
        steps = 0

        def step(x):
            nonlocal steps
            steps += 1
            tick = steps == BASELINE + 1 or (steps > BASELINE + 1 and steps % every == 195 % every)
            cpu.seconds[2] = 9e-3 if tick else 0.25e-3
            return cpu.step(x)

        Pacer(cpu.clock).repeat(step, torch.zeros(1), 256, threads=2)
        assert (cpu.threads_used == [1] * BASELINE + [2] * (256 - BASELINE)) is stays, every


def test_one_thread_asked_or_few_steps_run_on_one_thread():
    cpu = FakeCPU({1: 1.0, 2: 0.1})
    Pacer(cpu.clock).repeat(cpu.step, torch.zeros(1), 256, threads=1)
    Pacer(cpu.clock).repeat(cpu.step, torch.zeros(1), BASELINE + 1, threads=2)
    assert set(cpu.threads_used) == {1}


def test_the_walk_gives_the_same_bits_on_one_thread_and_on_two(monkeypatch):
    """The product gives each row to one thread, so the pacing's choices change no bit."""
    walk_module = sys.modules["psa.ops.random_walk"]  # psa.ops.random_walk is the function
    generator = torch.Generator().manual_seed(0)
    cam = torch.rand(21, 56, 56, generator=generator)
    affinity = torch.rand(34, 56, 56, generator=generator)
    walks = {}
    for threads in (1, 2):
        # a clock that never moves: every step of several threads beats the baseline
        monkeypatch.setattr(walk_module, "PACER", Pacer(clock=lambda: 0.0))
        torch.set_num_threads(threads)
        walks[threads] = random_walk(cam, affinity, beta=8.0, logt=6)
    assert torch.equal(walks[1], walks[2])
