"""'Run on all planes': a stack segmented plane after plane in the dock's worker."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import tifffile

from napari_self2seg._widget.layers import denoised_name, mask_name
from napari_self2seg.core import dice
from napari_self2seg.datasets import two_textures

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.qt


def _stack_with_boxes(dock: Any, planes: int = 3) -> np.ndarray:
    """Add a stack of the texture pair (fresh noise per plane) and its two boxes, drawn on plane 0 only."""
    sample = two_textures(48)
    rng = np.random.default_rng(0)
    stack = np.stack([sample.image + rng.normal(0, 0.02, sample.image.shape) for _ in range(planes)])
    dock.image_layer.value = dock.viewer.add_image(stack, name="stack")
    layer = dock.create_box_layer()
    dock.viewer.dims.set_current_step(0, 0)
    for index, (y0, x0, y1, x1) in ((1, sample.fg_box), (0, sample.bg_box)):
        dock.set_class(index)
        layer.add_rectangles(np.array([[0, y0, x0], [0, y0, x1], [0, y1, x1], [0, y1, x0]], dtype=float))
    assert not dock.all_planes.native.isHidden() and dock.follow_planes.native.isHidden()
    dock.all_planes.value = True
    assert not dock.follow_planes.native.isHidden()
    return sample.truth


def test_all_planes_writes_every_plane_and_lam_resolves_the_plane_shown(
    accurate_dock: Any, qtbot: Any, tmp_path: Path
) -> None:
    dock = accurate_dock  # checks the mask's Dice
    truth = _stack_with_boxes(dock)
    seen: list[int] = []
    dock.viewer.dims.events.current_step.connect(lambda event: seen.append(int(event.value[0])))
    dock.start()
    qtbot.waitUntil(lambda: dock.worker is None, timeout=120_000)
    mask = dock.viewer.layers[mask_name("stack")].data
    denoised = dock.viewer.layers[denoised_name("stack")].data
    assert "All 3 planes done" in dock.status.value
    for z in range(3):
        assert dice(mask[z], truth) >= 0.9 and np.isfinite(denoised[z]).all()
    assert {1, 2} <= set(seen)  # the view followed the running plane
    job = dock._result_job
    assert sorted(job.stack.results) == [(0,), (1,), (2,)]
    dock.viewer.dims.set_current_step(0, 1)
    before = mask.copy()
    dock.params.lam.value = 0.05  # a smoother λ, re-solved on plane 1 only
    qtbot.waitUntil(lambda: dock.reseg_worker is None and "Re-segmented" in dock.status.value, timeout=30_000)
    assert job.plane == (1,) and dock.run_result is job.stack.results[(1,)]
    np.testing.assert_array_equal(mask[0], before[0])
    np.testing.assert_array_equal(mask[2], before[2])
    # 'Save results…' writes the layers and a record, as self2seg batch does
    written = dock.save_results(tmp_path / "saved")
    assert sorted(written) == ["denoised", "mask", "record"]
    np.testing.assert_array_equal(tifffile.imread(written["mask"]), mask)
    record = json.loads(written["record"].read_text())
    assert record["input"]["layer"] == "stack" and record["input"]["shape"] == [3, 48, 48]
    assert [plane["plane"] for plane in record["planes"]] == [[0], [1], [2]]
    assert record["planes"][1]["lam"] == 0.05 and record["parameters"]["seed"] == dock.params.seed.value


def test_stop_mid_stack_keeps_the_finished_planes(dock: Any, qtbot: Any) -> None:
    _stack_with_boxes(dock, planes=4)
    dock.start()
    qtbot.waitUntil(lambda: dock._job is not None and dock._job.stack.current >= 1, timeout=120_000)
    dock.stop()
    qtbot.waitUntil(lambda: dock.worker is None, timeout=30_000)
    mask = dock.viewer.layers[mask_name("stack")].data
    denoised = dock.viewer.layers[denoised_name("stack")].data
    assert "planes are finished and kept" in dock.status.value
    assert mask[0].any() and np.isfinite(denoised[0]).all()  # plane 0 finished before Stop
    assert not mask[3].any() and np.isnan(denoised[3]).all()  # never started
