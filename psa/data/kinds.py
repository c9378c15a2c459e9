"""Data kinds: each layout registers, from its own module, how a recipe's `data` section
builds one of its splits, what of the section identifies its content in every provenance
record, and its own checks of the section. `data.kind` names one."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import DataConfig
from ..errors import PsaError


@dataclass(frozen=True)
class DataKind:
    name: str
    build: Callable[[DataConfig, str], object]  # (data section, split) -> SegmentationSource
    # what identifies the data beyond each split's ids, classes and files: {"data.root": ...}
    identity: Callable[[DataConfig], dict]
    check: Callable[[DataConfig], None] = lambda data: None  # the kind's own key checks


KINDS: dict[str, DataKind] = {}


def register_kind(kind: DataKind) -> DataKind:
    if kind.name in KINDS and KINDS[kind.name] is not kind:
        raise ValueError(f"data kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def kind_of(data: DataConfig) -> DataKind:
    if data.kind not in KINDS:
        close = difflib.get_close_matches(str(data.kind), list(KINDS), n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise PsaError(f"recipe key 'data.kind' must be one of {', '.join(sorted(KINDS))}, got {data.kind!r}{hint}")
    return KINDS[data.kind]


def data_identity(data: DataConfig) -> dict:
    """What every record holds of the data section beyond the splits' files: the kind, the
    kind's own identity, and the load-time scaling."""
    identity = {"data.kind": data.kind, **kind_of(data).identity(data)}
    if data.max_size:  # images scaled down on reading (psa/data/resized.py)
        identity["data.max_size"] = data.max_size
    return identity


def check_data(recipe) -> None:
    """The recipe check of the data section: a registered kind, and that kind's own checks."""
    kind_of(recipe.data).check(recipe.data)


def root_identity(data: DataConfig) -> dict:
    """A layout on disk: its root folder, resolved."""
    return {"data.root": str(Path(data.root).expanduser().resolve())}
