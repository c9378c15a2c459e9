"""Recipe sections registered by the methods that read them.

The core schema (schema.py) holds what every run has: run, data, model, crf, mask_crf, eval,
pipeline. A method adds its own sections (`irn`, or `cam.fixmatch` inside another section)
with `register_section` from its package's `__init__`, and its cross-section checks with
`register_check`. `recipe_class()` composes the Recipe dataclass from the core and every
registered section, so the generic loader types and checks a method's keys like the core's.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

from .loader import build_unchecked
from .schema import Recipe

_SECTIONS: dict[str, type] = {}  # dotted path -> dataclass, in registration order
_CHECKS: list[Callable[[Any], None]] = []
_COMPOSED: dict[str, type] = {}  # "" (the recipe) or a section path -> its composed class


def register_section(path: str, cls: type) -> None:
    """Add the section `cls` at `path` ("irn", or "cam.fixmatch" inside a registered section).
    Registering the same class again is a no-op (a package imported twice)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"section {path!r}: {cls!r} is not a dataclass")
    parent, _, name = path.rpartition(".")
    if _SECTIONS.get(path) is cls:
        return
    taken = path in _SECTIONS or (not parent and name in {f.name for f in dataclasses.fields(Recipe)})
    if taken:
        raise ValueError(f"recipe section {path!r} is registered twice")
    if parent and parent not in _SECTIONS:
        raise ValueError(f"recipe section {path!r}: its parent section {parent!r} is not registered")
    _SECTIONS[path] = cls
    _COMPOSED.clear()


def register_check(check: Callable[[Any], None]) -> None:
    """A check across sections, `check(recipe)` raising PsaError, run once a recipe is built."""
    if check not in _CHECKS:
        _CHECKS.append(check)


def registered_sections() -> dict[str, type]:
    return dict(_SECTIONS)


def run_checks(recipe) -> None:
    for check in _CHECKS:
        check(recipe)


def recipe_class() -> type:
    """The Recipe with every registered section: the core fields, then the methods' sections
    in the order their packages registered them (which is also the order a recipe dumps)."""
    return _composed("")


def _composed(path: str) -> type:
    if path in _COMPOSED:
        return _COMPOSED[path]
    base = Recipe if not path else _SECTIONS[path]
    prefix = f"{path}." if path else ""
    children = [child for child in _SECTIONS if child.rpartition(".")[0] == path and child.startswith(prefix)]
    if not children:
        _COMPOSED[path] = base
        return base
    fields = [(child.rpartition(".")[2], _composed(child), dataclasses.field(default_factory=_composed(child)))
              for child in children]
    name = base.__name__
    cls = dataclasses.make_dataclass(name, fields, bases=(base, _Composed), namespace={"_path": path})
    cls.__module__, cls.__qualname__ = base.__module__, name
    _COMPOSED[path] = cls
    return cls


class _Composed:
    """A composed class pickles by its registered path and values (a spawned process rebuilds
    it after importing the packages that registered the sections)."""

    _path: str = ""

    def __reduce__(self):
        sections = [(path, cls.__module__, cls.__qualname__) for path, cls in _SECTIONS.items()]
        return _rebuild, (self._path, sections, dataclasses.asdict(self))


def _rebuild(path: str, sections: list[tuple[str, str, str]], values: dict):
    for section, module, name in sections:
        register_section(section, getattr(importlib.import_module(module), name))
    return build_unchecked(_composed(path), values)

