"""IRN's boundary walk: psa's sparse walk against IRN's dense formulation on the same input.

IRN (`misc/indexing.propagate_to_edge`) builds the dense (h·w)×(h·w) affinity matrix of the
stride-4 grid and squares it `exp_times` (8) times; psa multiplies the seeds 2^8 times by the
sparse matrix. Each method runs in its own subprocess, so its peak resident memory is its own.

    python bench/irn_walk.py                      # 64×64 grid in full, 128×128 (a 512 px image)
    python bench/irn_walk.py --sizes 64 --dense-squarings 8
    python bench/irn_walk.py --json runs/bench_irn_walk.json   # the numbers as JSON as well

At 128×128 (N = 16,384) the dense matrix is 1 GiB and one squaring is 2·N³ = 8.8 TFLOP, minutes
on a laptop CPU: `--dense-squarings` (default 1 there) times that many and the table projects
the eight, marked as a projection.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import parser, write_json


def inputs(size: int, classes: int = 3):
    import torch

    gen = torch.Generator().manual_seed(0)
    boundary = torch.rand((size, size), generator=gen) ** 4
    cams = torch.rand((classes, size, size), generator=gen)
    return cams, boundary


def run_sparse(size: int, logt: int, out: Path) -> dict:
    import torch

    from psa.methods.irn.boundary import boundary_walk

    cams, boundary = inputs(size)
    started = time.perf_counter()
    walked = boundary_walk(cams, boundary, radius=5, beta=10.0, logt=logt)
    seconds = time.perf_counter() - started
    torch.save(walked, out / f"irn_walk_sparse_{size}.pt")
    return {"seconds": seconds, "squarings": logt}


def run_dense(size: int, logt: int, squarings: int, out: Path) -> dict:
    """IRN's formulation: dense affinity (path max, identity, symmetric), ^β, column-normalised,
    `squarings` of the logt squarings timed (all of them when squarings == logt)."""
    import torch

    from psa.methods.irn.boundary import path_max_affinity
    from psa.ops import pair_offsets

    cams, boundary = inputs(size)
    started = time.perf_counter()
    radius, nodes = 5, size * size
    affinity = path_max_affinity(boundary, radius)
    dense = torch.eye(nodes)
    index = torch.arange(nodes).view(size, size)
    for k, (dy, dx) in enumerate(pair_offsets(radius)):
        ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        inside = (ys + dy < size) & (xs + dx >= 0) & (xs + dx < size)
        src = index[inside]
        dst = index[(ys + dy).clamp(max=size - 1), (xs + dx).clamp(0, size - 1)][inside]
        dense[src, dst] = affinity[k][inside]
        dense[dst, src] = affinity[k][inside]
    dense = dense ** 10.0
    trans = dense / dense.sum(dim=0, keepdim=True)
    del dense
    built = time.perf_counter() - started
    square_started = time.perf_counter()
    for _ in range(squarings):
        trans = trans @ trans
    per_squaring = (time.perf_counter() - square_started) / max(squarings, 1)
    if squarings == logt:
        seeds = (cams * (1 - boundary)).view(len(cams), -1)
        torch.save((seeds @ trans).view(cams.shape), out / f"irn_walk_dense_{size}.pt")
    return {"seconds": built + per_squaring * logt, "squarings": squarings, "build_seconds": built,
            "per_squaring": per_squaring, "projected": squarings != logt}


def child(args) -> None:
    out = Path(args.out)
    result = (run_sparse(args.size, args.logt, out) if args.one == "sparse"
              else run_dense(args.size, args.logt, args.dense_squarings, out))
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(method: str, size: int, logt: int, squarings: int, out: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--one", method, "--size", str(size), "--logt", str(logt),
                           "--dense-squarings", str(squarings), "--out", str(out)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    options.add_argument("--logt", type=int, default=8)
    options.add_argument("--dense-squarings", type=int, default=None,
                         help="dense squarings to time (default: all at <= 64, one above)")
    options.add_argument("--one", choices=["sparse", "dense"], help=argparse.SUPPRESS)
    options.add_argument("--size", type=int, help=argparse.SUPPRESS)
    options.add_argument("--out", help=argparse.SUPPRESS)
    args = options.parse_args(argv)
    if args.one:
        child(args)
        return 0
    if args.smoke:
        args.sizes, args.logt, args.dense_squarings = [12], 3, None
    import torch
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"IRN boundary walk, radius 5, beta 10, t = 2^{args.logt} (torch {torch.__version__}, "
                        f"{torch.get_num_threads()} threads)")
    for column in ("grid", "N", "sparse s", "sparse MiB", "dense s", "dense MiB", "time ×", "memory ×", "max rel. err"):
        table.add_column(column, justify="right")
    rows = []
    for size in args.sizes:
        squarings = args.dense_squarings if args.dense_squarings is not None else (args.logt if size <= 64 else 1)
        with tempfile.TemporaryDirectory() as scratch:
            sparse = measure("sparse", size, args.logt, squarings, Path(scratch))
            dense = measure("dense", size, args.logt, squarings, Path(scratch))
            error = "n/a (projected)"
            relative = None
            if not dense["projected"]:
                a = torch.load(Path(scratch) / f"irn_walk_sparse_{size}.pt")
                b = torch.load(Path(scratch) / f"irn_walk_dense_{size}.pt")
                relative = float((a - b).abs().max() / b.abs().max())
                error = f"{relative:.1e}"
        rows.append({"size": size, "nodes": size * size, "sparse": sparse, "dense": dense, "max_rel_err": relative})
        mark = "*" if dense["projected"] else ""
        table.add_row(f"{size}×{size}", str(size * size), f"{sparse['seconds']:.2f}", f"{sparse['peak_mib']:.0f}",
                      f"{dense['seconds']:.1f}{mark}", f"{dense['peak_mib']:.0f}",
                      f"{dense['seconds'] / sparse['seconds']:.0f}{mark}", f"{dense['peak_mib'] / sparse['peak_mib']:.1f}",
                      error)
    console = Console(width=160)
    console.print(table)
    console.print("* projected: one dense squaring timed, times the 8 (plus building the matrix)")
    write_json(args.json, {"logt": args.logt, "radius": 5, "beta": 10.0, "smoke": args.smoke, "sizes": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
