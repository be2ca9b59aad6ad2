"""Sample images: the bundled noisy DSB2018 crop and synthetic texture and colour images.

The functions return napari LayerData tuples but import nothing from napari,
so the CLI demo and the tests can use them headless.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import numpy as np

from .datasets import hue_pair, three_textures, two_textures

LayerData = tuple[Any, dict[str, Any], str]
BOX_LAYER_NAME = "Self2Seg boxes"
CLASS_COLOURS = (
    "#00bfff",
    "#ffd700",
    "#ff4fa3",
    "#7cfc00",
    "#ff8c00",
    "#b48cff",
    "#00ffc8",
    "#ff6347",
    "#1e90ff",
    "#f0e68c",
)
"""Colour of each class 0–9: box edges, and the output Labels layer (where class 0 is transparent)."""
MAX_WIDGET_CLASS = len(CLASS_COLOURS) - 1
"""Highest class the widget offers (number keys 0–9)."""


def class_colour(index: int) -> str:
    """Colour of class ``index`` (boxes and labels share it)."""
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def load_noisy_nuclei() -> tuple[np.ndarray, np.ndarray]:
    """Return the bundled 256² DSB2018 crop with σ = 30 noise and its instance labels.

    Returns
    -------
    image : numpy.ndarray
        Noisy image, float32, 0–255 scale (not clipped).
    labels : numpy.ndarray
        Instance labels, uint16; ``labels > 0`` is the nuclei foreground.
    """
    with files("napari_self2seg.data").joinpath("dsb2018_crop256_sigma30.npz").open("rb") as handle:
        data = np.load(handle)
        return data["image"], data["labels"]


def box_layer_data(boxes: dict[int, list[tuple[int, int, int, int]]]) -> LayerData:
    """Shapes LayerData for boxes per class, with a ``class`` feature (0 = background)."""
    items = [(k, box) for k in sorted(boxes) for box in boxes[k]]
    rects = [np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float) for _, (y0, x0, y1, x1) in items]
    classes = [k for k, _ in items]
    kwargs = {
        "name": BOX_LAYER_NAME,
        "shape_type": "rectangle",
        "features": {"class": classes},
        "edge_color": [class_colour(k) for k in classes],
        "face_color": "transparent",
        "edge_width": 2,
    }
    return (rects, kwargs, "shapes")


def noisy_nuclei() -> list[LayerData]:
    """Napari sample: "Noisy nuclei (DSB2018)", 256² with σ = 30 noise."""
    image, _ = load_noisy_nuclei()
    return [(image, {"name": "noisy nuclei (DSB2018, σ=30)", "colormap": "gray"}, "image")]


def textures_sample() -> list[LayerData]:
    """Napari sample: "Two textures", equal-mean stripes with ready-made boxes."""
    sample = two_textures(128, period=6, noise=0.1, seed=0)
    return [
        (sample.image, {"name": "two textures", "colormap": "gray"}, "image"),
        box_layer_data({1: [sample.fg_box], 0: [sample.bg_box]}),
    ]


def three_textures_sample() -> list[LayerData]:
    """Napari sample: "Three textures", three equal-mean textures (classes 0, 1, 2) with ready-made boxes."""
    sample = three_textures(128)
    return [(sample.image, {"name": "three textures", "colormap": "gray"}, "image"), box_layer_data(sample.boxes)]


def colour_sample() -> list[LayerData]:
    """Napari sample: "Two hues", an RGB image whose regions differ in colour only, with ready-made boxes."""
    sample = hue_pair(128)
    rgb = np.clip(sample.image, 0.0, 1.0)
    return [(rgb, {"name": "two hues", "rgb": True}, "image"), box_layer_data(sample.boxes)]
