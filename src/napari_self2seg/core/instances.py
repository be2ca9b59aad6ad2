"""Instance labels: each class of a segmentation split into its objects.

A class mask becomes objects in four steps: background holes enclosed by the
class are filled, connected components (4-connected) smaller than
``min_size`` pixels are dropped, touching objects inside one component are
split by a watershed of the distance to the background seeded at the maxima of
the (smoothed) distance map — scikit-image's watershed recipe — and the
objects of every class are numbered together in raster order of their first
pixel. Beyond the paper, which segments but does not separate objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi
from skimage import feature, measure, segmentation

if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import InstanceConfig

peak_local_max: Callable[..., np.ndarray] = feature.peak_local_max
watershed: Callable[..., np.ndarray] = segmentation.watershed
label_components: Callable[..., np.ndarray] = measure.label


@dataclass(frozen=True)
class Instances:
    """The objects of a segmentation.

    Attributes
    ----------
    labels : np.ndarray
        ``(H, W)`` int32: 0 where there is no object, objects ``1..n`` numbered in
        raster order of their first pixel.
    classes : np.ndarray
        ``(n,)`` uint8: the class of object ``i + 1`` at index ``i``.
    """

    labels: np.ndarray
    classes: np.ndarray

    @property
    def count(self) -> int:
        """Number of objects."""
        return len(self.classes)


def split_mask(mask: np.ndarray, config: InstanceConfig, fillable: np.ndarray | None = None) -> np.ndarray:
    """Split one binary mask into objects (int32 labels, 0 = none, numbers not yet in raster order).

    Parameters
    ----------
    mask : np.ndarray
        ``(H, W)`` boolean mask of one class.
    config : InstanceConfig
        Splitting settings.
    fillable : np.ndarray, optional
        Pixels that a hole may take (the background); all pixels if omitted.
    """
    mask = np.asarray(mask, dtype=bool)
    if config.fill_holes:
        holes = ndi.binary_fill_holes(mask) & ~mask
        mask = mask | (holes if fillable is None else holes & fillable)
    components = label_components(mask, connectivity=1)
    if config.min_size > 0 and components.max() > 0:
        sizes = np.bincount(components.ravel())
        small = sizes < config.min_size
        small[0] = True
        components[small[components]] = 0
        mask = components > 0
    if not config.split or components.max() == 0:
        return components.astype(np.int32)
    distance = ndi.distance_transform_edt(mask)
    if config.smoothing > 0:
        distance = ndi.gaussian_filter(distance, config.smoothing)
    peaks = peak_local_max(distance, min_distance=config.min_distance, labels=components, exclude_border=False)
    seeds = np.zeros(mask.shape, dtype=bool)
    seeds[tuple(peaks.T)] = True
    markers = label_components(seeds, connectivity=2)  # a plateau's adjacent maxima are one seed
    objects = watershed(-distance, markers, mask=mask)
    unseeded = label_components(mask & (objects == 0), connectivity=1)  # components the seeds missed
    objects[unseeded > 0] = unseeded[unseeded > 0] + objects.max()
    return objects.astype(np.int32)


def raster_order(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber ``labels`` ``1..n`` in raster order of each object's first pixel.

    Returns
    -------
    renumbered : np.ndarray
        int32 labels, same shape.
    previous : np.ndarray
        ``(n,)`` the old number of each new object.
    """
    ids, first = np.unique(labels.ravel(), return_index=True)
    objects = ids != 0
    previous = ids[objects][np.argsort(first[objects], kind="stable")]
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.int32)
    lookup[previous] = np.arange(1, len(previous) + 1, dtype=np.int32)
    return lookup[labels], previous


def instances_of(labels: np.ndarray, config: InstanceConfig) -> Instances:
    """Split every class except the background (class 0) of a label image into objects.

    Parameters
    ----------
    labels : np.ndarray
        ``(H, W)`` class index per pixel, as in ``SegmentationResult.labels``.
    config : InstanceConfig
        Splitting settings; holes are filled with background pixels only, so a
        class enclosed by another keeps its pixels.

    Returns
    -------
    Instances
        The objects of all classes, numbered together in raster order. An image
        with no foreground gives zero objects.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_self2seg.core.config import InstanceConfig
    >>> yy, xx = np.mgrid[:40, :60]
    >>> two = ((yy - 20) ** 2 + (xx - 18) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 36) ** 2 < 100)
    >>> instances_of(two.astype(np.uint8), InstanceConfig()).count
    2
    """
    labels = np.asarray(labels)
    background = labels == 0
    combined = np.zeros(labels.shape, dtype=np.int64)
    class_of = [0]
    for k in (int(k) for k in np.unique(labels) if k != 0):
        objects = split_mask(labels == k, config, fillable=background)
        # a hole filled by one class is taken by it alone; the next class's fill may not take it again
        free = (objects > 0) & (combined == 0)
        combined[free] = objects[free] + len(class_of) - 1
        class_of += [k] * int(objects.max())
        background &= ~free
    renumbered, previous = raster_order(combined)
    return Instances(renumbered, np.asarray(class_of, dtype=np.uint8)[previous])


def no_objects_reason(config: InstanceConfig) -> str:
    """Say why a split found no object (the CLI and the widget add how to fix it in their own terms)."""
    return f"no objects: the segmentation has no foreground (or only objects under {config.min_size} px)"


def check_min_size(config: InstanceConfig, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` if the minimum object size exceeds the image, which would remove everything."""
    pixels = int(np.prod(shape[-2:]))
    if config.min_size > pixels:
        raise ValueError(
            f"the minimum object size ({config.min_size} pixels) is larger than the image ({pixels} pixels), "
            "so every object would be removed; lower instances.min_size"
        )
