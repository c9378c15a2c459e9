"""psa: weakly supervised semantic segmentation with pixel-level semantic affinity.

    import psa
    recipe = psa.load_recipe("recipes/demo.yaml", ["run.dir=runs/x"])
    run = psa.load_run("runs/demo")          # a finished run
    mask = run.predict("photo.jpg").label    # (H, W) class indices
"""

from .version import __version__  # noqa: F401


def load_recipe(path, overrides=()):
    """A recipe file with `key=value` overrides, its methods loaded, checked (psa/framework/recipes.py)."""
    from .framework.recipes import load_recipe as load  # torch-free, but only when asked for

    return load(path, overrides)


def load_run(folder, device=None):
    """A finished run by its folder: `.predict(image)`, `.predict_folder(images, out)` (psa/framework/loaded_run.py)."""
    from .framework.loaded_run import load_run as load

    return load(folder, device)
