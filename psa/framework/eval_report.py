"""What an evaluation leaves to look at: metrics.json, the per-class chart, pictures (image |
ground truth | prediction) and TensorBoard scalars and images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..io import atomic_write_json, remove_stale_temp_files, save_image
from ..layout import StageFolder
from ..viz import colorize_label, iou_bar_chart, side_by_side


def write_evaluation(out_dir: Path, stage: StageFolder, metrics: dict, pictures: list) -> None:
    """`pictures`: (item, ground truth, prediction) of the first images."""
    for folder in (out_dir, out_dir / "pictures"):  # leftovers of a killed earlier run
        remove_stale_temp_files(folder)
    atomic_write_json(out_dir / "metrics.json", metrics)
    chart = iou_bar_chart(metrics["iou"], f"{metrics['source']}: mIoU {_pct(metrics['miou'])}")
    save_image(out_dir / "iou_chart.png", chart)
    panels = []
    for item, gt, pred in pictures:
        image = item.source.load_image(item.index)
        panel = side_by_side([_readable(p) for p in (image, colorize_label(gt), colorize_label(pred))],
                             titles=[item.image_id, "ground truth", metrics["source"]])
        save_image(out_dir / "pictures" / f"{item.image_id}.png", panel)
        panels.append(panel)
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(stage.tensorboard)) as writer:
        tag = metrics["source"]
        if metrics["miou"] is not None:
            writer.add_scalar(f"eval/{tag}/miou", metrics["miou"], 0)
        writer.add_scalar(f"eval/{tag}/pixel_acc", metrics["pixel_acc"], 0)
        writer.add_image(f"eval/{tag}/iou_chart", chart, 0, dataformats="HWC")
        for index, panel in enumerate(panels[:4]):
            writer.add_image(f"eval/{tag}/picture_{index}", panel, 0, dataformats="HWC")


def _readable(picture: np.ndarray, min_height: int = 240) -> np.ndarray:
    """Small images (the demo's 96 px) are enlarged by an integer factor, pixels kept sharp."""
    factor = -(-min_height // picture.shape[0])
    if factor <= 1:
        return picture
    return np.asarray(Image.fromarray(picture).resize((picture.shape[1] * factor, picture.shape[0] * factor),
                                                      Image.NEAREST))


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
