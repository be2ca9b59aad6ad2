from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

from napari_self2seg.batch_jobs import output_name
from napari_self2seg.image_files import find_images, read_image

if TYPE_CHECKING:
    from pathlib import Path


def test_find_images_expands_folders_and_patterns_and_says_why_an_argument_gives_none(tmp_path: Path) -> None:
    data, empty, out = tmp_path / "data", tmp_path / "empty", tmp_path / "data" / "results"
    for folder in (data, empty, out):
        folder.mkdir(parents=True, exist_ok=True)
    for name in ("b.tif", "a.PNG", "c.ome.tif", ".hidden.tif", "notes.txt"):
        (data / name).write_bytes(b"x")
    (data / "old_mask.tif").write_bytes(b"x")  # an input that merely ends like an output: kept outside the out folder
    (out / "a_mask.tif").write_bytes(b"x")  # a batch output: never an input
    arguments = [str(data), str(data / "b.tif"), str(empty), str(tmp_path / "*.jpg"), str(data / "notes.txt")]
    images, unusable = find_images([*arguments, str(tmp_path / "missing.tif"), str(out / "*.tif")], out)
    assert [p.name for p in images] == ["a.PNG", "b.tif", "c.ome.tif", "old_mask.tif"]  # b.tif named twice: once
    reasons = {u.name: u.reason for u in unusable}
    assert "holds no TIFF/PNG/JPEG image" in reasons[str(empty)]
    assert "no TIFF/PNG/JPEG file matches the pattern" in reasons[str(tmp_path / "*.jpg")]
    assert "unsupported extension '.txt'" in reasons[str(data / "notes.txt")]
    assert "does not exist" in reasons[str(tmp_path / "missing.tif")]
    assert "no TIFF/PNG/JPEG file matches" in reasons[str(out / "*.tif")]


@pytest.mark.parametrize(
    ("name", "expected"), [("cells.ome.tif", "cells"), ("a.b.TIFF", "a.b"), ("x.jpeg", "x"), ("plain.tif", "plain")]
)
def test_output_names_drop_the_whole_image_extension(name: str, expected: str, tmp_path: Path) -> None:
    assert output_name(tmp_path / name) == expected


@pytest.mark.parametrize(
    ("shape", "kwargs", "axis"),
    [
        ((4, 2, 20, 24), {"imagej": True, "metadata": {"axes": "ZCYX"}}, -3),
        ((3, 2, 20, 24), {"metadata": {"axes": "TCYX"}}, -3),
        ((20, 24, 3), {"photometric": "rgb"}, -1),
        ((5, 20, 24), {"photometric": "minisblack"}, None),
    ],
)
def test_tiff_channels_are_found_from_the_metadata(
    tmp_path: Path, shape: tuple[int, ...], kwargs: dict[str, Any], axis: int | None
) -> None:
    path = tmp_path / ("image.ome.tif" if "metadata" in kwargs and not kwargs.get("imagej") else "image.tif")
    array = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape) % 251
    tifffile.imwrite(path, array, **kwargs)
    read, channel_axis = read_image(path)
    np.testing.assert_array_equal(read, array)
    assert channel_axis == axis
