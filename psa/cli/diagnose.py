"""Rendering of `psa.stages.diagnose`: the bounds, the labels and pairs, the classifier."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from ..stages.diagnose import summary_rows
from .common import percent


def diagnose_tables(report: dict) -> Group:
    where = f"{report['split']} ({report['images']} images"
    where += ", the training images)" if report["split_is_training_data"] else ")"
    walk = report["walk"]
    bounds = Table(title=f"diagnosis — {where}; walk alpha {walk['alpha']:g}, beta {walk['beta']:g}, "
                         f"t = 2^{walk['logt']}, radius {walk['radius']}")
    bounds.add_column("stage")
    bounds.add_column("mIoU %", justify="right")
    for row, value in summary_rows(report):
        bounds.add_row(row, percent(value))

    parts = [bounds]
    labels = report["confident_labels"]
    if labels is not None:
        table = Table(title="confident labels (what AffinityNet learns from) vs ground truth")
        for column in ("pixels", "precision %", "coverage %"):
            table.add_column(column, justify="left" if column == "pixels" else "right")
        for name, prefix in (("all", ""), ("background", "bg_"), ("objects", "fg_")):
            table.add_row(name, percent(labels[f"{prefix}precision"]), percent(labels[f"{prefix}coverage"]))
        parts.append(table)
    pairs = report["pair_accuracy"]
    if pairs is not None:
        table = Table(title="AffinityNet on ground-truth pairs (same segment: affinity > 0.5)")
        for column in ("pairs", "count", "accuracy %", "mean affinity"):
            table.add_column(column, justify="left" if column == "pairs" else "right")
        for key, row in pairs.items():
            mean = "n/a" if row["mean_affinity"] is None else f"{row['mean_affinity']:.3f}"
            table.add_row(key, str(row["pairs"]), percent(row["accuracy"]), mean)
        parts.append(table)

    irn = report.get("irn_boundary")
    if irn is not None:
        table = Table(title=f"IRN's boundary map vs ground-truth class edges (stride 4, p > {irn['threshold']}, "
                            "one cell of tolerance)")
        for column in ("precision %", "recall %", "edge cells"):
            table.add_column(column, justify="right")
        table.add_row(percent(irn["precision"]), percent(irn["recall"]), str(irn["edge_cells"]))
        parts.append(table)

    per_class = Table(title=f"per class — classifier mAP {percent(report['classifier']['mAP'])}")
    columns = [("AP %", report["classifier"]["ap"]), ("IoU CAM", report["iou"]["cam"])]
    if "rw_learned" in report["iou"]:
        columns.append(("IoU RW", report["iou"]["rw_learned"]))
    columns.append(("IoU RW (gt aff.)", report["iou"]["rw_gt_affinity"]))
    per_class.add_column("class")
    for title, _ in columns:
        per_class.add_column(title, justify="right")
    for name in report["iou"]["cam"]:
        values = [values.get(name) for _, values in columns]
        if all(v is None for v in values):
            continue  # a class absent from ground truth, prediction and labels
        per_class.add_row(name, *(percent(v) for v in values))
    parts.append(per_class)
    parts.append(f"[bold]bottleneck:[/] {report['bottleneck']}")
    return Group(*parts)
