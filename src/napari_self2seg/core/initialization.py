"""Initial regions of the K classes (paper §3.2 and Algorithm 1, step 1).

Regions are boolean masks stacked ``(K, H, W)``; class 0 is the background. A
region may leave pixels out (boxes cover part of the image); a pixel is never
in two regions.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
from skimage import filters

from ._validation import class_name
from .config import OTSU

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ._validation import Box

logger = logging.getLogger(__name__)

threshold_multiotsu: Callable[..., np.ndarray] = filters.threshold_multiotsu
"""scikit-image's multi-Otsu thresholds (Liao et al. 2001), typed for this module."""
threshold_otsu: Callable[[np.ndarray], float] = filters.threshold_otsu
"""scikit-image's Otsu threshold, typed for this module."""


def box_mask(boxes: Sequence[Box], shape: tuple[int, int]) -> np.ndarray:
    """Boolean union of half-open boxes."""
    mask = np.zeros(shape, dtype=bool)
    for y0, x0, y1, x1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def box_regions(boxes: Mapping[int, Sequence[Box]], shape: tuple[int, int]) -> np.ndarray:
    """Training regions from boxes per class; pixels claimed by two classes are left out of both.

    Parameters
    ----------
    boxes : mapping of class index to boxes
        Validated, clipped boxes; the classes must be 0..K-1, K >= 2.
    shape : tuple of int
        Image shape ``(H, W)``.

    Returns
    -------
    numpy.ndarray
        ``(K, H, W)`` bool.

    Raises
    ------
    ValueError
        If fewer than two classes or a class between them has no box, or a box
        lies entirely in an overlap.
    """
    given = {k for k, items in boxes.items() if items}
    classes = max(max(given, default=0) + 1, 2)  # a segmentation has at least two classes
    if not given:
        raise ValueError(
            "init='boxes' needs boxes of at least two classes: the background (class 0) and the objects "
            "(class 1, 2, …); no box was given"
        )
    missing = sorted(set(range(classes)) - given)
    if missing:
        names = ", ".join(class_name(k, classes) for k in missing)
        raise ValueError(
            f"no box was given for {names}: every class from 0 to {classes - 1} needs at least one box "
            "(class 0 is the background)"
        )
    masks = np.stack([box_mask(boxes[k], shape) for k in range(classes)])
    overlap = masks.sum(axis=0) > 1
    if overlap.any():
        logger.warning("boxes of different classes overlap on %d pixels; they are left out", int(overlap.sum()))
        for k in range(classes):
            for i, (y0, x0, y1, x1) in enumerate(boxes[k]):
                if overlap[y0:y1, x0:x1].all():
                    raise ValueError(
                        f"{class_name(k, classes)} box #{i + 1} {(y0, x0, y1, x1)} lies entirely inside boxes of "
                        "other classes; move or shrink one of them"
                    )
    regions: np.ndarray = masks & ~overlap
    return regions


def label_regions(labels: np.ndarray, classes: int) -> np.ndarray:
    """One region per class index of a label image ``(H, W)``: ``(K, H, W)`` bool."""
    regions: np.ndarray = labels[None] == np.arange(classes)[:, None, None]
    return regions


def threshold_regions(grey: np.ndarray, classes: int, threshold: float | Literal["otsu"], what: str) -> np.ndarray:
    """Regions by intensity: ``grey > threshold`` for two classes, multi-Otsu for more.

    Parameters
    ----------
    grey : numpy.ndarray
        ``(H, W)`` image in [0, 1]; for colour images the mean of the
        normalised channels.
    classes : int
        Number of regions K; class k holds the k-th intensity band (class 0 the darkest).
    threshold : float or "otsu"
        The two-class threshold; ``"otsu"``: Otsu's threshold of ``grey``
        (the two-class case of multi-Otsu).
    what : str
        What ``grey`` is, for messages.

    Raises
    ------
    ValueError
        If a region is empty.
    """
    if classes == 2:
        if threshold == OTSU:
            if float(grey.max()) <= float(grey.min()):
                raise ValueError(f"the {what} is flat: Otsu's threshold cannot split it; initialise from boxes")
            threshold = threshold_otsu(grey)
        labels = (grey > threshold).astype(np.int64)
    else:
        try:
            levels = threshold_multiotsu(grey, classes=classes)
        except ValueError as error:  # too few grey levels for that many classes
            raise ValueError(
                f"multi-Otsu cannot split the {what} into {classes} classes ({error}); initialise from boxes instead"
            ) from None
        labels = np.digitize(grey, levels)
    regions = label_regions(labels, classes)
    empty = [k for k in range(classes) if not regions[k].any()]
    if empty:
        if classes == 2:
            side = "above" if empty == [1] else "at or below"
            raise ValueError(
                f"thresholding the {what} at {threshold:g} leaves no pixel {side} it; "
                "change the threshold or initialise from boxes"
            )
        raise ValueError(
            f"thresholding the {what} into {classes} classes leaves class(es) {empty} empty; initialise from boxes"
        )
    return regions
