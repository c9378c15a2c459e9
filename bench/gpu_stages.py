"""psa's stages on a CUDA GPU: training images/s per precision and peak GPU memory, CAM
export images/s, random walk ms/image (sparse vs dense, on the GPU), dense CRF ms/image (CPU),
and what a full VOC run would take at those rates.

    python bench/gpu_stages.py                                  # ResNet-50/101, fp32/bf16/fp16, 448 px
    python bench/gpu_stages.py --backbones resnet50 --precisions bf16 --steps 30
    python bench/gpu_stages.py --channels-last                  # also time channels_last training
    python bench/gpu_stages.py --dense-2000                     # dense walk at 250×250 nodes too (~50 GB)
    python bench/gpu_stages.py --json runs/bench_gpu.json       # the numbers as JSON as well

Without a CUDA device it prints "no CUDA device: skipped" and exits 0. `--smoke` runs every
code path on the CPU at toy sizes (resnet10t, 64 px, batch 2, 1 step, fp32 and bf16), only
to check the script; its numbers are not measurements.

Training is timed on random tensors (random weights, random labels): the GPU's compute, not
JPEG decoding or augmentation, which the data loader's workers do on the CPU. AMP is the
autocast + GradScaler (fp16 only) pair that Accelerate wraps around psa's training loop.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from harness import parser, write_json
from random_walk import dense_walk  # bench/random_walk.py: the same dense formulation

from psa.config import CrfConfig, ModelConfig
from psa.constants import FEATURE_STRIDE
from psa.engine.optim import build_optimizer
from psa.methods.affinity.model import AffinityNet
from psa.methods.affinity.ops import affinity_loss
from psa.models import CamNet, build_backbone
from psa.ops import pair_labels, pair_offsets, random_walk
from psa.ops.cam import multiscale_cam

# The reference's schedule on VOC train_aug (shared/reference/psa.md §1.3, §3.4)
VOC_TRAIN_AUG, VOC_TRAIN = 10_582, 1_464
SCHEDULE = {"cam": (16, 15), "affinity": (8, 8)}  # stage: (batch, epochs)
SCALES = (1.0, 0.5, 1.5, 2.0)
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
RADIUS, BETA, LOGT, CAM_CHANNELS = 5, 8.0, 8, 21


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn, device, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


@contextlib.contextmanager
def peak_memory(device: torch.device, out: dict):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    yield
    out["peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


def autocast(device: torch.device, precision: str):
    dtype = DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def train_rate(stage: str, backbone: str, size: int, batch: int, precision: str, device, steps: int,
               warmup: int, channels_last: bool = False) -> dict:
    """Images/s of full training steps (forward, loss, backward, SGD step) and peak memory."""
    body = build_backbone(ModelConfig(backbone=backbone, pretrained=False))
    model = (CamNet(body, 20) if stage == "cam" else AffinityNet(body)).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, 0.01, 0.9, 5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator).to(device)
    if stage == "cam":
        targets = (torch.rand(batch, 20, generator=generator) < 0.15).float().to(device)
    else:
        small = torch.randint(0, 4, (batch, size // FEATURE_STRIDE, size // FEATURE_STRIDE), generator=generator)
        small[small == 3] = 255
        pairs = {k: v.to(device) for k, v in pair_labels(small, RADIUS).items()}

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            if stage == "cam":
                loss = F.multilabel_soft_margin_loss(model(images).float(), targets)
            else:
                loss, _ = affinity_loss(model(images, RADIUS).float(), pairs)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    result = {}
    with peak_memory(device, result):
        seconds = seconds_per_call(step, device, steps, warmup)
    return {"images_per_s": batch / seconds, **result}


def export_rate(backbone: str, size: int, precision: str, device, steps: int, warmup: int) -> dict:
    """Images/s of the CAM export's network part: 4 scales × flip at size×size, batch 1."""
    model = CamNet(build_backbone(ModelConfig(backbone=backbone, pretrained=False)), 20).to(device).eval()
    image = np.random.default_rng(0).integers(0, 256, size=(size, size, 3), dtype=np.uint8)

    def one():
        with autocast(device, precision):
            multiscale_cam(model, image, [3, 14], SCALES, flip=True, device=device)

    result = {}
    with peak_memory(device, result):
        seconds = seconds_per_call(one, device, steps, warmup)
    return {"images_per_s": 1 / seconds, **result}


