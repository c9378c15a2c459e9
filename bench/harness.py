"""The harness every benchmark uses: a parser with `--smoke` (toy sizes on the CPU, seconds:
checks the script, its numbers mean nothing) and `--json PATH`, the machine to store with the
results, a median-of-repeats timer, the JSON writer and a tiny finished run for smoke mode.
Imported as a sibling (`python bench/x.py` puts bench/ on sys.path); psa is installed."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE_RECIPE = ROOT / "recipes" / "_base_" / "demo.yaml"  # shrunk to 8 images of 48 px, 1 epoch per network
SMOKE_OVERRIDES = [
    "data.synthetic.num_train=8", "data.synthetic.num_val=4", "data.synthetic.image_size=48",
    "data.synthetic.max_objects=1", "model.backbone=resnet10t", "run.num_workers=0", "eval.crf_workers=1",
    "eval.num_pictures=0", "cam.crop_size=48", "cam.resize_long=[44,52]", "cam.scales=[1.0,0.5]",
    "cam.train.batch_size=4", "cam.train.epochs=1", "affinity.crop_size=48", "affinity.train.batch_size=4",
    "affinity.train.epochs=1", "affinity.init=imagenet", "seg.crop_size=48", "seg.train.batch_size=4",
    "seg.train.epochs=1", "seg.scales=[1.0]",
]


def parser(doc: str) -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--smoke", action="store_true",
                      help="toy sizes on the CPU: checks that the script runs, its numbers mean nothing")
    made.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    return made


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(device: str = "cpu") -> dict:
    """What the numbers were measured on."""
    import torch

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "torchvision": version("torchvision"),
            "timm": version("timm"), "device": device}


def times(fn, repeats: int, warmup: int = 1) -> list[float]:
    """Seconds of each of `repeats` calls of fn(), after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
    return statistics.median(times(fn, max(1, repeats), warmup))


def write_json(path: Path | None, results: dict, device: str = "cpu") -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"machine": machine(device), **results}, indent=2, default=str) + "\n")


def smoke_run(folder: Path, steps: tuple[str, ...] = ()) -> tuple[str, list[str]]:
    """The smoke recipe (path, overrides) with run.dir `folder`, after running the registered `steps` there."""
    import psa
    from psa.framework.registry import REGISTRY

    overrides = [*SMOKE_OVERRIDES, f"run.dir={folder}"]
    recipe = psa.load_recipe(SMOKE_RECIPE, overrides)
    for step in steps:
        REGISTRY.get(step).run(recipe, None)
    return str(SMOKE_RECIPE), overrides
