"""The dock's objects option: an int32 objects layer with measurements, kept in step with λ, and its table."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_self2seg._widget.layers import mask_name, objects_name
from napari_self2seg.datasets import synthetic_nuclei

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.qt


def wait_idle(qtbot: Any, dock: Any) -> None:
    qtbot.waitUntil(lambda: dock.worker is None and dock.reseg_worker is None, timeout=90_000)


def start_nuclei_run(dock: Any, qtbot: Any) -> Any:
    sample = synthetic_nuclei(96, n=6, touching=True, noise=0.1, seed=1)
    dock.viewer.add_image(sample.image, name="nuclei")
    dock.params.init.value = "threshold"
    dock.params.background_expert.value = "constant"
    dock.params.instances.value = True
    dock.start()
    wait_idle(qtbot, dock)
    return sample


def test_objects_layer_follows_the_mask_and_lambda_and_the_table_is_saved(
    dock: Any, qtbot: Any, tmp_path: Path
) -> None:
    start_nuclei_run(dock, qtbot)
    objects = dock.viewer.layers[objects_name("nuclei")]
    mask = dock.viewer.layers[mask_name("nuclei")]
    assert objects.data.dtype == np.int32 and objects.data.shape == mask.data.shape
    count = int(objects.data.max())
    assert count >= 4 and dock.save_table.enabled
    features = objects.features
    assert list(features["index"]) == list(range(1, count + 1))
    assert list(features["area"]) == [float((objects.data == i).sum()) for i in range(1, count + 1)]
    assert {"class", "input_intensity_mean", "denoised_intensity_mean", "eccentricity"} <= set(features.columns)
    assert objects.metadata["self2seg"]["config"]["instances"]["min_size"] == dock.params.min_size.value

    dock.params.lam.value = 0.08  # smoother: objects re-made from the re-solved mask
    wait_idle(qtbot, dock)
    assert dock.result.lam == pytest.approx(0.08) and dock.result.instances is not None
    assert np.array_equal(objects.data > 0, dock.result.instances.labels > 0)
    assert len(objects.features) == dock.result.instances.count

    saved = dock.save_objects_table(tmp_path / "objects.csv")
    assert saved == tmp_path / "objects.csv" and not list(tmp_path.glob("*.part")) + list(tmp_path.glob(".*.part"))
    with saved.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == dock.result.instances.count and rows[0]["label"] == "1"
    assert dock.save_objects_table(tmp_path) is None  # a folder is not a file to write
    assert "Could not save the table" in str(notification_manager.records[-1].message)


def test_a_run_without_objects_clears_them_and_cannot_save_a_table(dock: Any, qtbot: Any, tmp_path: Path) -> None:
    start_nuclei_run(dock, qtbot)
    objects = dock.viewer.layers[objects_name("nuclei")]
    assert objects.data.any()
    dock.params.instances.value = False
    dock.start()
    wait_idle(qtbot, dock)
    assert not objects.data.any() and len(objects.features) == 0  # they belonged to the earlier mask
    assert not dock.save_table.enabled
    assert dock.save_objects_table(tmp_path / "t.csv") is None and not (tmp_path / "t.csv").exists()
    assert "tick 'split into objects'" in str(notification_manager.records[-1].message)


def test_objects_are_not_made_unless_asked(dock: Any, qtbot: Any) -> None:
    sample = synthetic_nuclei(64, n=3, noise=0.05, seed=0)
    dock.viewer.add_image(sample.image, name="nuclei")
    dock.params.init.value = "threshold"
    dock.params.max_outer_iter.value = 1
    dock.start()
    wait_idle(qtbot, dock)
    assert mask_name("nuclei") in dock.viewer.layers and objects_name("nuclei") not in dock.viewer.layers
