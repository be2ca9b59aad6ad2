"""Sample images: the bundled noisy DSB2018 crop and a synthetic two-texture image.

The functions return napari LayerData tuples but import nothing from napari,
so the CLI demo and the tests can use them headless.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import numpy as np

from .datasets import two_textures

LayerData = tuple[Any, dict[str, Any], str]
BOX_LAYER_NAME = "Self2Seg boxes"
REGION_COLOURS = {"foreground": "#ffd700", "background": "#00bfff"}


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


def box_layer_data(fg_boxes: list[tuple[int, int, int, int]], bg_boxes: list[tuple[int, int, int, int]]) -> LayerData:
    """Shapes LayerData for foreground/background boxes with a ``region`` feature."""
    rects = [np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float) for y0, x0, y1, x1 in fg_boxes + bg_boxes]
    regions = ["foreground"] * len(fg_boxes) + ["background"] * len(bg_boxes)
    kwargs = {
        "name": BOX_LAYER_NAME,
        "shape_type": "rectangle",
        "features": {"region": regions},
        "edge_color": [REGION_COLOURS[r] for r in regions],
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
        box_layer_data([sample.fg_box], [sample.bg_box]),
    ]
