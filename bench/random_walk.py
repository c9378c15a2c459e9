"""Random walk: the reference's dense formulation vs psa.ops.random_walk (sparse), on CPU.

    python bench/random_walk.py [--threads 1 2] [--repeats 5] [--load] [--json PATH] [--smoke]

At 448×448 input (56×56 nodes, 21 CAM channels, random affinities in (0, 1), beta 8, logt 8)
it times both for each thread count (medians of --repeats sparse runs spread between 3 dense
ones, so that both meet the same load on a shared machine) and compares their results;
--load runs them against a competing CPU-bound process (`while True: pass`) that the bench
starts first and stops after the timings. Then it
measures the peak memory of the sparse walk on a 2000×2000 image (250×250 nodes) in a fresh
subprocess (ru_maxrss minus the baseline after imports); the dense matrix alone would need
15.6 GB there, so the dense path is not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

import torch
from harness import cpu_model, parser, write_json

from psa.ops import pair_offsets, random_walk

BETA, LOGT, RADIUS, CHANNELS = 8.0, 8, 5, 21


def dense_walk(cam: torch.Tensor, affinity: torch.Tensor) -> torch.Tensor:
    """The reference's dense formulation (infer_aff.py) over every pair, as psa's default
    random_walk.pairs=all: dense symmetric A with unit diagonal, A**beta, column
    normalisation, logt squarings, cam @ T; float32."""
    _, height, width = affinity.shape
    nodes, device = height * width, affinity.device  # runs where the affinities are (GPU bench too)
    ys, xs = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    a = torch.eye(nodes, device=device)
    for k, (dy, dx) in enumerate(pair_offsets(RADIUS)):
        ty, tx = ys + dy, xs + dx
        inside = (ty < height) & (tx >= 0) & (tx < width)
        p, q = (ys * width + xs)[inside], (ty * width + tx)[inside]
        a[p, q] = affinity[k][inside]
        a[q, p] = affinity[k][inside]
    a = a ** BETA
    t = a / a.sum(dim=0, keepdim=True)
    del a  # one N×N matrix fewer at the peak
    for _ in range(LOGT):
        t = t @ t
    return (cam.reshape(cam.shape[0], -1) @ t).reshape(cam.shape)


def inputs(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    cam = torch.rand(CHANNELS, size, size, generator=generator)
    affinity = torch.rand(len(pair_offsets(RADIUS)), size, size, generator=generator).clamp_min(1e-6)
    return cam, affinity


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def interleaved(sparse, dense, repeats: int) -> tuple[float, torch.Tensor, float, torch.Tensor]:
    """Median times of `repeats` sparse and min(repeats, 3) dense runs, the sparse ones spread
    between the dense ones: on a shared machine both then see the same changing load."""
    rounds = max(1, min(repeats, 3))
    sparse_times, dense_times = [], []
    for index in range(rounds):
        for _ in range(repeats * (index + 1) // rounds - repeats * index // rounds):
            seconds, sparse_out = timed(sparse)
            sparse_times.append(seconds)
        seconds, dense_out = timed(dense)
        dense_times.append(seconds)
    return statistics.median(sparse_times), sparse_out, statistics.median(dense_times), dense_out


@contextmanager
def competing_load(processes: int):
    """`processes` busy loops in other processes while the block runs, stopped after."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5 if hogs else 0)  # started and spinning before the first timing
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def memory_child(size: int) -> None:
    """Run in a fresh process: peak RSS of one sparse walk above the post-import baseline."""
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cam, affinity = inputs(size)
    start = time.perf_counter()
    out = random_walk(cam, affinity, beta=BETA, logt=LOGT, radius=RADIUS)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mib": (peak - base) / 1024, "seconds": seconds,
                      "finite": bool(torch.isfinite(out).all())}))


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    options.add_argument("--repeats", type=int, default=5)
    options.add_argument("--size", type=int, default=56, help="nodes per side (448 px / 8)")
    options.add_argument("--memory-size", type=int, default=250, help="nodes per side (2000 px / 8)")
    options.add_argument("--load", type=int, nargs="?", const=1, default=0, metavar="N",
                         help="time against N competing CPU-bound processes (1 if N is left out)")
    options.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = options.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    if args.smoke:
        args.threads, args.repeats, args.size, args.memory_size, args.load = [1], 1, 8, 16, 0

    from rich.console import Console
    from rich.table import Table

    cam, affinity = inputs(args.size)
    load = f", against {args.load} competing CPU-bound process{'es' if args.load > 1 else ''}" if args.load else ""
    table = Table(title=f"Random walk, {args.size}×{args.size} nodes, {CHANNELS} channels, "
                        f"beta {BETA:g}, logt {LOGT} (median of {args.repeats}){load}")
    for col in ("threads", "dense (8 squarings)", "sparse (256 steps)", "speed-up",
                "argmax agreement", "max rel diff"):
        table.add_column(col, justify="right")
    rows = []
    with competing_load(args.load):
        for threads in args.threads:
            torch.set_num_threads(threads)
            random_walk(cam, affinity, beta=BETA, logt=LOGT, radius=RADIUS)  # warm-up
            t_sparse, sparse, t_dense, dense = interleaved(
                lambda: random_walk(cam, affinity, BETA, LOGT, RADIUS), lambda: dense_walk(cam, affinity), args.repeats)
            agree = (sparse.argmax(0) == dense.argmax(0)).float().mean().item()
            rel = ((sparse - dense).abs() / dense.abs()).max().item()
            rows.append({"threads": threads, "dense_s": t_dense, "sparse_s": t_sparse, "argmax_agreement": agree,
                         "max_rel_diff": rel})
            table.add_row(str(threads), f"{t_dense:.3f} s", f"{t_sparse * 1000:.1f} ms",
                          f"{t_dense / t_sparse:.1f}×", f"{agree:.2%}", f"{rel:.1e}")
        loadavg = os.getloadavg()[0]

    env = dict(os.environ, OMP_NUM_THREADS=str(max(args.threads)))
    child = subprocess.run([sys.executable, __file__, "--memory-child", str(args.memory_size)],
                           capture_output=True, text=True, env=env, check=True)
    memory = json.loads(child.stdout.strip().splitlines()[-1])
    console = Console()
    console.print(table)
    console.print(f"Sparse walk at {args.memory_size}×{args.memory_size} nodes "
                  f"({args.memory_size * 8}×{args.memory_size * 8} image), fresh process, "
                  f"{max(args.threads)} threads: peak RSS +{memory['peak_mib']:.0f} MiB over the "
                  f"post-import baseline, {memory['seconds']:.2f} s "
                  f"(dense T would be {(args.memory_size ** 2) ** 2 * 4 / 1e9:.1f} GB)")
    console.print(f"{cpu_model()}, {os.cpu_count()} CPUs; python {platform.python_version()}, "
                  f"torch {torch.__version__}; 1-min load average {loadavg:.2f} at the end of the timings")
    write_json(args.json, {"size": args.size, "channels": CHANNELS, "beta": BETA, "logt": LOGT,
                           "repeats": args.repeats, "load": args.load, "smoke": args.smoke, "walk": rows,
                           "memory": {"size": args.memory_size, "threads": max(args.threads), **memory},
                           "loadavg": loadavg})
    return 0


if __name__ == "__main__":
    sys.exit(main())
