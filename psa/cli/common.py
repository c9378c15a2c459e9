"""Argument parsing, error handling, progress and tables shared by every tool."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..config import Recipe, dump_recipe
from ..engine.report import Reporter, is_main_process
from ..errors import PsaError
from ..framework import run_lock
from ..framework.recipes import load_recipe

console = Console(stderr=False)
err_console = Console(stderr=True)
STEP = [""]  # the step running now, for the last resort's message

__all__ = ["is_main_process"]  # re-exported for the tools


def add_recipe_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="recipe overrides, e.g. train.lr=0.01 data.root=/data/VOC2012")
    parser.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    return parser


def load_from_args(args: argparse.Namespace) -> Recipe | None:
    """The recipe, its keys checked; the keys whose choices are the registry's (`task`,
    `pipeline.steps`, cam.method, seg.masks, ...) too, once the keys themselves passed (a typo
    fails before torch loads)."""
    recipe = load_recipe(args.recipe, args.overrides)
    from ..framework.registry import REGISTRY  # imports every step (and torch): late, for a fast typo message

    REGISTRY.check_recipe(recipe)
    if args.print_config:
        console.print(dump_recipe(recipe) + class_comment(recipe), markup=False, highlight=False, soft_wrap=True)
        return None
    took_over = run_lock.acquire(recipe.run.dir)  # one command per run folder, until run_tool ends
    if took_over:
        RichReporter().log(took_over)
    return recipe


def class_comment(recipe: Recipe) -> str:
    """The resolved class list and where it came from, as YAML comments (the output stays a
    loadable recipe); a data set that cannot be read says why instead."""
    from ..data import class_list

    try:
        classes, origin = class_list(recipe.data, recipe.data.train_split)
    except PsaError as err:
        return f"# classes: not resolved ({err})"
    names = ", ".join(f"{k} {name}" for k, name in enumerate(classes))
    return f"# classes ({len(classes)}, index 0 = background), from {origin}:\n#   {names}"


class RichReporter(Reporter):
    """A rich progress bar on the main process; silent elsewhere. When stdout is not a terminal
    (a log file, SLURM, CI), plain lines with an ETA instead, one every `every` seconds."""

    def __init__(self, enabled: bool | None = None, plain: bool | None = None, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.enabled = is_main_process() if enabled is None else enabled
        self.plain = not console.is_terminal if plain is None else plain
        self.progress: Progress | None = None
        self.task_id = None
        self.lines: PlainProgress | None = None
        self.every, self.clock = every, clock

    def start(self, description: str, total: int, completed: int = 0) -> None:
        if not self.enabled:
            return
        self.finish()
        if self.plain:
            self.lines = PlainProgress(description, total, completed, self.every, self.clock)
            return
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console,
        )
        self.progress.start()
        self.task_id = self.progress.add_task(escape(description), total=total, completed=completed, info="")

    def update(self, completed: int, **fields) -> None:
        info = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
        if self.lines is not None:
            line = self.lines.update(completed, info)
            if line:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        if self.progress is None:
            return
        self.progress.update(self.task_id, completed=completed, info=escape(info))

    def finish(self) -> None:
        if self.lines is not None:
            console.print(self.lines.last(), markup=False, highlight=False, soft_wrap=True)
            self.lines = None
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def log(self, message: str) -> None:
        if self.enabled and self.plain:
            console.print(f"{time.strftime('%H:%M:%S')} {message}", markup=False, highlight=False, soft_wrap=True)
        elif self.enabled:
            console.log(escape(message))

    def step(self, name: str, event: str, detail: str = "") -> None:
        STEP[0] = name if event == "start" else ""
        if not self.enabled:
            return
        name, detail = escape(name), escape(detail)  # paths and recipe values are the user's
        if event == "skip":
            console.print(f"[dim]✓ {name}: done already ({detail})[/]")
        elif event == "start":
            console.rule(f"[bold]{name}" + (f" [yellow](rerun: {detail})[/]" if detail else ""))
        else:
            console.print(f"[green]✓ {name}[/] in {detail} s")


def run_tool(main: Callable[[], int | None]) -> None:
    """Run a tool's main; bad input becomes one red line on stderr and exit code 2. Under
    several processes every one of them meets the same bad input, so only the main process
    (RANK 0) says it; the others exit with the same code, silently. Anything else that goes
    wrong is the last resort's: one line naming it and the step it happened in, exit code 1
    (PSA_DEBUG=1 shows the traceback)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    say = is_main_process()
    try:
        code = main()
    except PsaError as err:
        if say:
            err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        if say:
            err_console.print("[yellow]interrupted: finished outputs are kept; run the same command again to "
                              "resume[/]")
        sys.exit(130)
    except Exception as err:
        # StopRequested without importing the trainer (torch) up front: a recipe typo is
        # reported in a fraction of a second; only a run that imported the trainer can raise it
        trainer = sys.modules.get("psa.engine.trainer")
        if trainer is not None and isinstance(err, trainer.StopRequested):
            if say:
                err_console.print(f"[yellow]{escape(str(err))}[/]", highlight=False)
            sys.exit(130)
        if os.environ.get("PSA_DEBUG"):
            raise
        if say:
            where = f" in step {STEP[0]}" if STEP[0] else ""
            first = (str(err).strip().splitlines() or [""])[0]
            err_console.print(f"[bold red]error:[/] unexpected {type(err).__name__}{escape(where)}: {escape(first)} "
                              "(a bug or an unforeseen input: PSA_DEBUG=1 shows the traceback)",
                              highlight=False, soft_wrap=True)
        sys.exit(1)
    finally:
        run_lock.release_all()
    sys.exit(code or 0)


