"""Generic recipe loading: YAML files with `_base_` inheritance and `key=value` overrides,
built into any tree of dataclasses whose type hints say how each value is read.

Knows nothing about psa's sections (schema.py): a class takes part by its field types
(bool, int, float, str, Optional, list[T], Literal[...], nested dataclasses) and, for the
checks the types cannot express, a `check(self, key)` method, which the loader calls once
the whole tree is built, with `key` the section's dotted name ("" for the root).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import stat
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ..errors import PsaError

T = TypeVar("T")


def load(path: str | os.PathLike, overrides: list[str] | tuple[str, ...], cls: type[T]) -> T:
    """Read `path` (with its `_base_` chain), apply `key=value` overrides, build and check `cls`."""
    return build(cls, load_raw(path, overrides))


def load_raw(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """The mapping `path` (with its `_base_` chain) and the `key=value` overrides make, untyped."""
    raw = _load_with_bases(Path(path), chain=())
    for item in overrides:
        key, value = _parse_override(item)
        _set_dotted(raw, key, value)
    return raw


def build(cls: type[T], raw: Any) -> T:
    """A checked `cls` from a mapping: typed values, then every section's `check`."""
    root = _build(cls, raw, prefix="")
    _check_tree(root, "")
    return root


def build_unchecked(cls: type[T], raw: Any) -> T:
    """A typed `cls` from a mapping made by a checked one (`to_dict`): no check runs again."""
    return _build(cls, raw, prefix="")


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def dump(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False)


def require(condition: bool, key: str, message: str) -> None:
    """For `check` methods: the one-line error every recipe check raises, naming its key."""
    if not condition:
        raise PsaError(f"recipe key '{key}' {message}")


# ----------------------------------------------------------------------------- files


def _read_yaml(path: Path) -> dict:
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or a device would block or never end
            raise PsaError(f"cannot read recipe {path}: not a regular file")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PsaError(f"recipe file not found: {path}") from None
    except OSError as err:
        raise PsaError(f"cannot read recipe {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise PsaError(f"cannot read recipe {path}: not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise PsaError(f"invalid YAML in {path}{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PsaError(f"recipe {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def _load_with_bases(path: Path, chain: tuple[Path, ...]) -> dict:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise PsaError(f"_base_ inheritance cycle: {cycle}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list):
        raise PsaError(f"_base_ in {path} must be a file name or a list of them")
    merged: dict = {}
    for base in bases:
        base_path = path.parent / str(base)  # relative to the including file
        if not base_path.is_file():
            raise PsaError(f"_base_ file not found: {base} (from {path})")
        merged = _deep_merge(merged, _load_with_bases(base_path, (*chain, resolved)))
    return _deep_merge(merged, data)


def _deep_merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise PsaError(f"override {item!r} must look like key=value (e.g. train.lr=0.01)")
    key, text = item.split("=", 1)
    key = key.strip()
    if not key:
        raise PsaError(f"override {item!r} has an empty key")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text  # not YAML: keep the string; the schema decides whether that is valid
    return key, value


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


# ------------------------------------------------------------------------- typing


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise PsaError(f"recipe key '{prefix.rstrip('.') or 'root'}' must be a section (mapping), got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if key not in fields:
            renamed = getattr(cls, "RENAMED", {}).get(key)
            if renamed is not None:
                raise PsaError(f"recipe key '{full}' is now '{prefix}{renamed}'")
            raise PsaError(_unknown_key_message(full, [f"{prefix}{name}" for name in fields]))
        kwargs[key] = _coerce(hints[key], value, full)
    return cls(**kwargs)


def _unknown_key_message(full: str, known: list[str]) -> str:
    close = difflib.get_close_matches(full, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(known))}"
    return f"unknown recipe key '{full}'{hint}"


def _coerce(hint: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        if typing.get_origin(args[0]) is typing.Literal:  # the message lists null as a choice
            return _choice(typing.get_args(args[0]), value, key, nullable=True)
        return _coerce(args[0], value, key)
    if origin is typing.Literal:
        return _choice(typing.get_args(hint), value, key)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _type_error(key, "true or false", value)
    if hint is int:
        if isinstance(value, bool):
            raise _type_error(key, "an integer", value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)  # YAML 1.1 reads 1e3 as a string
            except ValueError:
                raise _type_error(key, "an integer", value) from None
            if number.is_integer():
                return int(number)
        raise _type_error(key, "an integer", value)
    if hint is float:
        if isinstance(value, bool):
            raise _type_error(key, "a number", value)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads 1e-3 as a string
            except ValueError:
                pass
        raise _type_error(key, "a number", value)
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise _type_error(key, "a string", value)
    if hint is list or origin is list:
        if not isinstance(value, (list, tuple)):
            raise _type_error(key, "a list", value)
        # list[float] makes [0.3, 0] the same recipe as [0.3, 0.0] (and its fingerprint)
        item_hint = typing.get_args(hint)[0] if typing.get_args(hint) else None
        return [_coerce(item_hint, item, f"{key}[{i}]") if item_hint else item for i, item in enumerate(value)]
    return value


def _choice(choices: tuple, value: Any, key: str, nullable: bool = False) -> Any:
    # same type as well as equal: True must not pass for a choice 1
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return choice
    names = ", ".join(["null"] * nullable + [str(c) for c in choices])
    raise PsaError(f"recipe key '{key}' must be one of {names}, got {value!r}")


def _type_error(key: str, expected: str, value: Any) -> PsaError:
    return PsaError(f"recipe key '{key}' must be {expected}, got {value!r}")


# ------------------------------------------------------------------------- checks


def _check_tree(obj: Any, key: str) -> None:
    """Children before their parent, so a parent's cross-field check sees valid sections.
    Sections left at their defaults are checked too: a default_factory may set values."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        sub = f"{key}.{f.name}" if key else f.name
        if dataclasses.is_dataclass(value):
            _check_tree(value, sub)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    _check_tree(item, f"{sub}[{i}]")
    check = getattr(obj, "check", None)
    if callable(check):
        check(key)
