"""What each stage costs per image: measured on this CPU for a backbone at VOC's image size,
counted in FLOPs, and projected onto whole VOC and COCO runs on 1 and 8 GPUs.

    python bench/stage_cost.py [--backbone resnet50] [--images 2] [--gpu "H100 SXM"] [--utilisation 0.4] [--json PATH]

Measured (wall time here, random weights, the median of `--images` timed calls after a warm-up, the recipe's
crops and scales): a training step's forward and backward of one image at the crop, the CAM
export of a 500×375 image (its scales × flip), AffinityNet's forward and the walk, the
segmentation network's prediction over its scales × flip, and the dense CRFs the export runs
on the CPU (two per image). FLOPs as bench/flops.py counts them (meta device).

PROJECTION, not a measurement: GPU hours = a stage's FLOPs over a full run ÷ (the named GPU's
dense fp16/bf16 tensor rate × `--utilisation`), and ÷ 8 on 8 GPUs (perfect scaling assumed).
The dense CRF stays on the CPU: its hours are the measured CRF time × images ÷ `--crf-cores`.
"""

from __future__ import annotations

import dataclasses
import platform
import sys

import flops as flop_count  # bench/flops.py
import numpy as np
import torch
from harness import ROOT, median_seconds, parser, write_json

import psa
from psa.constants import FEATURE_STRIDE
from psa.data.transforms import normalize, pad_to_multiple
from psa.methods.affinity.model import AffinityNet
from psa.models import CamNet, SegNet, build_backbone
from psa.ops.cam import multiscale_cam
from psa.ops.crf import dense_crfs
from psa.ops.random_walk import random_walk

# dense fp16/bf16 tensor-core rates (no sparsity), TFLOP/s, from the vendors' data sheets
GPUS = {"A100 SXM": 312.0, "H100 SXM": 989.0, "H200 SXM": 989.0, "L40S": 362.0}


def timed(fn, repeats: int) -> float:
    return median_seconds(fn, repeats, warmup=1)


def measure(recipe, backbone: str, size: tuple[int, int], repeats: int) -> dict[str, float]:
    """Seconds per image of each stage's network work on this CPU."""
    model_cfg = dataclasses.replace(recipe.model, backbone=backbone, pretrained=False, weights="")
    torch.manual_seed(0)
    cam = CamNet(build_backbone(model_cfg, load_weights=False), 20)
    affinity = AffinityNet(build_backbone(model_cfg, load_weights=False))
    seg = SegNet(build_backbone(model_cfg, load_weights=False), 21, recipe.seg.head)
    radius = recipe.affinity.radius
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)

    def train_step(model, crop, call):
        model.train()
        x = torch.randn(1, 3, crop, crop)

        def step():
            model.zero_grad(set_to_none=True)
            call(model, x).float().sum().backward()
        return timed(step, repeats)

    out = {"train CAM": train_step(cam, recipe.cam.crop_size, lambda m, x: m(x))}
    cam.eval()
    out["export CAMs"] = timed(lambda: multiscale_cam(cam, image, [0, 1], recipe.cam.scales, recipe.cam.flip), repeats)
    out["train AffinityNet"] = train_step(affinity, recipe.affinity.crop_size, lambda m, x: m(x, radius))
    affinity.eval()
    rw = recipe.random_walk

    def walk():
        with torch.no_grad():
            x = pad_to_multiple(normalize(image), FEATURE_STRIDE)[None]
            aff = affinity(x, radius)[0]
            small = torch.rand(3, *aff.shape[-2:])
            random_walk(small, aff, beta=rw.beta, logt=rw.logt, radius=rw.radius)
    out["random walk"] = timed(walk, repeats)
    out["train segmentation"] = train_step(seg, recipe.seg.crop_size, lambda m, x: m(x))
    seg.eval()

    def predict():
        with torch.no_grad():
            for scale in recipe.seg.scales:
                h, w = flop_count.scaled(size, scale)
                seg(torch.randn(2 if recipe.seg.flip else 1, 3, h, w))
    out["predict val"] = timed(predict, repeats)
    scores = np.random.default_rng(1).random((2, 3, *size)).astype(np.float32)
    out["dense CRF (2 per export image)"] = timed(lambda: dense_crfs(image, list(scores), recipe.crf), repeats)
    return out


