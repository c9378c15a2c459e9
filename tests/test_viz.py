"""Tests of psa.viz: shapes, exact colours, blending and measured layout."""

import numpy as np
import pytest

from psa.constants import VOC_CLASSES
from psa.viz import BAR_COLOUR, colorize_label, iou_bar_chart, jet, legend, overlay_cam, side_by_side


def test_colorize_label_voc_colours():
    label = np.array([[0, 1], [15, 255]], dtype=np.uint8)
    rgb = colorize_label(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    # VOC colour map: 0 black, 1 aeroplane maroon, 15 person, 255 void cream
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    assert tuple(rgb[0, 1]) == (128, 0, 0)
    assert tuple(rgb[1, 0]) == (192, 128, 128)
    assert tuple(rgb[1, 1]) == (224, 224, 192)


def test_jet_end_points():
    out = jet(np.array([0.0, 0.5, 1.0, 2.0, np.nan]))
    assert out.dtype == np.uint8 and out.shape == (5, 3)
    # b = 1.5 - |4x - 1| etc., clipped to [0, 1], times 255
    assert tuple(out[0]) == (0, 0, 128)      # x = 0: dark blue
    assert tuple(out[1]) == (128, 255, 128)  # x = 0.5: green
    assert tuple(out[2]) == (128, 0, 0)      # x = 1: dark red
    assert tuple(out[3]) == (128, 0, 0)      # clipped
    assert tuple(out[4]) == (0, 0, 128)      # NaN -> 0


def test_overlay_between_image_and_colormap():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(12, 9, 3), dtype=np.uint8)
    cam = rng.random((12, 9))
    out = overlay_cam(image, cam)
    assert out.shape == image.shape and out.dtype == np.uint8
    colours = jet(cam).astype(int)
    lo = np.minimum(image.astype(int), colours)
    hi = np.maximum(image.astype(int), colours)
    assert np.all(out >= lo) and np.all(out <= hi)
    # 50 % blend, to within rounding
    assert np.abs(out - (image.astype(float) + colours) / 2).max() <= 0.5 + 1e-9
    with pytest.raises(ValueError):
        overlay_cam(image, cam[:5])


def test_side_by_side_layout():
    a = np.full((10, 30, 3), 10, np.uint8)
    b = np.full((40, 50, 3), 20, np.uint8)
    c = np.full((25, 20), 30, np.uint8)  # grey panel
    out = side_by_side([a, b, c], gap=4)
    assert out.dtype == np.uint8 and out.shape == (40, 30 + 50 + 20 + 2 * 4, 3)
    assert np.all(out[:10, :30] == 10) and np.all(out[10:, :30] == 255)  # shorter panel is padded
    assert np.all(out[:, 30:34] == 255)                                  # gap
    assert np.all(out[:, 34:84] == 20)
    assert np.all(out[:25, 88:108] == 30)

    titled = side_by_side([a, b, c], titles=["image", "cam", "label"], gap=4)
    top = titled.shape[0] - 40
    assert titled.shape[1] == 108 and top > 0
    assert np.all(titled[top:, 34:84] == 20)
    assert (titled[:top] < 128).any()  # dark title text above the panels
    with pytest.raises(ValueError):
        side_by_side([a, b], titles=["only one"])


def bar_bands(chart):
    """Contiguous row bands holding BAR_COLOUR pixels -> max bar-coloured pixels per row in each."""
    mask = np.all(chart == np.array(BAR_COLOUR, np.uint8), axis=2)
    per_row = mask.sum(axis=1)
    bands, current = [], []
    for count in per_row:
        if count:
            current.append(count)
        elif current:
            bands.append(max(current))
            current = []
    if current:
        bands.append(max(current))
    return bands


def test_iou_bar_chart_bar_lengths_follow_values():
    iou = {"background": 0.2, "aeroplane": 0.8, "bicycle": None, "bird": 0.5, "boat": 0.0}
    chart = iou_bar_chart(iou, "val", width=640)
    assert chart.dtype == np.uint8 and chart.ndim == 3 and chart.shape[1] == 640
    widths = bar_bands(chart)
    assert len(widths) == 3  # None ("n/a") and 0.0 draw no bar
    w02, w08, w05 = widths
    assert w02 < w05 < w08
    assert w08 / w02 == pytest.approx(4.0, rel=0.05)
    assert w05 / w02 == pytest.approx(2.5, rel=0.05)


def test_legend_contains_swatches():
    out = legend(VOC_CLASSES, [0, 1, 15, 255])
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    for colour in [(128, 0, 0), (192, 128, 128), (224, 224, 192)]:
        assert np.all(out == np.array(colour, np.uint8), axis=2).sum() > 20
    assert not np.all(out == np.array((0, 128, 0), np.uint8), axis=2).any()  # bicycle not listed
