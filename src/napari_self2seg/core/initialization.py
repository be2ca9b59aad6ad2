"""Initial foreground/background regions (paper §3.2 and Algorithm 1, step 1)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._validation import Box

logger = logging.getLogger(__name__)


def box_mask(boxes: Sequence[Box], shape: tuple[int, int]) -> np.ndarray:
    """Boolean union of half-open boxes."""
    mask = np.zeros(shape, dtype=bool)
    for y0, x0, y1, x1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


def box_regions(
    fg_boxes: Sequence[Box], bg_boxes: Sequence[Box], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background training regions from boxes, overlap removed from both.

    Raises
    ------
    ValueError
        If one kind of box is missing, or a box lies entirely in the overlap.
    """
    if not fg_boxes or not bg_boxes:
        missing = "foreground" if not fg_boxes else "background"
        raise ValueError(
            f"init='boxes' needs at least one foreground and one background box; no {missing} box was given"
        )
    fg, bg = box_mask(fg_boxes, shape), box_mask(bg_boxes, shape)
    overlap = fg & bg
    if overlap.any():
        logger.warning(
            "foreground and background boxes overlap on %d pixels; they are left out of both", int(overlap.sum())
        )
        for kind, boxes in (("foreground", fg_boxes), ("background", bg_boxes)):
            for i, (y0, x0, y1, x1) in enumerate(boxes):
                if overlap[y0:y1, x0:x1].all():
                    raise ValueError(
                        f"{kind} box #{i + 1} {(y0, x0, y1, x1)} lies entirely inside boxes of the other kind; "
                        "move or shrink one of them"
                    )
    return fg & ~overlap, bg & ~overlap


def threshold_regions(normalised: np.ndarray, threshold: float, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Foreground ``normalised > threshold`` and its complement as background.

    Raises
    ------
    ValueError
        If either region is empty.
    """
    fg = normalised > threshold
    if fg.all() or not fg.any():
        side = "above" if not fg.any() else "at or below"
        raise ValueError(
            f"thresholding the {what} at {threshold:g} leaves no pixel {side} it; "
            "change the threshold or initialise from boxes"
        )
    return fg, ~fg
