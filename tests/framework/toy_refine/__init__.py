"""A toy refinement method, kept outside psa/ to show that a method is a folder: its pseudo
masks are the CAMs' argmax against the background score (1 - max CAM) ** toy.alpha, with no
walk. docs/extending.md walks through these two files; tests/framework/test_registry.py
loads them with the recipe key `methods`."""

from dataclasses import dataclass

from psa.config.loader import require


@dataclass
class ToyConfig:
    alpha: float = 16.0  # the background score's exponent

    def check(self, key: str) -> None:
        require(self.alpha > 0, f"{key}.alpha", f"must be > 0, got {self.alpha}")


ORDER = 25  # after the CAM stage (10) and AffinityNet's walk (20), before the segmentation network
SECTIONS = {"toy": ToyConfig}
