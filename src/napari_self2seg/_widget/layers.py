"""Create once, then update in place, the output layers (main thread only)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari

    from ..core import Self2SegConfig

MASK_NAME = "Self2Seg mask"
DENOISED_NAME = "Self2Seg denoised"


class OutputLayers:
    """The "Self2Seg mask" Labels and "Self2Seg denoised" Image layers of one viewer.

    The layers have the source image's full shape, scale and translate; for a
    stack, each run writes into one plane. Layers are found by reference (users
    rename layers) and created again if the user deleted them.
    """

    def __init__(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer
        self.mask: napari.layers.Labels | None = None
        self.denoised: napari.layers.Image | None = None
        self._contrast_set = False

    def _alive(self, layer: Any) -> bool:
        return layer is not None and layer in self.viewer.layers

    def _ensure(self, source: napari.layers.Image) -> None:
        full = tuple(source.data.shape)
        geometry = {"scale": source.scale, "translate": source.translate}
        if not self._alive(self.denoised) or self.denoised is None or tuple(self.denoised.data.shape) != full:
            self.denoised = self.viewer.add_image(
                np.zeros(full, dtype=np.float32), name=DENOISED_NAME, colormap="gray", visible=True, **geometry
            )
            self._contrast_set = False
            self._place_above(source, self.denoised)
        if not self._alive(self.mask) or self.mask is None or tuple(self.mask.data.shape) != full:
            zeros = np.zeros(full, dtype=np.uint8)
            self.mask = self.viewer.add_labels(zeros, name=MASK_NAME, opacity=0.5, **geometry)
            self._place_above(self.denoised if self._alive(self.denoised) else source, self.mask)

    def _place_above(self, anchor: Any, layer: Any) -> None:
        """Move a new output layer right above ``anchor``, so that box layers stay visible on top."""
        layers = self.viewer.layers
        if anchor in layers:
            target = layers.index(anchor) + 1
            current = layers.index(layer)
            if current > target:
                layers.move(current, target)

    def write(
        self,
        source: napari.layers.Image,
        plane: tuple[int, ...],
        metadata: dict[str, Any],
        *,
        mask: np.ndarray | None = None,
        denoised: np.ndarray | None = None,
    ) -> None:
        """Write a mask and/or a denoised image into one plane of the output layers."""
        self._ensure(source)
        index = (*plane, slice(None), slice(None))
        if mask is not None and self.mask is not None:
            self.mask.data[index] = mask.astype(np.uint8)
            self.mask.metadata["self2seg"] = metadata
            self.mask.refresh()
        if denoised is not None and self.denoised is not None:
            self.denoised.data[index] = denoised
            self.denoised.metadata["self2seg"] = metadata
            if not self._contrast_set:
                self.denoised.contrast_limits = (float(denoised.min()), float(denoised.max()) + 1e-6)
                self._contrast_set = True
            self.denoised.refresh()


def run_metadata(
    config: Self2SegConfig, seed: int, energies: tuple[float, ...], device: str, version: str
) -> dict[str, Any]:
    """Collect what the output layers record about the run that made them."""
    return {
        "version": version,
        "seed": seed,
        "device": device,
        "energies": list(energies),
        "config": dataclasses.asdict(config),
    }
