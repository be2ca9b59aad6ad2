"""Create once, then update in place, the output layers of each source image (main thread only)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..sample_data import MAX_WIDGET_CLASS, class_colour

if TYPE_CHECKING:
    import napari

    from ..core import Self2SegConfig


def mask_name(source: str) -> str:
    """Name of the mask layer made from the image layer called ``source``."""
    return f"{source} mask (Self2Seg)"


def denoised_name(source: str) -> str:
    """Name of the denoised layer made from the image layer called ``source``."""
    return f"{source} denoised (Self2Seg)"


def objects_name(source: str) -> str:
    """Name of the objects (instances) layer made from the image layer called ``source``."""
    return f"{source} objects (Self2Seg)"


@dataclass(frozen=True)
class Layout:
    """Where a source layer keeps its channels, and so the shapes of its output layers.

    Attributes
    ----------
    channel_axis : int or None
        Axis of the channels in the layer's data (-1 for an RGB layer); None for grey.
        A multichannel image is one 2-D plane: no stack axes besides the channels.
    rgb : bool
        Whether the source is an RGB(A) layer (its denoised layer is RGB too).
    """

    channel_axis: int | None = None
    rgb: bool = False

    def labels_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the Labels layer for a source of ``shape``: the channel axis left out."""
        if self.channel_axis is None:
            return shape
        return tuple(n for i, n in enumerate(shape) if i != self.channel_axis % len(shape))

    def denoised_index(self, plane: tuple[int, ...]) -> tuple[Any, ...]:
        """Where one run's denoised image goes in the denoised layer: one plane, or everything with channels."""
        return (*plane, slice(None), slice(None)) if self.channel_axis is None else (Ellipsis,)


GREY = Layout()


def labels_colormap() -> Any:
    """Return the Labels colormap of the class colours: class 0 transparent, class k its boxes' colour."""
    from napari.utils.colormaps import DirectLabelColormap

    colours: dict[int | None, str] = {None: "transparent", 0: "transparent"}
    colours.update({k: class_colour(k) for k in range(1, MAX_WIDGET_CLASS + 1)})
    return DirectLabelColormap(color_dict=colours)


