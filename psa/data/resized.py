"""`data.max_size`: any source seen with its long side capped, images bilinear, masks nearest.

Every stage (training, export, random walk, evaluation) reads through the same wrapper, so
CAMs, pseudo masks and ground truth always share one size."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from .base import SegmentationSource


def capped_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(H, W) scaled so that max(H, W) <= max_size; unchanged when already small enough."""
    longest = max(height, width)
    if max_size <= 0 or longest <= max_size:
        return height, width
    scale = max_size / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


class ResizedSource(SegmentationSource):
    def __init__(self, inner: SegmentationSource, max_size: int):
        self.inner = inner
        self.max_size = max_size
        self.classes = inner.classes
        self.classes_from = inner.classes_from
        self.ids = inner.ids

    def __getattr__(self, name: str):  # image_path, mask_path, ... of the wrapped layout
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def has_masks(self) -> bool:
        return self.inner.has_masks

    def identity(self) -> dict:
        return self.inner.identity()

    def image_size(self, index: int) -> tuple[int, int]:
        return capped_size(*self.inner.image_size(index), self.max_size)

    def _resize(self, array: np.ndarray, resample) -> np.ndarray:
        height, width = capped_size(*array.shape[:2], self.max_size)
        if (height, width) == array.shape[:2]:
            return array
        return np.ascontiguousarray(np.asarray(Image.fromarray(array).resize((width, height), resample)))

    def load_image(self, index: int) -> np.ndarray:
        return self._resize(self.inner.load_image(index), Image.BILINEAR)

    def load_mask(self, index: int) -> np.ndarray:
        return self._resize(self.inner.load_mask(index), Image.NEAREST)

    @property
    def has_instances(self) -> bool:
        return self.inner.has_instances

    def load_instances(self, index: int):
        """Each instance's mask resized as the class masks are (nearest)."""
        found = self.inner.load_instances(index)
        masks = np.stack([self._resize(m.astype(np.uint8), Image.NEAREST) > 0 for m in found.masks]) \
            if len(found.masks) else np.zeros((0, *self.image_size(index)), dtype=bool)
        return dataclasses.replace(found, masks=masks)

    def image_labels(self, index: int) -> np.ndarray:
        return self.inner.image_labels(index)

    def content_identity(self) -> dict[str, str]:
        return self.inner.content_identity()

    def __repr__(self) -> str:
        return f"{self.inner!r} (long side <= {self.max_size})"
