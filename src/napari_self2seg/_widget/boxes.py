"""Turn the rectangles of a Shapes layer into boxes per class, and map layer coordinates to image pixels.

Pure numpy: the dock passes the layers' vertex arrays and geometry, so this
logic is testable without a viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

Box = tuple[int, int, int, int]
CLASS_FEATURE = "class"
"""Name of the box layer's feature holding each rectangle's class index (0 = background)."""
LEGACY_REGIONS = {"background": 0, "foreground": 1}
"""Box layers made before classes stored a ``region`` feature with these names."""


@dataclass(frozen=True)
class BoxPrompts:
    """Boxes found on one 2-D plane.

    Attributes
    ----------
    boxes : dict of int to tuple of Box
        Half-open (y0, x0, y1, x1) boxes in image pixel coordinates, by class index.
    ignored_shapes : int
        Shapes that are not rectangles, or have no valid class (they are not used).
    other_planes : int
        Rectangles drawn on another plane of a stack.
    """

    boxes: dict[int, tuple[Box, ...]] = field(default_factory=dict)
    ignored_shapes: int = 0
    other_planes: int = 0

    @property
    def missing(self) -> list[int]:
        """Classes from 0 to the largest one drawn that have no box (at least 0 and 1 for a segmentation)."""
        top = max(max(self.boxes, default=0), 1)
        return [k for k in range(top + 1) if not self.boxes.get(k)]


def rectangle_to_box(vertices: np.ndarray) -> Box:
    """Bounding box of a rectangle's last two coordinates, as half-open pixel bounds."""
    yx = np.asarray(vertices, dtype=float)[:, -2:]
    y0, x0 = np.floor(yx.min(axis=0) + 0.5).astype(int)
    y1, x1 = np.floor(yx.max(axis=0) + 0.5).astype(int)
    return int(y0), int(x0), int(y1), int(x1)


def class_of(value: object) -> int | None:
    """Return the class index stored for a shape: an integer 0–255 or a legacy region name; None if neither."""
    if isinstance(value, str):
        if value in LEGACY_REGIONS:
            return LEGACY_REGIONS[value]
        value = value.strip()
        if not value.isdigit():
            return None
    try:
        index = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return index if 0 <= index <= 255 else None


def collect_boxes(
    vertices: Sequence[np.ndarray],
    shape_types: Sequence[str],
    classes: Sequence[int | None],
    plane: Sequence[int] = (),
) -> BoxPrompts:
    """Sort the rectangles into boxes per class on one plane.

    Parameters
    ----------
    vertices : sequence of numpy.ndarray
        One ``(4, D)`` array per shape, in image data coordinates.
    shape_types : sequence of str
        napari shape type of each shape; only ``"rectangle"`` is used.
    classes : sequence of int or None
        Class index per shape (None: no valid class, the shape is ignored).
    plane : sequence of int
        Index of the plane in the leading axes of a stack (empty for 2-D).
        Rectangles with leading coordinates are kept only on this plane;
        2-D rectangles apply to every plane.

    Returns
    -------
    BoxPrompts
        The boxes and counts of what was left out.
    """
    found: dict[int, list[Box]] = {}
    ignored = other = 0
    for verts, kind, index in zip(vertices, shape_types, classes, strict=True):
        if kind != "rectangle" or index is None:
            ignored += 1
            continue
        leading = np.asarray(verts, dtype=float)[:, :-2]
        if leading.shape[1] and plane:
            where = np.round(leading[0, -len(plane) :]).astype(int)
            if tuple(where) != tuple(plane):
                other += 1
                continue
        found.setdefault(index, []).append(rectangle_to_box(verts))
    return BoxPrompts({k: tuple(v) for k, v in sorted(found.items())}, ignored, other)


@dataclass(frozen=True)
class Geometry:
    """Where a layer's data sits in the world: ``world = data × scale + translate`` per axis."""

    scale: np.ndarray
    translate: np.ndarray


def to_image_pixels(vertices: Sequence[np.ndarray], shapes: Geometry, image: Geometry, n: int) -> list[np.ndarray]:
    """Map shape vertices from a Shapes layer's data coordinates into an image layer's, on the last ``n`` axes."""
    scale_s, trans_s = np.asarray(shapes.scale)[-n:], np.asarray(shapes.translate)[-n:]
    scale_i, trans_i = np.asarray(image.scale)[-n:], np.asarray(image.translate)[-n:]
    return [((np.asarray(v)[:, -n:] * scale_s + trans_s) - trans_i) / scale_i for v in vertices]


def plane_index(data_position: Sequence[float], leading_shape: Sequence[int]) -> tuple[int, ...]:
    """Index of the plane at a position in an image's data coordinates, clipped to its leading axes."""
    leading = np.round(np.asarray(data_position, dtype=float)[: len(leading_shape)]).astype(int)
    limits = np.asarray(leading_shape, dtype=int) - 1
    return tuple(int(v) for v in np.clip(leading, 0, limits))
