"""Method packages: found, not listed.

A method is a package. Its `__init__` is light (no torch) and declares:

- `ORDER`: where its steps go among steps that may run at the same time (cam 10, affinity 20,
  irn 30, seg 40, cps 50; 100 if absent);
- `SECTIONS`: {recipe path: dataclass}, the recipe sections it reads ("irn", "cam.fixmatch");
- `CHECKS` (optional): recipe-level checks, `check(recipe)` raising PsaError.

Its `steps` module registers its steps and everything else it adds to the registry; it is
imported the first time the registry is looked at. The built-in methods are the
sub-packages of `psa.methods`; a recipe's `methods` key adds more: a module name on the
Python path, or a package folder (absolute, or relative to the recipe file).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Iterable, Optional

from ..config.sections import register_check, register_section
from ..errors import PsaError

BUILTIN = "psa.methods"  # a package name, imported by name: the core imports no method
DEFAULT_ORDER = 100

_packages: dict[str, object] = {}  # module name -> package, in load order
_stepped: set[str] = set()


def _register(package) -> None:
    name = package.__name__
    if name in _packages:
        return
    for path, cls in getattr(package, "SECTIONS", {}).items():
        register_section(path, cls)
    for check in getattr(package, "CHECKS", ()):
        register_check(check)
    _packages[name] = package


def order_of(package) -> int:
    return int(getattr(package, "ORDER", DEFAULT_ORDER))


def load_builtin() -> None:
    """Import every sub-package of psa.methods (light), registering their sections in ORDER."""
    if any(name.startswith(BUILTIN + ".") for name in _packages):
        return
    root = importlib.import_module(BUILTIN)
    found = [importlib.import_module(f"{BUILTIN}.{info.name}")
             for info in pkgutil.iter_modules(root.__path__) if info.ispkg]
    for package in sorted(found, key=lambda p: (order_of(p), p.__name__)):
        _register(package)


def load_extra(entries: Iterable[str], base: Optional[Path] = None) -> list[str]:
    """Import the methods a recipe's `methods` key names; → their entries as the recipe should
    keep them (folders made absolute, so a run's recipe.yaml loads from anywhere)."""
    kept = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.strip():
            raise PsaError(f"recipe key 'methods' must list module names or package folders, got {entry!r}")
        folder = Path(entry).expanduser()
        if not folder.is_absolute() and base is not None and (base / folder).is_dir():
            folder = base / folder
        if folder.is_dir() or "/" in entry or entry.endswith(".py"):
            if not (folder / "__init__.py").is_file():
                raise PsaError(f"recipe key 'methods': {entry} is not a package folder (no __init__.py)")
            folder = folder.resolve()
            if str(folder.parent) not in sys.path:
                sys.path.insert(0, str(folder.parent))
            module, kept_entry = folder.name, str(folder)
        else:
            module, kept_entry = entry, entry
        try:
            package = importlib.import_module(module)
        except ImportError as err:
            raise PsaError(f"recipe key 'methods': cannot import {entry}: {err}") from None
        _register(package)
        kept.append(kept_entry)
    return kept


def import_steps(registry) -> None:
    """Import the `steps` module of every loaded method not imported yet, each inside
    `registry.registering(...)` so its steps carry the method's name and ORDER."""
    load_builtin()
    for name, package in sorted(_packages.items(), key=lambda item: order_of(item[1])):
        if name in _stepped:
            continue
        _stepped.add(name)
        if importlib.util.find_spec(f"{name}.steps") is None:
            continue
        with registry.registering(name.rpartition(".")[2], order_of(package)):
            importlib.import_module(f"{name}.steps")


def loaded() -> list[str]:
    """The loaded method packages' names."""
    return list(_packages)
