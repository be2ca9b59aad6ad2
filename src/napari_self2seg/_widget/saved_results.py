"""'Save results…': the output layers and a provenance record written as ``self2seg batch`` writes them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from ..core.measurements import measure_instances, table_csv, tables_by_plane
from ..output_files import OutputFiles
from ..provenance import environment, plane_record

if TYPE_CHECKING:
    from pathlib import Path

    from ..core import SegmentationResult
    from ..core.measurements import Table


def file_stem(layer_name: str) -> str:
    """Return a file-name-safe NAME for a layer (characters other than letters, digits, ``-_.`` become ``_``)."""
    stem = re.sub(r"[^\w.-]+", "_", layer_name).strip("._")
    return stem or "image"


def save_results(
    folder: Path,
    name: str,
    *,
    source: np.ndarray,
    source_path: str | None,
    mask: np.ndarray,
    denoised: np.ndarray | None,
    objects: np.ndarray | None,
    results: dict[tuple[int, ...], SegmentationResult],
    boxes: dict[int, tuple[tuple[int, int, int, int], ...]],
    seed: int,
) -> dict[str, Path]:
    """Write ``NAME_mask.tif``, ``NAME_denoised.tif``, objects, their table and ``NAME.json`` into ``folder``.

    All or nothing (:class:`~napari_self2seg.output_files.OutputFiles`): an
    existing file is replaced only once every new file is complete.

    Parameters
    ----------
    folder : Path
        Where to write (created if missing).
    name : str
        The NAME of the files (see :func:`file_stem`).
    source : numpy.ndarray
        The segmented image (every plane), for its SHA-256 and the table's intensities.
    source_path : str or None
        The file the image layer was read from, if any.
    mask, denoised, objects : numpy.ndarray or None
        The output layers' data.
    results : dict of plane index to SegmentationResult
        The result shown on each segmented plane (``()`` for a 2-D image).
    boxes : dict of int to boxes
        The box prompts per class.
    seed : int
        The run's seed.

    Returns
    -------
    dict of str to Path
        The files written, by kind.
    """
    paths = {"mask": folder / f"{name}_mask.tif"}
    if denoised is not None:
        paths["denoised"] = folder / f"{name}_denoised.tif"
    table = _objects_table(source, results)
    if objects is not None and table is not None:
        paths |= {"labels": folder / f"{name}_labels.tif", "table": folder / f"{name}_table.csv"}
    paths["record"] = folder / f"{name}.json"
    first = next(iter(results.values()))
    record = {
        "status": "ok",
        "input": {
            "layer": name,
            "path": source_path,
            "sha256": hashlib.sha256(np.ascontiguousarray(source).tobytes()).hexdigest(),
            "shape": list(source.shape),
            "dtype": str(source.dtype),
        },
        "parameters": {
            "config": dataclasses.asdict(first.config),
            "boxes": {str(k): [list(box) for box in v] for k, v in sorted(boxes.items())},
            "seed": seed,
        },
        "outputs": {kind: path.name for kind, path in paths.items() if kind != "record"},
        "environment": environment(),
        "device": first.device,
        "saved": datetime.now(UTC).isoformat(timespec="seconds"),
        "planes": [{"plane": list(plane), **plane_record(result)} for plane, result in sorted(results.items())],
    }
    with OutputFiles(paths) as outputs:
        outputs.write_tiff("mask", mask)
        if denoised is not None:
            outputs.write_tiff("denoised", denoised.astype(np.float32))
        if "labels" in paths and objects is not None and table is not None:
            outputs.write_tiff("labels", objects)
            outputs.write_text("table", table_csv(table))
        outputs.write_text("record", json.dumps(record, indent=2, allow_nan=False))
    return paths


def _objects_table(source: np.ndarray, results: dict[tuple[int, ...], SegmentationResult]) -> Table | None:
    """Measure the objects of every plane that has them; a ``plane`` column first for a stack."""

    def measured(plane: tuple[int, ...], result: SegmentationResult) -> Table:
        return measure_instances(result.instances, source[plane], result.denoised, channel_axis=result.channel_axis)

    if () in results:  # a 2-D (or multichannel) image: one table, no plane column
        only = results[()]
        return None if only.instances is None else measured((), only)
    tables = [
        (int(np.ravel_multi_index(plane, source.shape[: len(plane)])), measured(plane, result))
        for plane, result in sorted(results.items())
        if result.instances is not None
    ]
    return tables_by_plane(tables) if tables else None
