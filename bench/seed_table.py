"""One table of several finished pipeline runs (e.g. seeds): each summary row per run, its mean
and its spread (sample standard deviation), from each run's `pipeline/summary.json`.

    python bench/seed_table.py runs/msrc_s0 runs/msrc_s1 runs/msrc_s2 [--markdown]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psa.stages  # noqa: E402,F401  (registers every step)
from psa.stages.registry import REGISTRY  # noqa: E402


def read_summary(run: Path) -> dict:
    path = run / "pipeline" / "summary.json"
    if not path.is_file():
        sys.exit(f"bench/seed_table.py: {path} not found; run tools/pipeline.py for {run} first")
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table instead")
    args = parser.parse_args()
    summaries = [read_summary(run) for run in args.runs]
    found = {label for summary in summaries for label in summary if "miou" in summary[label]}
    order = [row.label for _, row in REGISTRY.summary_rows()]  # pipeline order
    labels = [label for label in order if label in found] + sorted(found - set(order))
    header = ["stage", *[run.name for run in args.runs], "mean", "spread"]
    rows = []
    for label in labels:
        values = [summary.get(label, {}).get("miou") for summary in summaries]
        present = [100 * v for v in values if v is not None]
        mean = f"{statistics.mean(present):.1f}" if present else "—"
        spread = f"±{statistics.stdev(present):.1f}" if len(present) > 1 else "—"
        rows.append([label, *("—" if v is None else f"{100 * v:.1f}" for v in values), mean, spread])
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" + "---:|" * (len(header) - 1))
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    table = Table(title="mIoU % per run")
    for column in header:
        table.add_column(column, justify="left" if column == "stage" else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
