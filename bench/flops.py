"""What a full VOC or COCO run costs in FLOPs: each stage's networks counted on the meta device
(shapes only, no arithmetic), times the images and epochs of the recipe. A projection, not a
measurement: hours are FLOPs divided by an assumed sustained rate (--tflops).

    python bench/flops.py [--recipe recipes/affinity.yaml] [--backbones resnet50 resnet101] [--tflops 100] [--json PATH]

Counted (torch.utils.flop_counter, a multiply-add = 2 FLOPs): a training step forward and
backward at the recipe's crop; the CAM export's scales × flip at the data set's typical image
size; AffinityNet's forward on the whole image and the walk's 2^logt sparse products; the
segmentation network's forward over its scales × flip on the val images. Not counted: data
loading, augmentation, the dense CRF (CPU; see bench/gpu_stages.py), evaluation.
"""

from __future__ import annotations

import sys

import torch
from harness import ROOT, parser, write_json
from torch.utils.flop_counter import FlopCounterMode

import psa
from psa.constants import FEATURE_STRIDE
from psa.methods.affinity.model import AffinityNet
from psa.models import CamNet, SegNet, build_backbone
from psa.ops import pair_offsets

# Image counts of the usual WSSS splits, and a typical image (most VOC photos are 500×375, most
# COCO ones 640×480). classes: with the background. per_image: mean labelled classes per image.
DATASETS = {
    "VOC 2012": {"train": 10_582, "val": 1_449, "classes": 21, "size": (375, 500), "per_image": 1.5},
    "COCO 2014": {"train": 82_081, "val": 40_137, "classes": 81, "size": (480, 640), "per_image": 2.9},
}


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def meta_image(batch: int, height: int, width: int, device="meta") -> torch.Tensor:
    return torch.zeros(batch, 3, height, width, device=device)


def training_step(model: torch.nn.Module, crop: int, call) -> int:
    """FLOPs of one image's forward and backward at crop×crop (the loss itself is negligible),
    on the model's device (meta: shapes only)."""
    model.train()
    image = meta_image(1, crop, crop, next(model.parameters()).device)
    return flops(lambda: call(model, image).float().sum().backward())


def training_images(train: int, cfg) -> int:
    """Images a training stage sees over its epochs: full batches only, as the loader drops the
    last partial one."""
    return (train // cfg.batch_size) * cfg.batch_size * cfg.epochs


def scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def walk_products(height: int, width: int, channels: int, logt: int, radius: int) -> int:
    """2 FLOPs per stored entry and column, per step (the CSR pattern of psa.ops.random_walk)."""
    nodes_h, nodes_w = -(-height // FEATURE_STRIDE), -(-width // FEATURE_STRIDE)
    offsets = pair_offsets(radius)
    pairs = sum(max(0, nodes_h - dy) * max(0, nodes_w - abs(dx)) for dy, dx in offsets)
    entries = 2 * pairs + nodes_h * nodes_w
    return 2 * entries * (-(-channels // 8) * 8) * 2 ** logt


def stage_flops(recipe, backbone: str, data: dict) -> dict[str, float]:
    """FLOPs of each stage of one run on `data`."""
    model_cfg = type(recipe.model)(**{**vars(recipe.model), "backbone": backbone, "pretrained": False})
    with torch.device("meta"):
        cam = CamNet(build_backbone(model_cfg, load_weights=False), data["classes"] - 1)
        affinity = AffinityNet(build_backbone(model_cfg, load_weights=False))
        seg = SegNet(build_backbone(model_cfg, load_weights=False), data["classes"], recipe.seg.head)
    train, val, size = data["train"], data["val"], data["size"]
    radius, rw = recipe.affinity.radius, recipe.random_walk

    def images_seen(cfg) -> int:
        return training_images(train, cfg)

    out = {}
    out["train CAM"] = images_seen(recipe.cam.train) * training_step(cam, recipe.cam.crop_size, lambda m, x: m(x))
    cam.eval()
    with torch.no_grad():
        export = sum(flops(lambda: cam.forward_cam(meta_image(2, *scaled(size, s)))) for s in recipe.cam.scales)
    out["export CAMs"] = train * export
    out["train AffinityNet"] = images_seen(recipe.affinity.train) * training_step(
        affinity, recipe.affinity.crop_size, lambda m, x: m(x, radius))
    affinity.eval()
    padded = tuple(-(-side // FEATURE_STRIDE) * FEATURE_STRIDE for side in size)
    with torch.no_grad():
        forward = flops(lambda: affinity(meta_image(1, *padded), radius))
    channels = round(1 + data["per_image"])  # the background and the image's classes
    out["random walk"] = train * (forward + walk_products(*size, channels, rw.logt, rw.radius))
    out["train segmentation"] = images_seen(recipe.seg.train) * training_step(seg, recipe.seg.crop_size, lambda m, x: m(x))
    seg.eval()
    copies = 2 if recipe.seg.flip else 1
    with torch.no_grad():
        predict = sum(flops(lambda: seg(meta_image(copies, *scaled(size, s)))) for s in recipe.seg.scales)
    out["predict val"] = val * predict
    out["total"] = sum(out.values())
    return out


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("--recipe", default=str(ROOT / "recipes" / "affinity.yaml"),
                         help="schedule, crops, scales, walk (the VOC recipes by default)")
    options.add_argument("--backbones", nargs="+", default=["resnet50", "resnet101"])
    options.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    options.add_argument("--tflops", type=float, default=100.0, help="assumed sustained TFLOP/s of one GPU")
    args = options.parse_args(argv)
    if args.smoke:
        args.backbones, args.datasets = ["resnet10t"], ["VOC 2012"]

    from rich.console import Console
    from rich.table import Table

    recipe = psa.load_recipe(args.recipe, [])
    results = {name: {b: stage_flops(recipe, b, DATASETS[name]) for b in args.backbones} for name in args.datasets}
    console = Console()
    for name, by_backbone in results.items():
        data = DATASETS[name]
        table = Table(title=f"{name}: {data['train']:,} train, {data['val']:,} val images of "
                            f"{data['size'][1]}×{data['size'][0]}, {data['classes']} classes — PROJECTION: "
                            f"PFLOP, and hours at an assumed {args.tflops:g} TFLOP/s sustained")
        table.add_column("stage")
        for backbone in by_backbone:
            table.add_column(f"{backbone} PFLOP", justify="right")
            table.add_column("hours", justify="right")
        for stage in next(iter(by_backbone.values())):
            row = [stage]
            for counts in by_backbone.values():
                row += [f"{counts[stage] / 1e15:,.0f}", f"{counts[stage] / (args.tflops * 1e12) / 3600:.1f}"]
            table.add_row(*row)
        console.print(table)
    write_json(args.json, {"recipe": args.recipe, "tflops_assumed": args.tflops, "flops": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