def walk_ms(nodes: int, device, repeats: int, dense: bool) -> dict:
    generator = torch.Generator().manual_seed(0)
    cam = torch.rand(CAM_CHANNELS, nodes, nodes, generator=generator).to(device)
    affinity = torch.rand(len(pair_offsets(RADIUS)), nodes, nodes, generator=generator).clamp_min(1e-6).to(device)
    out = {}
    with peak_memory(device, out):
        out["sparse_ms"] = 1000 * seconds_per_call(
            lambda: random_walk(cam, affinity, BETA, LOGT, RADIUS), device, repeats, 1)
    out["sparse_peak_mib"] = out.pop("peak_mib")
    if dense:
        with peak_memory(device, out):
            out["dense_ms"] = 1000 * seconds_per_call(lambda: dense_walk(cam, affinity), device, max(1, repeats // 3), 1)
        out["dense_peak_mib"] = out.pop("peak_mib")
        sparse, full = random_walk(cam, affinity, BETA, LOGT, RADIUS), dense_walk(cam, affinity)
        out["argmax_agreement"] = (sparse.argmax(0) == full.argmax(0)).float().mean().item()
    return out


def crf_ms(repeats: int, height: int, width: int) -> float:
    """CPU (pydensecrf2), one typical VOC image, background + 2 classes, the reference's parameters."""
    from psa.ops.crf import dense_crf

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    probs = rng.random((3, height, width)).astype(np.float32)
    start = time.perf_counter()
    for _ in range(repeats):
        dense_crf(image, probs, CrfConfig())
    return 1000 * (time.perf_counter() - start) / repeats


def voc_hours(rates: dict, walk: dict, crf: float, workers: int) -> dict:
    """A full VOC run at these rates: the reference's schedule, export and walk over train_aug
    (which contains train), two CRFs per image in the export (low/high alpha) and one after the
    walk, spread over `workers` CPU processes. Data loading assumed to keep up."""
    hours = {}
    for stage, (batch, epochs) in SCHEDULE.items():
        steps = (VOC_TRAIN_AUG // batch) * epochs
        hours[f"train {stage}"] = steps * batch / rates[stage] / 3600
    hours["export CAMs"] = VOC_TRAIN_AUG / rates["export"] / 3600
    hours["random walk"] = VOC_TRAIN_AUG * walk["sparse_ms"] / 1000 / 3600
    hours[f"CRF ({workers} CPU processes)"] = 3 * VOC_TRAIN_AUG * crf / 1000 / 3600 / workers
    hours["total"] = sum(hours.values())
    return hours


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("--backbones", nargs="+", default=["resnet50", "resnet101"])
    options.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"], choices=list(DTYPES))
    options.add_argument("--size", type=int, default=448)
    options.add_argument("--steps", type=int, default=20, help="timed training steps per row")
    options.add_argument("--warmup", type=int, default=5)
    options.add_argument("--channels-last", action="store_true", help="also time channels_last training")
    options.add_argument("--dense-2000", action="store_true", help="dense walk at 250×250 nodes (15.6 GB matrices)")
    options.add_argument("--crf-workers", type=int, default=os.cpu_count() or 1)
    args = options.parse_args(argv)

    if args.smoke:
        device = torch.device("cpu")
        args.backbones, args.size, args.steps, args.warmup = ["resnet10t"], 64, 1, 0
        args.precisions = [p for p in args.precisions if p != "fp16"]  # CPU fp16 autocast: very slow
        walk_sizes, repeats, batches, crf_size = [(8, True)], 1, {"cam": 2, "affinity": 2}, (60, 80)
    elif not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    else:
        device = torch.device("cuda")
        torch.backends.cudnn.benchmark = True
        walk_sizes, repeats, crf_size = [(56, True), (250, args.dense_2000)], 10, (375, 500)
        batches = {stage: batch for stage, (batch, _) in SCHEDULE.items()}

    from rich.console import Console
    from rich.table import Table

    console = Console()
    results = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu (smoke)",
               "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
               "python": platform.python_version(), "size": args.size, "train": [], "export": [], "walk": {}}
    layouts = [False, True] if args.channels_last else [False]
    table = Table(title=f"{results['device']}: images/s and peak GPU memory at {args.size}×{args.size}")
    for col in ("backbone", "stage", "batch", "precision", "layout", "images/s", "peak MiB"):
        table.add_column(col, justify="right")
    for backbone in args.backbones:
        for precision in args.precisions:
            for stage, batch in batches.items():
                for channels_last in layouts:
                    row = train_rate(stage, backbone, args.size, batch, precision, device, args.steps,
                                     args.warmup, channels_last)
                    results["train"].append({"backbone": backbone, "stage": stage, "batch": batch,
                                             "precision": precision, "channels_last": channels_last, **row})
                    table.add_row(backbone, f"train {stage}", str(batch), precision,
                                  "channels_last" if channels_last else "NCHW",
                                  f"{row['images_per_s']:.1f}", f"{row['peak_mib']:.0f}")
            row = export_rate(backbone, args.size, precision, device, max(1, args.steps // 2), args.warmup)
            results["export"].append({"backbone": backbone, "precision": precision, **row})
            table.add_row(backbone, "export (4 scales × flip)", "1", precision, "NCHW",
                          f"{row['images_per_s']:.1f}", f"{row['peak_mib']:.0f}")
    console.print(table)

    walk_table = Table(title=f"Random walk on {results['device']}: {CAM_CHANNELS} channels, beta {BETA:g}, "
                             f"logt {LOGT}, fp32 (ms per image)")
    for col in ("nodes", "image", "sparse ms", "sparse MiB", "dense ms", "dense MiB", "argmax agreement"):
        walk_table.add_column(col, justify="right")
    for nodes, dense in walk_sizes:
        row = walk_ms(nodes, device, repeats, dense)
        results["walk"][str(nodes)] = row
        walk_table.add_row(f"{nodes}×{nodes}", f"{nodes * 8}×{nodes * 8}", f"{row['sparse_ms']:.1f}",
                           f"{row['sparse_peak_mib']:.0f}", f"{row.get('dense_ms', float('nan')):.1f}",
                           f"{row.get('dense_peak_mib', float('nan')):.0f}", f"{row.get('argmax_agreement', float('nan')):.2%}")
    console.print(walk_table)

    results["crf_ms"] = crf_ms(1 if args.smoke else 5, *crf_size)
    console.print(f"dense CRF (CPU, {crf_size[1]}×{crf_size[0]}, 3 labels, 10 iterations): "
                  f"{results['crf_ms']:.0f} ms/image")

    walk = results["walk"][str(walk_sizes[0][0])]
    estimate = Table(title="A full VOC run at these rates (reference schedule, train_aug; hours)")
    estimate.add_column("backbone / precision")
    estimate.add_column("hours by step")
    for backbone in args.backbones:
        for precision in args.precisions:
            rates = {r["stage"]: r["images_per_s"] for r in results["train"]
                     if r["backbone"] == backbone and r["precision"] == precision and not r["channels_last"]}
            rates["export"] = next(r["images_per_s"] for r in results["export"]
                                   if r["backbone"] == backbone and r["precision"] == precision)
            hours = voc_hours(rates, walk, results["crf_ms"], args.crf_workers)
            results.setdefault("voc_hours", {})[f"{backbone}/{precision}"] = hours
            estimate.add_row(f"{backbone} / {precision}", ", ".join(f"{k} {v:.2f}" for k, v in hours.items()))
    console.print(estimate)
    if args.smoke:
        console.print("[bold]smoke run on the CPU at toy sizes: these numbers are not measurements[/]")
    write_json(args.json, results, device=results["device"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
