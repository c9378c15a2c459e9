"""Which training images carry labels, for semi-supervised tasks.

Either a list file of labelled ids, or a seeded fraction of the split. The split chosen is
written to the run directory, so a run can be reproduced or continued with exactly the same
labelled images. Every id of the split that is not labelled is unlabelled.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..config import LabeledConfig
from ..errors import PsaError
from ..io import atomic_write_text
from .base import SegmentationSource


@dataclass
class LabeledSplit:
    labeled: list[int]  # indices into the source, in source order
    unlabeled: list[int]


def choose_labeled(ids: list[str], cfg: LabeledConfig, key: str,
                   image_labels: Optional[Callable[[int], list[int]]] = None) -> LabeledSplit:
    """Pick the labelled images of `ids` by `cfg.list_file`, else by `cfg.fraction` (seeded,
    stratified by `image_labels(index)` -> class ids when `cfg.stratify`). `key` is the recipe
    section (e.g. "cps.labeled"), named in errors."""
    if cfg.list_file:
        wanted = _read_list(Path(cfg.list_file), f"{key}.list_file")
        position = {image_id: i for i, image_id in enumerate(ids)}
        unknown = [image_id for image_id in wanted if image_id not in position]
        if unknown:
            raise PsaError(f"{key}.list_file {cfg.list_file}: id {unknown[0]!r} is not in the training split "
                           f"({len(unknown)} unknown ids)")
        chosen = {position[image_id] for image_id in wanted}
    else:
        count = round(cfg.fraction * len(ids))
        if count < 1:
            raise PsaError(f"recipe key '{key}.fraction'={cfg.fraction} labels no image of {len(ids)}")
        if cfg.stratify:
            if image_labels is None:
                raise PsaError(f"recipe key '{key}.stratify': this task has no image labels to stratify by")
            chosen = set(stratified_sample([image_labels(i) for i in range(len(ids))], count, cfg.seed))
        else:
            chosen = set(random.Random(cfg.seed).sample(range(len(ids)), count))
    labeled = sorted(chosen)
    unlabeled = [i for i in range(len(ids)) if i not in chosen]
    return LabeledSplit(labeled, unlabeled)


STRATIFY_DRAWS = 1000  # seeded uniform draws that stratified_sample chooses from


def stratified_sample(labels: list[list[int]], count: int, seed: int) -> list[int]:
    """`count` indices of `labels` (each image's class ids) such that every class is labelled
    about `count / len(labels)` × its number of images: of `STRATIFY_DRAWS` seeded uniform
    draws, the one whose per-class counts are nearest (L1) to those quotas. Uniform draws keep
    the number of classes per image as the split has it, which a greedy pick by class would
    bend (towards images with many classes, or few) and with it every class's share."""
    classes = sorted({c for image in labels for c in image})
    column = {c: j for j, c in enumerate(classes)}
    members = np.zeros((len(labels), len(classes)))
    for i, image in enumerate(labels):
        members[i, [column[c] for c in set(image)]] = 1.0
    quota = members.sum(0) * count / len(labels)
    rng = np.random.default_rng(seed)
    best, best_error = None, np.inf
    for _ in range(STRATIFY_DRAWS):
        draw = rng.choice(len(labels), count, replace=False)
        error = np.abs(members[draw].sum(0) - quota).sum()
        if error < best_error:
            best, best_error = draw, error
    return sorted(int(i) for i in best)


def write_split(folder: Path, ids: list[str], split: LabeledSplit) -> None:
    """labeled.txt and unlabeled.txt (one id a line) in `folder`, atomically."""
    for name, indices in (("labeled.txt", split.labeled), ("unlabeled.txt", split.unlabeled)):
        atomic_write_text(folder / name, "".join(f"{ids[i]}\n" for i in indices))


def _read_list(path: Path, key: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise PsaError(f"recipe key '{key}': cannot read {path}: {err.strerror or err}") from None
    wanted = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not wanted:
        raise PsaError(f"recipe key '{key}': {path} lists no image id")
    if len(set(wanted)) != len(wanted):
        raise PsaError(f"recipe key '{key}': {path} lists an id twice")
    return wanted


class SourceSubset(SegmentationSource):
    """The images `indices` of a source, as a source of their own: a task then checks and
    loads only the labelled (or only the unlabelled) images."""

    def __init__(self, source: SegmentationSource, indices: list[int]):
        self.source = source
        self.indices = list(indices)
        self.ids = [source.ids[i] for i in self.indices]
        self.classes = source.classes
        if hasattr(source, "image_path"):  # file-backed: check_files reads the files
            self.image_path = lambda index: source.image_path(self.indices[index])

    @property
    def has_masks(self) -> bool:
        return self.source.has_masks

    def load_image(self, index: int):
        return self.source.load_image(self.indices[index])

    def load_mask(self, index: int):
        return self.source.load_mask(self.indices[index])

    def image_labels(self, index: int):
        return self.source.image_labels(self.indices[index])

    def image_size(self, index: int) -> tuple[int, int]:
        return self.source.image_size(self.indices[index])
