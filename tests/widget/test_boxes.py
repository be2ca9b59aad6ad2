from __future__ import annotations

import numpy as np

from napari_self2seg._widget.boxes import (
    Geometry,
    class_of,
    collect_boxes,
    plane_index,
    rectangle_to_box,
    to_image_pixels,
)


def rect(y0: float, x0: float, y1: float, x1: float, *lead: float) -> np.ndarray:
    corners = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
    return np.array([[*lead, *c] for c in corners], dtype=float)


def test_rectangle_to_box_rounds_to_pixel_bounds() -> None:
    assert rectangle_to_box(rect(2.4, 3.6, 10.5, 20.2)) == (2, 4, 11, 20)


def test_boxes_are_sorted_by_class_and_other_shapes_ignored() -> None:
    prompts = collect_boxes(
        [
            rect(0, 0, 5, 5),
            rect(10, 10, 20, 20),
            rect(1, 1, 2, 2),
            rect(3, 3, 4, 4),
            rect(6, 6, 8, 8),
            rect(9, 9, 12, 12),
        ],
        ["rectangle", "rectangle", "ellipse", "rectangle", "rectangle", "rectangle"],
        [1, 0, 1, 1, 3, None],
    )
    assert prompts.boxes == {0: ((10, 10, 20, 20),), 1: ((0, 0, 5, 5), (3, 3, 4, 4)), 3: ((6, 6, 8, 8),)}
    assert prompts.ignored_shapes == 2
    assert prompts.missing == [2]  # classes 0-3 drawn except 2


def test_missing_classes_always_include_background_and_one_object() -> None:
    assert collect_boxes([], [], []).missing == [0, 1]
    assert collect_boxes([rect(0, 0, 5, 5)], ["rectangle"], [1]).missing == [0]


def test_stored_class_values_and_legacy_region_names() -> None:
    assert [class_of(v) for v in (0, 2, "3", "background", "foreground", 2.0)] == [0, 2, 3, 0, 1, 2]
    assert [class_of(v) for v in ("", "x", None, -1, 256, float("nan"))] == [None] * 6


def test_layer_coordinates_map_to_image_pixels_and_planes() -> None:
    shapes = Geometry(scale=np.array([2.0, 2.0]), translate=np.array([10.0, 0.0]))
    image = Geometry(scale=np.array([1.0, 1.0]), translate=np.array([0.0, 0.0]))
    (mapped,) = to_image_pixels([rect(0, 0, 5, 5)], shapes, image, 2)
    assert rectangle_to_box(mapped) == (10, 0, 20, 10)
    assert plane_index([2.6, 10.0, 3.0], [3]) == (2,) and plane_index([7.0, 0, 0], [3]) == (2,)


def test_stack_boxes_are_kept_on_their_plane_only() -> None:
    prompts = collect_boxes(
        [rect(0, 0, 5, 5, 2), rect(0, 0, 6, 6, 3), rect(7, 7, 9, 9)],
        ["rectangle"] * 3,
        [1, 1, 0],
        plane=(2,),
    )
    assert prompts.boxes[1] == ((0, 0, 5, 5),)
    assert prompts.boxes[0] == ((7, 7, 9, 9),)  # a 2-D box applies to every plane
    assert prompts.other_planes == 1
