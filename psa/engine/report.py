"""How long-running library code reports progress without printing.

The engine and stages call a `Reporter`; the command-line tools pass one that draws rich
progress bars on the main process. Library callers (tests, notebooks) get the silent one.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("psa")


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
