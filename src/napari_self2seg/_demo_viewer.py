"""Open napari with the demo's input, result and the Self2Seg dock (``self2seg demo --gui``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import napari

from ._widget.layers import denoised_name, mask_name

if TYPE_CHECKING:
    import numpy as np

    from .core import SegmentationResult


def show_result(image: np.ndarray, result: SegmentationResult) -> None:
    """Show the image, the denoised image and the mask, with the dock widget, and run napari."""
    viewer = napari.Viewer(title="Self2Seg demo")
    name = "noisy nuclei (DSB2018, σ=30)"
    viewer.add_image(image, name=name, colormap="gray")
    viewer.add_image(result.denoised, name=denoised_name(name), colormap="gray", visible=False)
    viewer.add_labels(result.mask.astype("uint8"), name=mask_name(name), opacity=0.5)
    viewer.window.add_plugin_dock_widget("napari-self2seg", "Self2Seg")
    napari.run()
