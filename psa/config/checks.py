"""Range checks several sections share, each written once."""

from __future__ import annotations

from .loader import require


def check_crop(size: int, key: str) -> None:
    require(size >= 16 and size % 8 == 0, key, f"must be a multiple of 8 (>= 16), got {size}")


def check_jitter(jitter: list[float], key: str) -> None:
    require(len(jitter) == 4, key, "must be [brightness, contrast, saturation, hue]")


def check_interval(pair: list, key: str) -> None:
    require(len(pair) == 2 and 0 < pair[0] <= pair[1], key, "must be [min, max] with 0 < min <= max")


def check_scales(scales: list[float], key: str) -> None:
    require(len(scales) >= 1 and all(s > 0 for s in scales), key, "must be positive numbers")


def check_walk(section, key: str) -> None:
    """A random walk's radius, log2 of its steps and its affinity exponent beta."""
    require(section.radius >= 2, f"{key}.radius", f"must be >= 2, got {section.radius}")
    require(section.logt >= 0, f"{key}.logt", f"must be >= 0, got {section.logt}")
    require(section.beta > 0, f"{key}.beta", "must be > 0")
