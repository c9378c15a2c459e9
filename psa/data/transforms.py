"""Joint image / mask transforms with the reference's defaults.

Images are uint8 H×W×3 numpy arrays until `normalize` turns them into float32 (3, H, W)
tensors; masks are uint8 H×W (numpy, or a tensor for the crop) and may be None everywhere.
All randomness comes from torch's global RNG, so `torch.manual_seed`,
`accelerate.set_seed` and DataLoader worker seeding make a run reproducible.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..constants import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD
from ..errors import PsaError

Fill = Union[float, Sequence[float]]


def _randint(low: int, high: int) -> int:
    """Uniform integer in [low, high] (both inclusive)."""
    return int(torch.randint(low, high + 1, (1,)).item())


def _resize(image: np.ndarray, mask: Optional[np.ndarray], height: int, width: int):
    height, width = max(1, int(height)), max(1, int(width))
    if image.shape[:2] != (height, width):
        image = np.array(Image.fromarray(image).resize((width, height), Image.BICUBIC))
    if mask is not None and mask.shape[:2] != (height, width):
        mask = np.array(Image.fromarray(np.asarray(mask, dtype=np.uint8)).resize(
            (width, height), Image.NEAREST))
    return image, mask


def random_resize_long(image: np.ndarray, mask: Optional[np.ndarray], lo: int, hi: int):
    """Resize so the long side is a uniform integer in [lo, hi], keeping the aspect ratio
    (bicubic image, nearest mask). The reference's `RandomResizeLong`."""
    target = _randint(int(lo), int(hi))
    height, width = image.shape[:2]
    if width >= height:
        size = (int(round(height * target / width)), target)
    else:
        size = (target, int(round(width * target / height)))
    return _resize(image, mask, *size)


def random_scale(image: np.ndarray, mask: Optional[np.ndarray], lo: float, hi: float):
    """Scale both sides by one factor drawn uniformly from [lo, hi]."""
    factor = float(lo) + (float(hi) - float(lo)) * float(torch.rand(1).item())
    height, width = image.shape[:2]
    return _resize(image, mask, round(height * factor), round(width * factor))


def random_hflip(image: np.ndarray, mask: Optional[np.ndarray], p: float = 0.5):
    """Mirror image and mask together with probability p (one draw per call)."""
    if float(torch.rand(1).item()) < p:
        image = np.ascontiguousarray(image[:, ::-1])
        if mask is not None:
            mask = np.ascontiguousarray(mask[:, ::-1])
    return image, mask


def color_jitter(image: np.ndarray, params: Sequence[float]) -> np.ndarray:
    """torchvision ColorJitter(brightness, contrast, saturation, hue) on the uint8 RGB image;
    all-zero params return the image unchanged."""
    values = [float(v) for v in params]
    if len(values) != 4:
        raise PsaError(f"color_jitter needs 4 values [brightness, contrast, saturation, hue], "
                       f"got {list(params)}")
    if not any(values):
        return image
    from torchvision.transforms import ColorJitter

    jitter = ColorJitter(brightness=values[0], contrast=values[1], saturation=values[2], hue=values[3])
    return np.array(jitter(Image.fromarray(image)), dtype=np.uint8)