def per_image_flops(recipe, backbone: str, data: dict) -> tuple[dict, dict, dict]:
    """(FLOPs per image, FLOPs of the whole run, images processed) of each stage; a training
    image is one forward + backward at the crop."""
    totals = flop_count.stage_flops(recipe, backbone, data)

    def seen(cfg) -> int:
        return flop_count.training_images(data["train"], cfg)

    counts = {"train CAM": seen(recipe.cam.train), "export CAMs": data["train"],
              "train AffinityNet": seen(recipe.affinity.train), "random walk": data["train"],
              "train segmentation": seen(recipe.seg.train), "predict val": data["val"]}
    return {stage: totals[stage] / counts[stage] for stage in counts}, totals, counts


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("--recipe", default=str(ROOT / "recipes" / "affinity.yaml"))
    options.add_argument("--backbone", default="resnet50")
    options.add_argument("--images", type=int, default=2, help="timed calls per stage (after a warm-up)")
    options.add_argument("--gpu", default="H100 SXM", choices=list(GPUS))
    options.add_argument("--utilisation", type=float, default=0.4, help="assumed share of the dense rate sustained")
    options.add_argument("--crf-cores", type=int, default=32, help="CPU cores running the CRFs next to the GPUs")
    args = options.parse_args(argv)
    overrides, size = [], None
    if args.smoke:  # the timings at a toy size (the FLOP counts and projections stay VOC's)
        args.backbone, args.images, size = "resnet10t", 1, (40, 48)
        overrides = ["cam.crop_size=48", "affinity.crop_size=48", "seg.crop_size=48", "cam.scales=[1.0]",
                     "seg.scales=[1.0]"]

    from rich.console import Console
    from rich.table import Table

    recipe = psa.load_recipe(args.recipe, overrides)
    voc, coco = flop_count.DATASETS["VOC 2012"], flop_count.DATASETS["COCO 2014"]
    seconds = measure(recipe, args.backbone, size or voc["size"], args.images)
    flops_voc, totals_voc, counts_voc = per_image_flops(recipe, args.backbone, voc)
    _, totals_coco, counts_coco = per_image_flops(recipe, args.backbone, coco)
    rate = GPUS[args.gpu] * 1e12 * args.utilisation

    table = Table(title=f"{args.backbone} at {voc['size'][1]}×{voc['size'][0]} ({args.recipe}): measured on this CPU; "
                        f"GPU hours a PROJECTION at {args.utilisation:.0%} of a {args.gpu}'s "
                        f"{GPUS[args.gpu]:g} dense fp16 TFLOP/s")
    for column in ("stage", "GFLOP / image", "CPU s / image", "CPU GFLOP/s", "VOC images", "VOC h 1 GPU",
                   "VOC h 8 GPUs", "COCO images", "COCO h 1 GPU", "COCO h 8 GPUs"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, per_image in flops_voc.items():
        voc_h, coco_h = totals_voc[stage] / rate / 3600, totals_coco[stage] / rate / 3600
        table.add_row(stage, f"{per_image / 1e9:,.0f}", f"{seconds[stage]:.2f}",
                      f"{per_image / seconds[stage] / 1e9:.0f}", f"{counts_voc[stage]:,}", f"{voc_h:.2f}",
                      f"{voc_h / 8:.2f}", f"{counts_coco[stage]:,}", f"{coco_h:.2f}", f"{coco_h / 8:.2f}")
    crf = seconds["dense CRF (2 per export image)"]
    table.add_row("dense CRF (2 per export image, CPU)", "", f"{crf:.2f}", "", f"{voc['train']:,}",
                  f"{crf * voc['train'] / args.crf_cores / 3600:.2f}", "", f"{coco['train']:,}",
                  f"{crf * coco['train'] / args.crf_cores / 3600:.2f}", "")
    console = Console(width=200)
    console.print(table)
    console.print(f"CRF hours: on {args.crf_cores} CPU cores next to the GPUs (the CRF image size is VOC's for COCO too). "
                  f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    write_json(args.json, {"recipe": args.recipe, "backbone": args.backbone, "gpu": args.gpu,
                           "utilisation": args.utilisation, "crf_cores": args.crf_cores, "smoke": args.smoke,
                           "cpu_seconds_per_image": seconds, "flops_per_image_voc": flops_voc,
                           "flops_voc": totals_voc, "flops_coco": totals_coco})
    return 0


if __name__ == "__main__":
    sys.exit(main())
