from __future__ import annotations

import numpy as np

from napari_self2seg._widget.boxes import collect_boxes, rectangle_to_box


def rect(y0: float, x0: float, y1: float, x1: float, *lead: float) -> np.ndarray:
    corners = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
    return np.array([[*lead, *c] for c in corners], dtype=float)


def test_rectangle_to_box_rounds_to_pixel_bounds() -> None:
    assert rectangle_to_box(rect(2.4, 3.6, 10.5, 20.2)) == (2, 4, 11, 20)


def test_boxes_are_sorted_by_region_and_other_shapes_ignored() -> None:
    prompts = collect_boxes(
        [rect(0, 0, 5, 5), rect(10, 10, 20, 20), rect(1, 1, 2, 2), rect(3, 3, 4, 4)],
        ["rectangle", "rectangle", "ellipse", "rectangle"],
        ["foreground", "background", "foreground", "foreground"],
    )
    assert prompts.foreground == ((0, 0, 5, 5), (3, 3, 4, 4))
    assert prompts.background == ((10, 10, 20, 20),)
    assert prompts.ignored_shapes == 1


def test_stack_boxes_are_kept_on_their_plane_only() -> None:
    prompts = collect_boxes(
        [rect(0, 0, 5, 5, 2), rect(0, 0, 6, 6, 3), rect(7, 7, 9, 9)],
        ["rectangle"] * 3,
        ["foreground", "foreground", "background"],
        plane=(2,),
    )
    assert prompts.foreground == ((0, 0, 5, 5),)
    assert prompts.background == ((7, 7, 9, 9),)  # a 2-D box applies to every plane
    assert prompts.other_planes == 1
