"""psa: weakly supervised semantic segmentation with pixel-level semantic affinity."""

__version__ = "0.1.0"
