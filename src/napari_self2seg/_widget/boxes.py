"""Turn the rectangles of a Shapes layer into foreground/background boxes.

Pure numpy: the dock passes vertex arrays already mapped into the image's data
coordinates, so this logic is testable without a viewer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

Box = tuple[int, int, int, int]
REGIONS = ("foreground", "background")


@dataclass(frozen=True)
class BoxPrompts:
    """Boxes found on one 2-D plane.

    Attributes
    ----------
    foreground, background : tuple of Box
        Half-open (y0, x0, y1, x1) boxes in image pixel coordinates.
    ignored_shapes : int
        Shapes that are not rectangles (they are not used).
    other_planes : int
        Rectangles drawn on another plane of a stack.
    """

    foreground: tuple[Box, ...]
    background: tuple[Box, ...]
    ignored_shapes: int = 0
    other_planes: int = 0


def rectangle_to_box(vertices: np.ndarray) -> Box:
    """Bounding box of a rectangle's last two coordinates, as half-open pixel bounds."""
    yx = np.asarray(vertices, dtype=float)[:, -2:]
    y0, x0 = np.floor(yx.min(axis=0) + 0.5).astype(int)
    y1, x1 = np.floor(yx.max(axis=0) + 0.5).astype(int)
    return int(y0), int(x0), int(y1), int(x1)


def collect_boxes(
    vertices: Sequence[np.ndarray],
    shape_types: Sequence[str],
    regions: Sequence[str],
    plane: Sequence[int] = (),
) -> BoxPrompts:
    """Sort the rectangles into foreground and background boxes on one plane.

    Parameters
    ----------
    vertices : sequence of numpy.ndarray
        One ``(4, D)`` array per shape, in image data coordinates.
    shape_types : sequence of str
        napari shape type of each shape; only ``"rectangle"`` is used.
    regions : sequence of str
        ``"foreground"`` or ``"background"`` per shape.
    plane : sequence of int
        Index of the plane in the leading axes of a stack (empty for 2-D).
        Rectangles with leading coordinates are kept only on this plane;
        2-D rectangles apply to every plane.

    Returns
    -------
    BoxPrompts
        The boxes and counts of what was left out.
    """
    found: dict[str, list[Box]] = {"foreground": [], "background": []}
    ignored = other = 0
    for verts, kind, region in zip(vertices, shape_types, regions, strict=True):
        if kind != "rectangle" or region not in found:
            ignored += 1
            continue
        leading = np.asarray(verts, dtype=float)[:, :-2]
        if leading.shape[1] and plane:
            where = np.round(leading[0, -len(plane) :]).astype(int)
            if tuple(where) != tuple(plane):
                other += 1
                continue
        found[region].append(rectangle_to_box(verts))
    return BoxPrompts(tuple(found["foreground"]), tuple(found["background"]), ignored, other)
