"""Where a recipe's backbone forward spends its time, convolution by convolution.

    python bench/backbone_layers.py recipes/coco_voc_mini.yaml [--size 320x240] [--batch 2] [--threads 1] [--json PATH] [key=value ...]

Times every Conv2d of `model.backbone` (random weights: the time does not depend on them) with
forward hooks over a few forwards of a random batch (default: one image and its flip at the
export's scale 1 of a 320×240 photo, on one thread, as each export worker runs). Prints the
slowest convolutions and the time by kind: depthwise by dilation and stride, pointwise, other.
`--smoke`: the demo's resnet10t on a 48x40 batch, one repeat.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import torch
from harness import SMOKE_RECIPE, parser, write_json
from rich.console import Console
from rich.table import Table

import psa
from psa.models import build_backbone


def kind(conv: torch.nn.Conv2d) -> str:
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return f"depthwise {conv.kernel_size[0]}x{conv.kernel_size[1]}, dilation {conv.dilation[0]}, stride {conv.stride[0]}"
    return "pointwise (1x1)" if conv.kernel_size == (1, 1) else "other"


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("recipe", nargs="?", help="whose model.backbone (with --smoke: the demo's)")
    options.add_argument("--size", default="320x240", help="WIDTHxHEIGHT of the input")
    options.add_argument("--batch", type=int, default=2)
    options.add_argument("--threads", type=int, default=1)
    options.add_argument("--repeats", type=int, default=3)
    options.add_argument("--top", type=int, default=8)
    options.add_argument("overrides", nargs="*")
    args = options.parse_intermixed_args(argv)
    if args.smoke:
        args.recipe, args.size, args.repeats = args.recipe or str(SMOKE_RECIPE), "48x40", 1
    elif not args.recipe:
        options.error("the recipe is required")
    torch.set_num_threads(args.threads)
    recipe = psa.load_recipe(args.recipe, args.overrides)
    backbone = build_backbone(recipe.model, load_weights=False).eval()
    width, height = (int(v) for v in args.size.split("x"))
    spent: dict[str, float] = defaultdict(float)
    started: dict[str, float] = {}
    convs = {name: m for name, m in backbone.named_modules() if isinstance(m, torch.nn.Conv2d)}
    for name, conv in convs.items():
        conv.register_forward_pre_hook(lambda m, i, name=name: started.__setitem__(name, time.perf_counter()))
        conv.register_forward_hook(
            lambda m, i, o, name=name: spent.__setitem__(name, spent[name] + time.perf_counter() - started[name]))
    x = torch.randn(args.batch, 3, height, width)
    with torch.no_grad():
        backbone(x)  # warm-up: oneDNN picks and caches its kernels
        spent.clear()
        begin = time.perf_counter()
        for _ in range(args.repeats):
            backbone(x)
        total = (time.perf_counter() - begin) / args.repeats
    ms = {name: 1000 * seconds / args.repeats for name, seconds in spent.items()}
    console = Console()
    table = Table(title=f"{recipe.model.backbone}: the {args.top} slowest convolutions "
                        f"(batch {args.batch} of {width}x{height}, {args.threads} thread(s))")
    for column in ("layer", "kind", "input", "ms"):
        table.add_column(column, justify="right" if column == "ms" else "left")
    shapes: dict[str, tuple] = {}
    with torch.no_grad():
        hooks = [conv.register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, tuple(i[0].shape)))
                 for name, conv in convs.items()]
        backbone(x)
        for hook in hooks:
            hook.remove()
    for name in sorted(ms, key=ms.get, reverse=True)[:args.top]:
        table.add_row(name, kind(convs[name]), "x".join(map(str, shapes[name])), f"{ms[name]:.1f}")
    console.print(table)
    by_kind: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for name, value in ms.items():
        by_kind[kind(convs[name])][0] += 1
        by_kind[kind(convs[name])][1] += value
    summary = Table(title=f"by kind: forward {1000 * total:.0f} ms, of it convolutions {sum(ms.values()):.0f} ms")
    for column in ("kind", "layers", "ms", "share of the forward"):
        summary.add_column(column, justify="left" if column == "kind" else "right")
    for name, (count, value) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        summary.add_row(name, str(count), f"{value:.1f}", f"{100 * value / (1000 * total):.0f} %")
    console.print(summary)
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    write_json(args.json, {"recipe": args.recipe, "backbone": recipe.model.backbone, "size": [width, height],
                           "batch": args.batch, "repeats": args.repeats, "smoke": args.smoke,
                           "forward_ms": 1000 * total, "conv_ms": ms,
                           "by_kind": {name: {"layers": count, "ms": value}
                                       for name, (count, value) in by_kind.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
