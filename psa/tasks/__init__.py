"""The trainable stages, each a `TaskSpec` builder for the shared engine."""

from __future__ import annotations

from typing import Callable

from ..config import Recipe
from ..engine.trainer import TaskSpec


def task_builder(name: str) -> Callable[[Recipe], TaskSpec]:
    from .affinity import build_affinity_task
    from .cam import build_cam_task
    from .cps import build_cps_task
    from .seg import build_seg_task

    return {"cam": build_cam_task, "affinity": build_affinity_task, "seg": build_seg_task, "cps": build_cps_task}[name]
