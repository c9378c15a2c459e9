"""How long-running library code reports progress without printing.

The engine and stages call a `Reporter`; the command-line tools pass one that draws rich
progress bars on the main process. Library callers (tests, notebooks) get the silent one.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("psa")


def is_main_process() -> bool:
    """Before (or without) an Accelerator: launchers export RANK; a plain run is rank 0."""
    return os.environ.get("RANK", "0") == "0"


class Reporter:
    """Silent by default; subclasses render."""

    def start(self, description: str, total: int, completed: int = 0) -> None:
        pass

    def update(self, completed: int, **fields) -> None:
        pass

    def finish(self) -> None:
        pass

    def log(self, message: str) -> None:
        logger.info(message)

    def step(self, name: str, event: str, detail: str = "") -> None:
        """A pipeline step: event "skip" (done already; detail: its record), "start" (detail:
        why it reruns, "" when it never ran) or "done" (detail: the seconds it took)."""
        logger.info("%s: %s %s", name, event, detail)
