"""psa: weakly supervised semantic segmentation with pixel-level semantic affinity.

    import psa
    recipe = psa.load_recipe("recipes/demo.yaml", ["run.dir=runs/x"])
"""

from .version import __version__  # noqa: F401


def load_recipe(path, overrides=()):
    """A recipe file with `key=value` overrides, its methods loaded, checked (psa/framework/recipes.py)."""
    from .framework.recipes import load_recipe as load  # torch-free, but only when asked for

    return load(path, overrides)
