"""``self2seg segment --labels-out/--table-out``: objects and their table from the command line."""

from __future__ import annotations

import csv
import json
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile

from napari_self2seg import cli
from napari_self2seg.datasets import synthetic_nuclei

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def nuclei_file(tmp_path: Path) -> Path:
    sample = synthetic_nuclei(96, n=6, touching=True, noise=0.1, seed=1)
    path = tmp_path / "nuclei.tif"
    tifffile.imwrite(path, (np.clip(sample.image, 0, None) * 1000).astype(np.uint16))
    return path


def run(path: Path, *extra: str) -> int:
    common = ["segment", str(path), "--init", "threshold", "--experts", "1", "--max-outer", "1", "-q"]
    common += ["--device", "cpu"]
    return cli.main([*common, "--mask-out", str(path.parent / "classes.tif"), *extra])


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_labels_table_and_record_are_written(nuclei_file: Path) -> None:
    out = nuclei_file.parent
    args = ["--labels-out", str(out / "objects.tif"), "--table-out", str(out / "objects.csv")]
    assert run(nuclei_file, *args, "--json-out", str(out / "run.json")) == 0
    objects = tifffile.imread(out / "objects.tif")
    classes = tifffile.imread(out / "classes.tif")
    assert objects.dtype == np.int32 and objects.shape == classes.shape
    count = int(objects.max())
    assert count >= 3 and set(np.unique(objects)) == set(range(count + 1))
    rows = read_table(out / "objects.csv")
    assert len(rows) == count and [int(r["label"]) for r in rows] == list(range(1, count + 1))
    assert all(int(r["class"]) == 1 for r in rows)
    assert [float(r["area"]) for r in rows] == [float((objects == i).sum()) for i in range(1, count + 1)]
    assert {"input_intensity_mean", "denoised_intensity_max", "eccentricity", "solidity", "bbox-3"} <= set(rows[0])
    assert json.loads((out / "run.json").read_text())["objects"] == count


def test_no_objects_warn_and_still_write_an_empty_labels_image(nuclei_file: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = nuclei_file.parent
    args = ["--labels-out", str(out / "objects.tif"), "--table-out", str(out / "objects.csv"), "--min-size", "9000"]
    assert run(nuclei_file, *args) == 0
    assert "no objects" in capsys.readouterr().err
    assert not tifffile.imread(out / "objects.tif").any() and read_table(out / "objects.csv") == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--table-out", "t.csv"], "--table-out needs objects: add --labels-out"),
        (["--min-size", "5", "--no-split"], "--min-size, --no-split need objects"),
        (["--labels-out", "o.tif", "--min-size", "10000"], "larger than the image"),
        (["--labels-out", "o.tif", "--min-distance", "0"], "min_distance must be >= 1"),
        (["--labels-out", "."], "folder"),
    ],
)
def test_object_options_are_checked_before_the_run(nuclei_file: Path, capsys, extra: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    out = nuclei_file.parent
    extra = [str(out / e) if e.endswith((".csv", ".tif")) or e == "." else e for e in extra]
    assert run(nuclei_file, *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (out / "classes.tif").exists()