class PlainProgress:
    """Progress as text lines: "train cam: 40/100 (40%) loss 0.31, 1m05s elapsed, ETA 1m38s"."""

    def __init__(self, description: str, total: int, completed: int, every: float, clock: Callable[[], float]):
        self.description, self.total, self.every, self.clock = description, total, every, clock
        self.first = self.completed = completed
        self.info = ""
        self.started = self.printed = clock()

    def update(self, completed: int, info: str = "") -> str | None:
        """The line to print when `every` seconds passed since the last one, else None."""
        self.completed, self.info = completed, info
        now = self.clock()
        if now - self.printed < self.every:
            return None
        self.printed = now
        return self.line(now)

    def last(self) -> str:
        return self.line(self.clock(), done=True)

    def line(self, now: float, done: bool = False) -> str:
        elapsed = now - self.started
        share = f" ({100 * self.completed / self.total:.0f}%)" if self.total else ""
        text = f"{self.description}: {self.completed}/{self.total}{share}" + (f" {self.info}" if self.info else "")
        text += f", {_duration(elapsed)} elapsed"
        progress = self.completed - self.first
        if not done and progress > 0 and self.total:
            text += f", ETA {_duration(elapsed / progress * max(self.total - self.completed, 0))}"
        return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def metrics_table(metrics: dict, title: str) -> Table:
    """Per-class IoU / precision / recall / F1, then the means."""
    table = Table(title=escape(title))
    for column in ("class", "IoU", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, iou in metrics["iou"].items():
        table.add_row(escape(name), percent(iou), percent(metrics["precision"][name]), percent(metrics["recall"][name]),
                      percent(metrics["f1"][name]))
    table.add_section()
    table.add_row("[bold]mIoU[/]", f"[bold]{percent(metrics['miou'])}[/]", "", "", "")
    table.add_row("pixel accuracy", percent(metrics["pixel_acc"]), "", "", "")
    return table


def ap_table(metrics: dict, title: str) -> Table:
    """Per-class average precision of a classifier, then mAP and F1."""
    table = Table(title=escape(title))
    table.add_column("class")
    table.add_column("AP %", justify="right")
    for name, ap in metrics["ap"].items():
        table.add_row(escape(name), percent(ap))
    table.add_section()
    table.add_row("[bold]mAP[/]", f"[bold]{percent(metrics['mAP'])}[/]")
    table.add_row("F1 (micro, p ≥ 0.5)", percent(metrics["f1"]))
    return table


def key_value_table(title: str, rows: list[tuple[str, object]]) -> Table:
    table = Table(title=escape(title), show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key, value in rows:
        table.add_row(escape(str(key)), escape(str(value)))
    return table
