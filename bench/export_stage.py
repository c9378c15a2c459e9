"""The CAM export stage of a real recipe, before and after each of its speed-ups, in one run.

    python bench/export_stage.py recipes/coco_voc_mini.yaml [--images N] [--json PATH] [key=value ...]

Needs the recipe's trained CAM classifier (`<run.dir>/cam/model.pt`, e.g. from
`python tools/pipeline.py RECIPE "pipeline.steps=[train_cam]"`; `--smoke` trains a tiny one
of the demo in a temporary folder). Each row runs the export step itself (the registered
export_cams, psa/methods/cam/export.py) into a scratch copy of the run, with one more
speed-up switched on than the row above:

  1. as before: one process on every core, BN as its own layers, the two confident-label CRFs
     each with their own pairwise terms;
  2. + BN folded into the convolutions (psa/models/fold_bn.py);
  3. + the two CRFs of an image sharing their pairwise terms (psa.ops.crf.dense_crfs);
  4. + the images shared by one forked worker per core (run.cpu_workers: 0), as shipped.

Then the forward's arithmetic: its FLOPs per image, the FLOP/s the export achieves (its
forwards' FLOPs over the stage's wall time) and what the same convolutions reach alone, each
timed on its own input in a plain loop on every core: the "plain benchmark".
"""

from __future__ import annotations

import platform
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from harness import parser, smoke_run, write_json
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

import psa
from psa.data.transforms import normalize
from psa.framework.cams import CamFile, cam_export, classifier
from psa.framework.items import default_splits, items_for
from psa.methods.cam import export as export_module
from psa.ops import crf as crf_module
from psa.ops.cam import multiscale_cam


def separate_crfs(image, scores, cfg=None):
    """The CRFs as before: each score map with its own pairwise terms."""
    return [crf_module.dense_crf(image, probs, cfg) for probs in scores]


def unfolded(model, example, forward=None):
    return model, 0


VARIANTS = [  # (row, patches, run.cpu_workers)
    ("before: 1 process, BN layers, 2 separate CRFs", {"fold": unfolded, "crfs": separate_crfs}, 1),
    ("+ BN folded into the convs", {"crfs": separate_crfs}, 1),
    ("+ the 2 CRFs share their pairwise terms", {}, 1),
    ("+ one worker process per core (shipped)", {}, 0),
]


@contextmanager
def patched(patches: dict):
    with mock.patch.object(export_module, "fold_batch_norm", patches.get("fold", export_module.fold_batch_norm)), \
         mock.patch("psa.ops.cam.dense_crfs", patches.get("crfs", crf_module.dense_crfs)):
        yield


def scratch_run(recipe_path: str, overrides: list[str], source_run: Path, folder: Path, workers: int):
    """A run folder holding only the trained classifier (and its records), so the export
    recomputes every image."""
    recipe = psa.load_recipe(recipe_path, [*overrides, f"run.dir={folder}", f"run.cpu_workers={workers}"])
    stage = classifier().weights(recipe).parent  # <run.dir>/cam
    stage.mkdir(parents=True)
    for path in (source_run / stage.relative_to(folder)).iterdir():
        if path.is_file():
            shutil.copy2(path, stage / path.name)
    for path in source_run.glob("*.json"):
        shutil.copy2(path, folder / path.name)
    return recipe


def forward_flops(model, recipe, items) -> float:
    """FLOPs of the export's forwards over `items` (scales × flip), counted on the meta device."""
    meta = classifier().load(recipe, items[0].source.classes).to("meta")
    total = 0
    for item in items:
        height, width = item.source.load_image(item.index).shape[:2]
        for scale in recipe.cam.scales:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            x = torch.zeros(2 if recipe.cam.flip else 1, 3, *size, device="meta")
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                meta.forward_cam(x)
            total += counter.get_total_flops()
    return float(total)


def plain_benchmark(model, image: np.ndarray, scales, flip: bool, repeats: int = 5) -> tuple[float, float]:
    """(FLOPs, seconds) of the network's own convolutions on one image, each run alone on a
    random input of its real shape, `repeats` times after a warm-up."""
    shapes = []

    def record(module, inputs, _output):
        shapes.append((module, tuple(inputs[0].shape)))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    pil = Image.fromarray(image)
    with torch.no_grad():
        for scale in scales:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            x = normalize(np.asarray(pil.resize(size, Image.BICUBIC)))[None]
            model.forward_cam(torch.cat([x, x.flip(-1)]) if flip else x)
    for hook in hooks:
        hook.remove()
    flops = seconds = 0.0
    with torch.no_grad():
        for conv, shape in shapes:
            x = torch.randn(shape)
            conv(x)
            with FlopCounterMode(display=False) as counter:
                conv(x)
            start = time.perf_counter()
            for _ in range(repeats):
                conv(x)
            seconds += (time.perf_counter() - start) / repeats
            flops += counter.get_total_flops()
    return flops, seconds


def forwards_alone(model, recipe, items) -> float:
    """Seconds per image of the export's forwards alone (multi-scale + flip, in this process)."""
    images = [(item.source.load_image(item.index), item.source.image_labels(item.index)) for item in items]
    multiscale_cam(model, images[0][0], images[0][1] - 1, recipe.cam.scales, recipe.cam.flip)  # warm-up
    start = time.perf_counter()
    for image, classes in images:
        multiscale_cam(model, image, classes - 1, recipe.cam.scales, recipe.cam.flip)
    return (time.perf_counter() - start) / len(images)


