"""Per-object measurements of instance labels: a table of sizes, shapes and intensities."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

import numpy as np
from skimage import measure

if TYPE_CHECKING:
    from collections.abc import Callable

    from .instances import Instances
    from .stacks import StackResult

regionprops_table: Callable[..., dict[str, np.ndarray]] = measure.regionprops_table
SHAPE_PROPERTIES = ("label", "area", "centroid", "bbox", "eccentricity", "solidity")
INTENSITY_PROPERTIES = ("intensity_mean", "intensity_max")

Table = dict[str, np.ndarray]
"""Column name → one value per object, in label order."""


def _channels_last(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Return ``image`` as ``(H, W)`` or ``(H, W, C)`` float64 for regionprops."""
    values = np.asarray(image, dtype=np.float64)
    return values if channel_axis is None else np.moveaxis(values, channel_axis, -1)


def measure_instances(
    instances: Instances | None,
    image: np.ndarray,
    denoised: np.ndarray | None = None,
    *,
    channel_axis: int | None = None,
) -> Table:
    """Measure every object: label, class, area, centroid, bounding box, shape and intensities.

    Parameters
    ----------
    instances : Instances
        The objects (``segment(..., instances=True).instances``); None (a result made
        without ``instances=True``) is refused with a message saying so.
    image : np.ndarray
        The input image, in its own scale and layout.
    denoised : np.ndarray, optional
        The denoised image (same layout as ``image``); adds its intensity columns.
    channel_axis : int, optional
        The channel axis of ``image`` and ``denoised``; intensity columns then end
        in ``-0``, ``-1``, … per channel.

    Returns
    -------
    Table
        Columns ``label, class, area, centroid-0, centroid-1, bbox-0..3 (min row, min col,
        max row, max col; max exclusive), eccentricity, solidity, input_intensity_mean,
        input_intensity_max`` and, with ``denoised``, ``denoised_intensity_mean/max``;
        lengths and centroids in pixels, one row per object in label order.
    """
    if instances is None:
        raise ValueError("this result has no objects to measure: run segment(..., instances=True)")
    labels = instances.labels
    given = {"input": image} if denoised is None else {"input": image, "denoised": denoised}
    pictures = {name: _channels_last(picture, channel_axis) for name, picture in given.items()}
    for name, picture in pictures.items():
        size = picture.shape[:2]
        if size != labels.shape:
            raise ValueError(f"the {name} image is {size[0]}×{size[1]} but the labels are {labels.shape}")
    geometry = dict(regionprops_table(labels, properties=SHAPE_PROPERTIES))
    numbers = geometry.pop("label")
    table: Table = {"label": numbers, "class": instances.classes[numbers - 1], **geometry}
    for name, picture in pictures.items():
        values = regionprops_table(labels, picture, properties=INTENSITY_PROPERTIES)
        table.update({f"{name}_{column}": column_values for column, column_values in values.items()})
    return table


def table_csv(table: Table) -> str:
    """Return the table as CSV text: a header row, then one row per object."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(table)
    writer.writerows(zip(*(column.tolist() for column in table.values()), strict=True))
    return text.getvalue()


def measure_stack(result: StackResult, image: np.ndarray) -> Table:
    """Measure the objects of every plane of a stack run; a first column ``plane`` names each row's plane.

    Parameters
    ----------
    result : StackResult
        A stack run made with ``instances=True``.
    image : np.ndarray
        The stack that was segmented, in its own layout.

    Returns
    -------
    Table
        The columns of :func:`measure_instances` after ``plane`` (C-order
        plane index); ``label`` numbers the objects within their plane.
    """
    layout = result.layout
    tables = []
    for index, plane in enumerate(result.planes):
        table = measure_instances(
            plane.instances,
            layout.plane(image, index),
            layout.plane(result.denoised, index),
            channel_axis=layout.plane_channel_axis,
        )
        tables.append((index, table))
    return tables_by_plane(tables)


def tables_by_plane(tables: list[tuple[int, Table]]) -> Table:
    """Join per-plane tables into one whose first column ``plane`` names each row's plane (C-order number)."""
    joined = [{"plane": np.full(len(table["label"]), index, dtype=np.int64), **table} for index, table in tables]
    return {column: np.concatenate([table[column] for table in joined]) for column in joined[0]}
