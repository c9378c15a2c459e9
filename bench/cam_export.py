"""CAM export: the 8 passes (4 scales × flip) batched per scale vs one pass at a time.

    python bench/cam_export.py [--backbone resnet18] [--size 320x240] [--images 4] [--json PATH] [--smoke]

Prints a table: time per image for both, speed-up, and the max difference between the maps.
"""

from __future__ import annotations

import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from harness import parser, write_json
from PIL import Image
from rich.console import Console
from rich.table import Table

from psa.config import ModelConfig
from psa.data.transforms import normalize
from psa.models import CamNet, build_backbone
from psa.ops.cam import multiscale_cam

SCALES = (1.0, 0.5, 1.5, 2.0)


@torch.no_grad()
def one_pass_at_a_time(model, image, class_idx, scales):
    """The reference's loop: every scale and every flip is its own forward pass."""
    height, width = image.shape[:2]
    pil = Image.fromarray(image)
    total = torch.zeros((len(class_idx), height, width))
    for scale in scales:
        size = (round(width * scale), round(height * scale))
        x = normalize(np.asarray(pil.resize(size, Image.BICUBIC)))
        for flipped in (False, True):
            inp = x.flip(-1) if flipped else x
            cam = model.forward_cam(inp[None])[:, class_idx]
            cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)[0]
            total += cam.flip(-1) if flipped else cam
    peak = total.flatten(1).max(dim=1).values
    return total / (peak[:, None, None] + 1e-5)


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("--backbone", default="resnet18")
    options.add_argument("--size", default="320x240")
    options.add_argument("--images", type=int, default=4)
    args = options.parse_args(argv)
    if args.smoke:
        args.backbone, args.size, args.images = "resnet10t", "48x40", 1
    width, height = map(int, args.size.split("x"))
    torch.manual_seed(0)
    model = CamNet(build_backbone(ModelConfig(backbone=args.backbone, freeze_bn=True)), 20).eval()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(args.images)]
    class_idx = [3, 11]
    multiscale_cam(model, images[0], class_idx, SCALES)  # warm-up

    def timed(fn):
        start = time.perf_counter()
        maps = [fn(img) for img in images]
        return (time.perf_counter() - start) / len(images), maps

    t_loop, loop_maps = timed(lambda img: one_pass_at_a_time(model, img, class_idx, SCALES))
    t_batch, batch_maps = timed(lambda img: multiscale_cam(model, img, class_idx, SCALES))
    diff = max(float((a - b).abs().max()) for a, b in zip(loop_maps, batch_maps))

    table = Table(title=f"CAM export, {args.backbone} OS8, {width}×{height}, scales {SCALES} + flip")
    for col in ("method", "forwards / image", "s / image", "speed-up", "max |Δ| of maps"):
        table.add_column(col, justify="right")
    table.add_row("one pass at a time", "8", f"{t_loop:.3f}", "1.00×", "")
    table.add_row("flip batched per scale", "4", f"{t_batch:.3f}", f"{t_loop / t_batch:.2f}×", f"{diff:.2e}")
    Console(width=120).print(table)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    write_json(args.json, {"backbone": args.backbone, "size": [width, height], "images": args.images,
                           "scales": SCALES, "smoke": args.smoke, "one_pass_at_a_time_s": t_loop,
                           "batched_per_scale_s": t_batch, "max_abs_diff": diff})
    return 0


if __name__ == "__main__":
    sys.exit(main())