def compare(reference, other) -> tuple[float, float]:
    """(max |Δ| of the CAMs, share of confident-label pixels that differ) between the exports
    of two recipes."""
    export = cam_export()
    worst, differ, pixels = 0.0, 0, 0
    for path in sorted(export.cams(reference).glob("*.npz")):
        a = CamFile.read(path).cams
        b = CamFile.read(export.cams(other) / path.name).cams
        worst = max(worst, float(np.abs(a - b).max()) if a.size else 0.0)
        name = path.with_suffix(".png").name
        la = np.asarray(Image.open(export.confident_labels(reference) / name))
        lb = np.asarray(Image.open(export.confident_labels(other) / name))
        differ, pixels = differ + int((la != lb).sum()), pixels + la.size
    return worst, differ / max(pixels, 1)


def main(argv: list[str] | None = None) -> int:
    options = parser(__doc__)
    options.add_argument("recipe", nargs="?", help="the recipe whose classifier is trained (with --smoke: none)")
    options.add_argument("--images", type=int, default=0, help="the first N export images (0: all)")
    options.add_argument("overrides", nargs="*")
    args = options.parse_intermixed_args(argv)
    if not args.smoke and not args.recipe:
        options.error("the recipe of a run with a trained CAM classifier is required")
    with tempfile.TemporaryDirectory() as smoke:
        if args.smoke:
            args.recipe, args.overrides = smoke_run(Path(smoke) / "run", ("train_cam",))
        return measure(args)


def measure(args) -> int:
    recipe = psa.load_recipe(args.recipe, args.overrides)
    source_run = Path(recipe.run.dir)
    if not classifier().weights(recipe).is_file():
        sys.exit(f"bench/export_stage.py: no trained classifier at {classifier().weights(recipe)}; run "
                 f"`python tools/pipeline.py {args.recipe} \"pipeline.steps=[train_cam]\"` first")
    overrides = list(args.overrides)
    items = items_for(recipe, default_splits(recipe, recipe.cam.export_split))
    export_step = cam_export().step  # the registered export_cams

    rows, recipes = [], []
    with tempfile.TemporaryDirectory(dir=source_run.parent) as scratch:
        if args.images:
            items = items[: args.images]
            ids = Path(scratch) / "ids.txt"
            ids.write_text("\n".join(item.image_id for item in items) + "\n")
            # the ids as the export split (absolute paths are accepted as split files)
            overrides.append(f"cam.export_split={ids}")
        for number, (title, patches, workers) in enumerate(VARIANTS):
            folder = Path(scratch) / f"variant{number}"
            run_recipe = scratch_run(args.recipe, overrides, source_run, folder, workers)
            with patched(patches):
                start = time.perf_counter()
                summary = export_step.run(run_recipe, None)
                seconds = time.perf_counter() - start
            assert summary["written_here"] == len(items), summary
            recipes.append(run_recipe)
            rows.append((title, seconds, summary["cpu_workers"]))
        diffs = [compare(recipes[0], r) for r in recipes]

        model = classifier().load(recipe, items[0].source.classes)
        flops = forward_flops(model, recipe, items)
        forward_seconds = forwards_alone(model, recipe, items[: min(len(items), 16)])
        first = items[0].source.load_image(items[0].index)
        plain_flops, plain_seconds = plain_benchmark(model, first, recipe.cam.scales, recipe.cam.flip)
    plain_rate = plain_flops / plain_seconds

    table = Table(title=f"CAM export of {args.recipe}: {len(items)} images, {recipe.model.backbone}, "
                        f"scales {list(recipe.cam.scales)} + flip, 2 CRFs per image")
    for column in ("variant", "workers", "s", "s / image", "speed-up", "forward GFLOP/s",
                   "of plain", "max |Δ| CAM", "labels differ"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    base = rows[0][1]
    results = []
    for (title, seconds, workers), (worst, share) in zip(rows, diffs):
        rate = flops / seconds
        results.append({"variant": title, "workers": workers, "seconds": seconds, "forward_flops_per_s": rate,
                        "max_abs_diff_cams": worst, "labels_differ": share})
        table.add_row(title, str(workers), f"{seconds:.1f}", f"{seconds / len(items):.3f}", f"{base / seconds:.2f}×",
                      f"{rate / 1e9:.1f}", f"{rate / plain_rate:.0%}", f"{worst:.1e}", f"{share:.2%}")
    console = Console(width=160)
    console.print(table)
    console.print(f"forward: {flops / len(items) / 1e9:.2f} GFLOP per image; plain benchmark of the same "
                  f"convolutions ({torch.get_num_threads()} threads, one image's shapes): "
                  f"{plain_rate / 1e9:.1f} GFLOP/s. 'of plain': the export's forward FLOPs over its whole wall "
                  "time (CRFs, resizing and writing included) as a share of that rate.")
    sample = min(len(items), 16)
    sample_flops = forward_flops(model, recipe, items[:sample]) / sample
    console.print(f"the forwards alone (1 process, BN layers, first {sample} images): {forward_seconds:.3f} s / image, "
                  f"{sample_flops / forward_seconds / 1e9:.1f} GFLOP/s = "
                  f"{sample_flops / forward_seconds / plain_rate:.0%} of the plain benchmark")
    console.print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
                  f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    write_json(args.json, {"recipe": args.recipe, "images": len(items), "smoke": args.smoke,
                           "forward_flops_per_image": flops / len(items), "plain_flops_per_s": plain_rate,
                           "forwards_alone_s_per_image": forward_seconds, "variants": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
