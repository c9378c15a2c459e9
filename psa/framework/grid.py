"""A grid of recipe overrides: `key=v1,v2` items are axes, `key=value` items fixed overrides
(what `psa sweep` and `psa tune` take), and the recipe of each point of the grid."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..config import Recipe
from ..errors import PsaError


@dataclass(frozen=True)
class Axis:
    key: str
    values: tuple[str, ...]  # as typed: each becomes a `key=value` override


@dataclass(frozen=True)
class Point:
    name: str  # its folder under the sweep folder, e.g. "beta=4,logt=2"
    values: dict  # {key: value as typed}
    recipe: Recipe


def split_values(text: str) -> list[str]:
    """'4,8' → ['4', '8']; commas inside brackets belong to a value: '[1,0.5],[1]' → 2 values."""
    values, depth, current = [], 0, ""
    for char in text:
        if char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        if char == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += char
    values.append(current)
    return [v.strip() for v in values]


def parse_grid(items: list[str]) -> tuple[list[Axis], list[str]]:
    """`key=v1,v2` items are axes; `key=value` items (one value) are fixed overrides."""
    axes, fixed = [], []
    for item in items:
        if "=" not in item:
            raise PsaError(f"grid argument {item!r} must look like key=v1,v2 (or key=value)")
        key, text = item.split("=", 1)
        values = split_values(text)
        if len(values) > 1:
            if any(not v for v in values):
                raise PsaError(f"grid axis {key}: empty value in {text!r}")
            if len(set(values)) != len(values):
                raise PsaError(f"grid axis {key}: a value is repeated in {text!r}")
            if key in {a.key for a in axes}:
                raise PsaError(f"grid axis {key} is given twice")
            axes.append(Axis(key.strip(), tuple(values)))
        else:
            fixed.append(item)
    if not axes:
        raise PsaError("a grid needs at least one axis: key=v1,v2 (e.g. random_walk.beta=4,8)")
    return axes, fixed


def short_names(axes: list[Axis]) -> dict[str, str]:
    """Short names for folder names: the last part of each key, unless two axes share it."""
    short = {a.key: a.key.rsplit(".", 1)[-1] for a in axes}
    if len(set(short.values())) < len(short):
        return {a.key: a.key for a in axes}
    return short


def combinations(axes: list[Axis]) -> list[dict]:
    """Every point of the grid: {key: value as typed}, the last axis varying fastest."""
    return [dict(zip((a.key for a in axes), combo)) for combo in itertools.product(*(a.values for a in axes))]