def _labels_geometry(source: napari.layers.Image, labels_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Return the scale and translate of a Labels layer over ``source``, spatial axes only.

    A non-RGB multichannel layer has the channel axis in its scale too; the labels do not.
    """
    spatial = len(labels_shape)
    return {k: np.asarray(getattr(source, k))[-spatial:] for k in ("scale", "translate")}


@dataclass
class PlaneBackup:
    """What the output layers held on one plane before a run, to put back if the run fails."""

    mask: np.ndarray | None
    denoised: np.ndarray | None
    objects: np.ndarray | None = None
    features: Any = None


@dataclass
class _Pair:
    source: napari.layers.Image
    mask: napari.layers.Labels | None = None
    denoised: napari.layers.Image | None = None
    objects: napari.layers.Labels | None = None
    contrast_set: bool = False


class OutputLayers:
    """The class labels (Labels), denoised (Image) and objects (Labels) layers of every source image in one viewer.

    Each source image gets its own pair, named after it (``"<image> mask
    (Self2Seg)"``), with the source's full shape, scale and translate; for a
    stack, each run writes into one plane. The denoised layer sits right above
    its source and below the mask, starts hidden (the input stays visible; the
    dock's "show denoised" toggle or the layer's eye shows it), and holds NaN —
    drawn transparent — on planes that were never run. The objects layer
    (int32, one number per object) is made only when objects are asked for;
    its ``features`` hold the measurements of the plane written last, so napari
    shows an object's values under the cursor. Layers are found by reference
    (users rename layers) and created again if the user deleted them.
    """

    def __init__(self, viewer: napari.Viewer) -> None:
        self.viewer = viewer
        self._pairs: dict[int, _Pair] = {}
        self.show_denoised = False

    def _alive(self, layer: Any) -> bool:
        return layer is not None and layer in self.viewer.layers

    def _pair(self, source: napari.layers.Image) -> _Pair:
        pair = self._pairs.get(id(source))
        if pair is None or pair.source is not source:  # a new layer may reuse a deleted one's id
            pair = self._pairs[id(source)] = _Pair(source)
        return pair

    def mask_layer(self, source: napari.layers.Image) -> napari.layers.Labels | None:
        """Return the mask layer of ``source``, if it exists in the viewer."""
        layer = self._pair(source).mask
        return layer if self._alive(layer) else None

    def denoised_layer(self, source: napari.layers.Image) -> napari.layers.Image | None:
        """Return the denoised layer of ``source``, if it exists in the viewer."""
        layer = self._pair(source).denoised
        return layer if self._alive(layer) else None

    def objects_layer(self, source: napari.layers.Image) -> napari.layers.Labels | None:
        """Return the objects layer of ``source``, if it exists in the viewer."""
        layer = self._pair(source).objects
        return layer if self._alive(layer) else None

    def set_denoised_visible(self, visible: bool) -> None:
        """Show or hide every denoised layer (and those made later)."""
        self.show_denoised = visible
        for pair in self._pairs.values():
            if self._alive(pair.denoised) and pair.denoised is not None:
                pair.denoised.visible = visible

    def _ensure(self, source: napari.layers.Image, layout: Layout) -> _Pair:
        pair = self._pair(source)
        full = tuple(source.data.shape)
        geometry = {"scale": source.scale, "translate": source.translate}
        if not self._alive(pair.denoised) or pair.denoised is None or tuple(pair.denoised.data.shape) != full:
            look = {"rgb": True} if layout.rgb else {"colormap": "gray"}
            pair.denoised = self.viewer.add_image(
                np.full(full, np.nan, dtype=np.float32),
                name=denoised_name(source.name),
                visible=self.show_denoised,
                **look,
                **geometry,
            )
            pair.contrast_set = False
            self._place_above(source, pair.denoised)
        labels_shape = layout.labels_shape(full)
        if not self._alive(pair.mask) or pair.mask is None or tuple(pair.mask.data.shape) != labels_shape:
            pair.mask = self.viewer.add_labels(
                np.zeros(labels_shape, dtype=np.uint8),
                name=mask_name(source.name),
                opacity=0.5,
                colormap=labels_colormap(),
                **_labels_geometry(source, labels_shape),
            )
            self._place_above(pair.denoised if self._alive(pair.denoised) else source, pair.mask)
        return pair

    def _ensure_objects(self, source: napari.layers.Image, layout: Layout) -> napari.layers.Labels:
        pair = self._ensure(source, layout)
        labels_shape = layout.labels_shape(tuple(source.data.shape))
        if not self._alive(pair.objects) or pair.objects is None or tuple(pair.objects.data.shape) != labels_shape:
            pair.objects = self.viewer.add_labels(
                np.zeros(labels_shape, dtype=np.int32),
                name=objects_name(source.name),
                opacity=0.5,
                **_labels_geometry(source, labels_shape),
            )
            self._place_above(pair.mask if self._alive(pair.mask) else source, pair.objects)
        return pair.objects

    def _place_above(self, anchor: Any, layer: Any) -> None:
        """Move a new output layer right above ``anchor``, so that box layers stay visible on top."""
        layers = self.viewer.layers
        if anchor in layers:
            target = layers.index(anchor) + 1
            current = layers.index(layer)
            if current > target:
                layers.move(current, target)

    def backup(self, source: napari.layers.Image, plane: tuple[int, ...], layout: Layout = GREY) -> PlaneBackup:
        """Copy what the output layers of ``source`` hold on ``plane`` now."""
        index, denoised_index = (*plane, slice(None), slice(None)), layout.denoised_index(plane)
        mask, denoised, objects = self.mask_layer(source), self.denoised_layer(source), self.objects_layer(source)
        return PlaneBackup(
            mask=np.array(mask.data[index], copy=True) if mask is not None else None,
            denoised=np.array(denoised.data[denoised_index], copy=True) if denoised is not None else None,
            objects=np.array(objects.data[index], copy=True) if objects is not None else None,
            features=objects.features.copy() if objects is not None else None,
        )

    def restore(
        self, source: napari.layers.Image, plane: tuple[int, ...], backup: PlaneBackup, layout: Layout = GREY
    ) -> None:
        """Put a :meth:`backup` back: the layers return to their state before the run, or none changes."""
        index, denoised_index = (*plane, slice(None), slice(None)), layout.denoised_index(plane)
        mask, denoised, objects = self.mask_layer(source), self.denoised_layer(source), self.objects_layer(source)
        if objects is not None:
            objects.data[index] = backup.objects if backup.objects is not None else 0
            objects.features = backup.features if backup.features is not None else {}
            objects.refresh()
        if mask is not None:
            mask.data[index] = backup.mask if backup.mask is not None else 0
            mask.refresh()
        if denoised is not None:
            denoised.data[denoised_index] = backup.denoised if backup.denoised is not None else np.nan
            denoised.refresh()

    def write(
        self,
        source: napari.layers.Image,
        plane: tuple[int, ...],
        metadata: dict[str, Any],
        *,
        mask: np.ndarray | None = None,
        denoised: np.ndarray | None = None,
        objects: np.ndarray | None = None,
        features: dict[str, np.ndarray] | None = None,
        layout: Layout = GREY,
    ) -> None:
        """Write class labels, a denoised image and/or objects into one plane of ``source``'s output layers.

        ``objects`` (int32) come with their measurement table ``features`` (column → one value per
        object, objects ``1..n`` in order); without ``objects``, an existing objects layer is cleared on
        this plane, as its objects belonged to an earlier mask.
        """
        pair = self._ensure(source, layout)
        index = (*plane, slice(None), slice(None))
        if mask is not None and pair.mask is not None:
            pair.mask.data[index] = mask.astype(np.uint8)
            pair.mask.metadata["self2seg"] = metadata
            pair.mask.refresh()
        if denoised is not None and pair.denoised is not None:
            pair.denoised.data[layout.denoised_index(plane)] = denoised
            pair.denoised.metadata["self2seg"] = metadata
            if not pair.contrast_set:
                pair.denoised.contrast_limits = (float(np.min(denoised)), float(np.max(denoised)) + 1e-6)
                pair.contrast_set = True
            pair.denoised.refresh()
        if objects is not None:
            layer = self._ensure_objects(source, layout)
            layer.data[index] = objects
            numbers = features["label"] if features else np.arange(1, int(objects.max()) + 1)
            layer.features = {"index": numbers, **(features or {})}  # napari finds an object's row by "index"
            layer.metadata["self2seg"] = metadata
            layer.refresh()
        elif mask is not None and (stale := self.objects_layer(source)) is not None:
            stale.data[index] = 0
            stale.features = {}
            stale.refresh()


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
