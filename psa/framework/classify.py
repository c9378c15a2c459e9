"""The CAM classifier as a classifier: per-class AP and mAP of its image-level scores on a split.

Each image is scored once at its own size (no crop, no flip), in eval mode. Under several
processes each image belongs to one shard and the score rows are summed once, so every image
counts once.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..config import Recipe
from ..data.transforms import normalize
from ..engine.accel import make_accelerator, shard, sum_over_processes
from ..engine.report import Reporter
from ..io import atomic_write_json
from ..metrics import multilabel_scores
from .cams import classifier
from .items import items_for

SOURCE = "classifier"  # tools/eval.py --source classifier


def evaluate_classifier(recipe: Recipe, split: str | None = None, reporter: Reporter | None = None) -> dict:
    reporter = reporter or Reporter()
    split = split or recipe.data.eval_split
    accelerator = make_accelerator(recipe)
    items = items_for(recipe, [split])
    classes = list(items[0].source.classes)
    model = classifier().load(recipe, classes).to(accelerator.device)

    logits = np.zeros((len(items), len(classes) - 1), dtype=np.float64)
    targets = np.zeros_like(logits)
    positions = shard(list(range(len(items))), accelerator)
    started = time.perf_counter()
    reporter.start(f"classify {split}", total=len(positions))
    with torch.no_grad():
        for done, position in enumerate(positions, 1):
            item = items[position]
            image = normalize(item.source.load_image(item.index))[None].to(accelerator.device)
            with accelerator.autocast():
                logits[position] = model(image).float().cpu().numpy()[0]
            targets[position, item.source.image_labels(item.index) - 1] = 1.0
            reporter.update(done)
    reporter.finish()
    logits, targets = (sum_over_processes(accelerator, a) for a in (logits, targets))

    scores = multilabel_scores(logits, targets, from_logits=True)
    metrics = {"source": SOURCE, "split": split, "images": len(items), "mAP": scores["mAP"],
               "ap": dict(zip(classes[1:], scores["ap"])), "f1": scores["f1"], "f1_macro": scores["f1_macro"],
               "seconds": round(time.perf_counter() - started, 2)}
    if accelerator.is_main_process:
        _write_outputs(recipe, metrics)
    accelerator.wait_for_everyone()
    return metrics


def _write_outputs(recipe: Recipe, metrics: dict) -> None:
    stage = classifier().step.training.folder(recipe)
    tag = f"{SOURCE}_{metrics['split']}"
    atomic_write_json(stage.eval(tag) / "metrics.json", metrics)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(stage.tensorboard)) as writer:
        if metrics["mAP"] is not None:
            writer.add_scalar(f"eval/{tag}/mAP", metrics["mAP"], 0)
        for name, ap in metrics["ap"].items():
            if ap is not None:
                writer.add_scalar(f"eval/{tag}/ap_{name}", ap, 0)