def normalize(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 → float32 (3, H, W): /255, then ImageNet mean / std."""
    array = np.ascontiguousarray(image, dtype=np.uint8)
    if not array.flags.writeable:
        array = array.copy()
    tensor = torch.from_numpy(array).permute(2, 0, 1).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return tensor.sub_(mean).div_(std).contiguous()


def denormalize(image: torch.Tensor) -> np.ndarray:
    """`normalize`'s inverse for pictures: (3, H, W) normalised tensor → uint8 H×W×3."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    rgb = (image.float() * std + mean).clamp(0, 1) * 255
    return rgb.permute(1, 2, 0).round().byte().cpu().numpy()


def normalized_fill(value_rgb: Union[float, Sequence[float]] = 0) -> tuple[float, float, float]:
    """The per-channel value a given RGB pixel has after `normalize` (RGB 0 → about -2)."""
    rgb = [float(value_rgb)] * 3 if np.isscalar(value_rgb) else [float(v) for v in value_rgb]
    return tuple((v / 255.0 - m) / s for v, m, s in zip(rgb, IMAGENET_MEAN, IMAGENET_STD))


def _canvas(channels: int, height: int, width: int, fill: Fill, like: torch.Tensor) -> torch.Tensor:
    fill_t = torch.as_tensor(fill, dtype=like.dtype)
    if fill_t.ndim == 0:
        return torch.full((channels, height, width), float(fill_t), dtype=like.dtype)
    if fill_t.numel() != channels:
        raise ValueError(f"fill has {fill_t.numel()} values for {channels} channels")
    return fill_t.view(channels, 1, 1).expand(channels, height, width).clone()


def random_crop(image_t: torch.Tensor, mask, size: int, fill: Fill = 0.0):
    """A random size×size window of a (3, H, W) tensor and its mask, the reference's crop:
    per axis, a side longer than `size` is cropped at a random offset, a shorter one is placed
    at a random offset in a canvas of `fill` (mask canvas 255). Returns (image, mask); the mask
    keeps its type (tensor or numpy) and may be None."""
    channels, height, width = image_t.shape
    top_img = top_box = left_img = left_box = 0
    if height > size:
        top_img = _randint(0, height - size)
    else:
        top_box = _randint(0, size - height)
    if width > size:
        left_img = _randint(0, width - size)
    else:
        left_box = _randint(0, size - width)
    h, w = min(size, height), min(size, width)

    out = _canvas(channels, size, size, fill, image_t)
    out[:, top_box:top_box + h, left_box:left_box + w] = image_t[:, top_img:top_img + h, left_img:left_img + w]
    if mask is None:
        return out, None
    if isinstance(mask, torch.Tensor):
        out_mask = torch.full((size, size), IGNORE_INDEX, dtype=mask.dtype)
    else:
        out_mask = np.full((size, size), IGNORE_INDEX, dtype=np.asarray(mask).dtype)
    out_mask[top_box:top_box + h, left_box:left_box + w] = mask[top_img:top_img + h, left_img:left_img + w]
    return out, out_mask


def pad_to_multiple(image_t: torch.Tensor, multiple: int = 8, fill: Fill = 0.0) -> torch.Tensor:
    """Pad the bottom and right of a (..., C, H, W) tensor up to multiples of `multiple`."""
    height, width = image_t.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if not pad_h and not pad_w:
        return image_t
    fill_t = torch.as_tensor(fill, dtype=image_t.dtype)
    if fill_t.ndim == 0:
        return F.pad(image_t, (0, pad_w, 0, pad_h), value=float(fill_t))
    shape = list(image_t.shape)
    shape[-2], shape[-1] = height + pad_h, width + pad_w
    out = fill_t.to(image_t.device).view(-1, 1, 1).expand(*shape).clone()
    out[..., :height, :width] = image_t
    return out


def downsample_label(label, stride: int = 8):
    """Reduce a full-resolution label map (uint8 H×W, 255 = unknown) to stride `stride`.

    Rule: the output has shape (ceil(H/stride), ceil(W/stride)); each output pixel is the most
    frequent value in its stride×stride input block, where 255 counts as a value like any
    other, and incomplete blocks at the bottom / right are padded with 255. Ties go to the
    smallest value, so a class beats 255 and the background beats a class on a tie.

    Why: the reference average-pools the soft (per-class score) labels by `stride` and then
    takes the argmax; the majority vote over hard labels approximates that, and treating 255
    as a value keeps blocks that are mostly uncertain (or outside the crop) uncertain.

    Returns the same kind as the input (torch tensor or numpy array), uint8.
    """
    is_tensor = isinstance(label, torch.Tensor)
    array = label.detach().cpu().numpy() if is_tensor else np.asarray(label)
    if array.ndim != 2:
        raise ValueError(f"label must be H×W, got shape {array.shape}")
    array = array.astype(np.uint8, copy=False)
    height, width = array.shape
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    padded = np.full((out_h * stride, out_w * stride), IGNORE_INDEX, dtype=np.uint8)
    padded[:height, :width] = array
    blocks = padded.reshape(out_h, stride, out_w, stride).transpose(0, 2, 1, 3).reshape(out_h * out_w, -1)
    keys = blocks.astype(np.int64) + 256 * np.arange(out_h * out_w, dtype=np.int64)[:, None]
    counts = np.bincount(keys.ravel(), minlength=256 * out_h * out_w).reshape(out_h * out_w, 256)
    result = counts.argmax(axis=1).astype(np.uint8).reshape(out_h, out_w)
    return torch.from_numpy(result) if is_tensor else result
