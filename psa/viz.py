"""Pictures a person looks at: coloured label maps, CAM overlays, panels, bar charts, legends.

Everything returns ``uint8`` RGB arrays of shape ``(H, W, 3)``; save them with
``PIL.Image.fromarray(array).save(path)``. Drawing uses PIL only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from psa.constants import VOC_CLASSES, voc_palette

__all__ = [
    "BAR_COLOUR", "colorize_label", "jet", "overlay_cam", "side_by_side", "iou_bar_chart", "legend", "line_chart",
]

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GRID = (220, 220, 220)
BAR_COLOUR = (70, 130, 180)  # every bar of iou_bar_chart, exactly this colour


@lru_cache(maxsize=1)
def _palette_array() -> np.ndarray:
    return np.asarray(voc_palette(), dtype=np.uint8).reshape(256, 3)


@lru_cache(maxsize=1)
def _font() -> Any:
    return ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    left, top, right, bottom = _font().getbbox(text or " ")
    return int(right - min(left, 0)), int(bottom - min(top, 0))


def _line_height() -> int:
    return _text_size("Hgy")[1] + 2


def _fit(text: str, width: int) -> str:
    """``text``, shortened with '..' so that it fits in ``width`` pixels."""
    if _text_size(text)[0] <= width:
        return text
    while text and _text_size(text + "..")[0] > width:
        text = text[:-1]
    return text + ".." if text else ""


def _as_rgb(panel: Any) -> np.ndarray:
    a = np.asarray(panel)
    if a.dtype != np.uint8:
        raise ValueError(f"panels must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"panel must be H x W x 3 (or H x W), got shape {a.shape}")
    return a


def colorize_label(label: Any) -> np.ndarray:
    """``(H, W)`` class-id map -> ``(H, W, 3)`` uint8 in VOC colours (255 -> (224, 224, 192))."""
    a = np.asarray(label)
    if a.ndim != 2:
        raise ValueError(f"label must be H x W, got shape {a.shape}")
    if a.dtype != np.uint8:
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError("label values must lie in 0..255")
        a = a.astype(np.uint8)
    return _palette_array()[a]


def jet(values: Any) -> np.ndarray:
    """Jet-like colormap: float array in [0, 1] (clipped, NaN -> 0) -> uint8 ``(..., 3)``.

    0 is dark blue, 0.5 green-ish, 1 dark red.
    """
    x = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    x = np.clip(x, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4.0 * x - 3.0), 0.0, 1.0)
    g = np.clip(1.5 - np.abs(4.0 * x - 2.0), 0.0, 1.0)
    b = np.clip(1.5 - np.abs(4.0 * x - 1.0), 0.0, 1.0)
    return np.round(np.stack([r, g, b], axis=-1) * 255.0).astype(np.uint8)


def overlay_cam(image: Any, cam: Any, alpha: float = 0.5) -> np.ndarray:
    """Blend a class activation map over an image: ``(1 - alpha) * image + alpha * jet(cam)``.

    Args:
        image: ``(H, W, 3)`` uint8.
        cam: ``(H, W)`` float in [0, 1] (clipped).
        alpha: weight of the colormap, 0.5 by default.
    """
    img = np.asarray(image)
    c = np.asarray(cam)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be uint8 H x W x 3, got {img.dtype} {img.shape}")
    if c.shape != img.shape[:2]:
        raise ValueError(f"cam shape {c.shape} != image size {img.shape[:2]}")
    blend = (1.0 - alpha) * img.astype(np.float64) + alpha * jet(c).astype(np.float64)
    return np.clip(np.round(blend), 0, 255).astype(np.uint8)


def side_by_side(panels: Sequence[Any], titles: Sequence[str] | None = None, gap: int = 4) -> np.ndarray:
    """Panels in a row on a white background, top-aligned, with an optional title above each.

    Width is the sum of panel widths plus ``gap`` between neighbours; height is the tallest
    panel plus one text line when titles are given. Titles too wide for their panel are cut.
    """
    arrays = [_as_rgb(p) for p in panels]
    if not arrays:
        raise ValueError("side_by_side needs at least one panel")
    if titles is not None and len(titles) != len(arrays):
        raise ValueError(f"{len(titles)} titles for {len(arrays)} panels")
    gap = max(int(gap), 0)
    top = _line_height() + 2 if titles is not None else 0
    width = sum(a.shape[1] for a in arrays) + gap * (len(arrays) - 1)
    height = top + max(a.shape[0] for a in arrays)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x = 0
    for a in arrays:
        canvas[top:top + a.shape[0], x:x + a.shape[1]] = a
        x += a.shape[1] + gap
    if titles is not None:
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        x = 0
        for a, title in zip(arrays, titles):
            draw.text((x + 1, 1), _fit(str(title), a.shape[1] - 2), fill=BLACK, font=_font())
            x += a.shape[1] + gap
        canvas = np.asarray(image).copy()
    return canvas


def iou_bar_chart(iou: dict[str, float | None], title: str, width: int = 640) -> np.ndarray:
    """Horizontal bar chart of per-class scores in [0, 1] (values are clipped).

    One row per entry, in dict order: class name, a bar of colour :data:`BAR_COLOUR` whose length
    is proportional to the value, and the value as text (``"n/a"`` and no bar for ``None``/NaN).
    Light vertical grid lines mark 0.25, 0.5, 0.75 and 1.
    """
    names = [str(n) for n in iou]
    line = _line_height()
    row = line + 4
    margin = 6
    name_w = max([_text_size(n)[0] for n in names] + [20]) + 8
    value_w = _text_size("0.000")[0] + 8
    bar_x0 = margin + name_w
    bar_len = int(width) - bar_x0 - value_w - margin
    if bar_len < 10:
        raise ValueError(f"width {width} is too small for the class names")
    top = margin + line + 6
    height = top + row * len(names) + margin

    image = Image.new("RGB", (int(width), height), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((margin, margin), _fit(str(title), int(width) - 2 * margin), fill=BLACK, font=_font())
    y_end = top + row * len(names) - 1
    for frac in (0.25, 0.5, 0.75, 1.0):
        gx = bar_x0 + int(round(frac * bar_len))
        draw.line([(gx, top), (gx, y_end)], fill=GRID)
    draw.line([(bar_x0, top), (bar_x0, y_end)], fill=BLACK)

    for i, name in enumerate(names):
        value = iou[name] if name in iou else None
        y = top + i * row
        draw.text((margin, y + 2), _fit(name, name_w - 8), fill=BLACK, font=_font())
        if value is None or not np.isfinite(value):
            draw.text((bar_x0 + 4, y + 2), "n/a", fill=BLACK, font=_font())
            continue
        v = float(np.clip(value, 0.0, 1.0))
        length = int(round(v * bar_len))
        if length > 0:
            draw.rectangle([bar_x0 + 1, y + 2, bar_x0 + length, y + row - 3], fill=BAR_COLOUR)
        draw.text((bar_x0 + length + 4, y + 2), f"{float(value):.3f}", fill=BLACK, font=_font())
    return np.asarray(image).copy()


def legend(class_names: Sequence[str] = VOC_CLASSES, present_ids: Sequence[int] | None = None,
           max_width: int = 640) -> np.ndarray:
    """Legend strip: a VOC-palette swatch and the name of each class id in ``present_ids``.

    Entries flow left to right and wrap at ``max_width`` pixels. ``present_ids`` defaults to
    every class; id 255 is labelled "ignore" when it is not a class.
    """
    ids = list(range(len(class_names))) if present_ids is None else [int(i) for i in present_ids]
    palette = _palette_array()
    line = _line_height()
    swatch = line
    pad = 6
    entries = []
    for i in ids:
        if not 0 <= i <= 255:
            raise ValueError(f"class id {i} outside 0..255")
        name = class_names[i] if i < len(class_names) else ("ignore" if i == 255 else str(i))
        entries.append((i, name, swatch + 4 + _text_size(name)[0]))
    rows: list[list[tuple[int, str, int]]] = [[]]
    used = pad
    for entry in entries:
        if rows[-1] and used + entry[2] + pad > max_width:
            rows.append([])
            used = pad
        rows[-1].append(entry)
        used += entry[2] + 2 * pad
    width = max([pad + sum(e[2] + 2 * pad for e in r) for r in rows] + [2 * pad])
    height = pad + len(rows) * (line + pad)

    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)
    y = pad
    for r in rows:
        x = pad
        for i, name, w in r:
            draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=tuple(int(c) for c in palette[i]),
                           outline=(128, 128, 128))
            draw.text((x + swatch + 4, y), name, fill=BLACK, font=_font())
            x += w + 2 * pad
        y += line + pad
    return np.asarray(image).copy()


def line_chart(series: dict[str, Sequence[tuple[Any, float | None]]], title: str, x_label: str,
               y_label: str = "mIoU %", width: int = 480, height: int = 320) -> np.ndarray:
    """Lines of y against x, one per entry of ``series`` (its name in the legend).

    Numeric x values are placed to scale; otherwise each distinct value gets an even slot in
    order of first appearance. ``None`` y values are skipped. Colours are the VOC palette's.
    """
    xs = [x for points in series.values() for x, _ in points]
    ys = [float(y) for points in series.values() for _, y in points if y is not None and np.isfinite(y)]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    slots = list(dict.fromkeys(xs))
    lo_x, hi_x = (min(xs), max(xs)) if numeric and xs else (0, max(len(slots) - 1, 1))
    lo_y, hi_y = (min(ys), max(ys)) if ys else (0.0, 1.0)
    if hi_x == lo_x:
        lo_x, hi_x = lo_x - 1, hi_x + 1
    pad_y = max((hi_y - lo_y) * 0.1, 0.5)
    lo_y, hi_y = lo_y - pad_y, hi_y + pad_y
    line = _line_height()
    left, right, top = 8 + _text_size(f"{hi_y:.1f}")[0] + 6, 16, 8 + 2 * line
    bottom = 8 + 2 * line + line * len(series)
    image = Image.new("RGB", (int(width), int(height)), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((8, 4), _fit(str(title), int(width) - 16), fill=BLACK, font=_font())
    x0, x1, y0, y1 = left, int(width) - right, top, int(height) - bottom

    def place(x, y) -> tuple[int, int]:
        fx = (x - lo_x) / (hi_x - lo_x) if numeric else slots.index(x) / max(len(slots) - 1, 1)
        return int(round(x0 + fx * (x1 - x0))), int(round(y1 - (y - lo_y) / (hi_y - lo_y) * (y1 - y0)))

    for i in range(5):  # horizontal grid with its y values
        value = lo_y + (hi_y - lo_y) * i / 4
        _, gy = place(lo_x if numeric else slots[0] if slots else 0, value)
        draw.line([(x0, gy), (x1, gy)], fill=GRID)
        draw.text((8, gy - line // 2), f"{value:.1f}", fill=BLACK, font=_font())
    draw.rectangle([x0, y0, x1, y1], outline=BLACK)
    for x in slots:
        gx, _ = place(x, lo_y)
        draw.line([(gx, y1), (gx, y1 + 3)], fill=BLACK)
        text = f"{x:g}" if numeric else str(x)
        draw.text((gx - _text_size(text)[0] // 2, y1 + 5), text, fill=BLACK, font=_font())
    draw.text(((x0 + x1) // 2 - _text_size(x_label)[0] // 2, y1 + 5 + line), x_label, fill=BLACK, font=_font())
    palette = _palette_array()
    for k, (name, points) in enumerate(series.items()):
        colour = tuple(int(c) for c in palette[k % 20 + 1])
        kept = [place(x, float(y)) for x, y in points if y is not None and np.isfinite(y)]
        if len(kept) > 1:
            draw.line(kept, fill=colour, width=2)
        for px, py in kept:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        ly = int(height) - bottom + 2 * line + 4 + k * line
        draw.rectangle([x0, ly + 2, x0 + 10, ly + line - 2], fill=colour)
        draw.text((x0 + 14, ly), _fit(f"{name}", x1 - x0 - 14), fill=BLACK, font=_font())
    draw.text((x0, top - line - 2), y_label, fill=BLACK, font=_font())
    return np.asarray(image).copy()
