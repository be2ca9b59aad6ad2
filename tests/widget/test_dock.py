from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_self2seg._widget.layers import denoised_name, mask_name
from napari_self2seg.core import dice

from ..conftest import failing_stream
from .conftest import add_textures

pytestmark = pytest.mark.qt

MASK_NAME, DENOISED_NAME = mask_name("textures"), denoised_name("textures")


def wait_idle(qtbot: Any, widget: Any, timeout: int = 90_000) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def messages() -> list[str]:
    return [str(n.message) for n in notification_manager.records]


def test_full_run_creates_and_updates_output_layers(dock: Any, qtbot: Any) -> None:
    viewer = dock.viewer
    image, boxes, truth = add_textures(viewer)
    before_image, before_boxes = image.data.copy(), [v.copy() for v in boxes.data]
    updates: list[dict[str, Any]] = []
    dock.outputs.write = _counting(dock.outputs.write, updates)
    dock.start()
    assert dock.run_button.text == "Stop"
    wait_idle(qtbot, dock)
    assert dock.run_button.text == "Run"
    mask_layer, denoised_layer = viewer.layers[MASK_NAME], viewer.layers[DENOISED_NAME]
    assert len([u for u in updates if u.get("mask") is not None]) >= 2
    assert dice(mask_layer.data, truth) >= 0.9
    assert denoised_layer.data.shape == image.data.shape and np.isfinite(denoised_layer.data).all()
    meta = mask_layer.metadata["self2seg"]
    assert meta["seed"] == 0 and meta["config"]["lam"] == pytest.approx(0.02) and meta["energies"] and meta["version"]
    np.testing.assert_array_equal(image.data, before_image)  # inputs untouched
    assert all(np.array_equal(a, b) for a, b in zip(boxes.data, before_boxes, strict=True))
    # the box layer stays above the outputs
    assert viewer.layers.index(boxes) > viewer.layers.index(mask_layer)
    assert "Done" in dock.status.value


def _counting(write: Any, log: list[dict[str, Any]]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        log.append(kwargs)
        return write(*args, **kwargs)

    return wrapper


def test_automatic_lambda_is_shown_and_a_typed_lambda_overrides_it(dock: Any, qtbot: Any) -> None:
    _, _, truth = add_textures(dock.viewer)
    dock.params.lam_auto.value = True
    assert dock.params.to_config().lam == "auto"
    dock.start()
    wait_idle(qtbot, dock)
    run = dock.run_result
    assert run.automatic_lam and 0.001 <= run.lam < 1.0
    assert dock.params.lam.value == pytest.approx(run.lam, abs=5e-5)  # the box shows the λ chosen
    assert dock.params.lam_auto.value  # showing it is not a user's change
    assert f"λ = {run.lam:.3g} was chosen from the image" in dock.status.value
    assert not dock.undo_lam.enabled  # the box shows the run's λ, so the run's mask is shown
    assert dice(dock.viewer.layers[MASK_NAME].data, truth) >= 0.9
    assert dock.viewer.layers[MASK_NAME].metadata["self2seg"]["config"]["lam"] == pytest.approx(run.lam)
    typed = round(1.5 * run.lam, 4)
    dock.params.lam.value = typed  # typed: re-segments and switches the automatic choice off
    qtbot.waitUntil(lambda: dock.reseg_worker is None, timeout=30_000)
    assert not dock.params.lam_auto.value and dock.result.lam == pytest.approx(typed)
    dock.back_to_run_lambda()
    assert dock.result is run  # the run's own mask, exactly


def test_stop_mid_training_is_prompt_and_keeps_valid_layers(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.params.max_outer_iter.value = 20
    dock.start()
    qtbot.waitUntil(lambda: DENOISED_NAME in dock.viewer.layers, timeout=60_000)
    pressed = time.perf_counter()
    dock.toggle_run()  # the Run button reads "Stop" now
    wait_idle(qtbot, dock, timeout=10_000)
    assert time.perf_counter() - pressed < 3.0
    assert "Stopped" in dock.status.value
    mask, denoised = dock.viewer.layers[MASK_NAME].data, dock.viewer.layers[DENOISED_NAME].data
    if "No mask was complete yet" in dock.status.value:  # both layers back to "nothing yet"
        assert not mask.any() and np.isnan(denoised).all()
    else:  # a complete mask and its denoised image
        assert "complete and kept" in dock.status.value
        assert mask.any() and np.isfinite(denoised).all()
    assert dock.run_button.text == "Run"


def test_lambda_change_after_run_resegments_without_training(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.start()
    wait_idle(qtbot, dock)
    mask_layer = dock.viewer.layers[MASK_NAME]
    before = mask_layer.data.copy()
    fg_expert = dock.result.problem.expert_images[1].copy()
    dock.params.lam.value = 0.2
    assert dock.worker is None  # no new training job
    assert dock.reseg_worker is not None  # solved in a thread, the main thread stays free
    qtbot.waitUntil(lambda: dock.reseg_worker is None, timeout=30_000)
    assert "Re-segmented with λ = 0.2" in dock.status.value
    assert mask_layer.data.sum() < before.sum()
    np.testing.assert_array_equal(dock.result.problem.expert_images[1], fg_expert)
    assert mask_layer.metadata["self2seg"]["config"]["lam"] == pytest.approx(0.2)


def test_rapid_lambda_changes_are_coalesced_to_the_last_value(
    dock: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_self2seg._widget import dock as dock_module
    from napari_self2seg._widget import worker as worker_module

    add_textures(dock.viewer)
    dock.start()
    wait_idle(qtbot, dock)
    solved: list[float] = []
    original = worker_module.start_resegment_worker

    def counting(result: Any, lam: float, **handlers: Any) -> Any:
        solved.append(lam)
        return original(result, lam, **handlers)

    monkeypatch.setattr(dock_module, "start_resegment_worker", counting)
    for lam in (0.05, 0.08, 0.1, 0.15, 0.2):
        dock.params.lam.value = lam  # the first starts a solve; the rest arrive while it runs
    qtbot.waitUntil(lambda: dock.reseg_worker is None and len(solved) == 2, timeout=30_000)
    assert solved == [0.05, 0.2]
    assert dock.result is not None and dock.result.config.lam == pytest.approx(0.2)
    assert dock.viewer.layers[MASK_NAME].metadata["self2seg"]["config"]["lam"] == pytest.approx(0.2)
    assert "Re-segmented with λ = 0.2" in dock.status.value


def test_new_run_wins_over_a_pending_resegmentation(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.start()
    wait_idle(qtbot, dock)
    dock.params.lam.value = 0.2
    dock.start()  # while the re-segmentation may still run
    wait_idle(qtbot, dock)
    qtbot.waitUntil(lambda: dock.reseg_worker is None, timeout=30_000)
    assert dock.result is not None and dock.result.outer_iterations >= 1
    assert "Done" in dock.status.value


def test_lambda_change_during_run_is_sent_to_the_worker(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.start()
    dock.params.lam.value = 5.0
    wait_idle(qtbot, dock)
    assert dock.run_result is not None and dock.run_result.config.lam == 5.0


def test_worker_exception_reaches_a_notification_and_reenables_run(
    dock: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = failing_stream("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr("napari_self2seg._widget.dock.iterate", failing)
    add_textures(dock.viewer)
    dock.start()
    wait_idle(qtbot, dock, timeout=20_000)
    assert dock.run_button.text == "Run"
    assert "Out of memory" in dock.status.value
    assert any("Out of memory" in m for m in messages())


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ("nothing", "No image layer"),
        ("rgb", "RGB image"),
        ("no_boxes", "No box layer"),
        ("empty_boxes", "foreground and background box"),
        ("only_foreground", "background box"),
        ("outside", "outside"),
    ],
)
def test_bad_inputs_give_a_clear_message_and_start_nothing(dock: Any, setup: str, match: str) -> None:
    viewer = dock.viewer
    if setup == "rgb":
        viewer.add_image(np.zeros((32, 32, 3), np.uint8), rgb=True)
    elif setup != "nothing":
        _image, boxes, _ = add_textures(viewer)
        if setup == "no_boxes":
            viewer.layers.remove(boxes)
        elif setup == "empty_boxes":
            boxes.data = []
        elif setup == "only_foreground":
            boxes.selected_data = {1}
            boxes.remove_selected()
        elif setup == "outside":
            boxes.add_rectangles(np.array([[100, 100], [100, 120], [120, 120], [120, 100]]))
            boxes.features.loc[len(boxes.data) - 1, "region"] = "foreground"
    dock.start()
    assert dock.worker is None
    assert match in dock.status.value
    assert any(match in m for m in messages())


def test_non_rectangles_are_ignored_with_a_note(dock: Any, qtbot: Any) -> None:
    _, boxes, _ = add_textures(dock.viewer)
    boxes.add_ellipses(np.array([[30, 30], [40, 40]]))
    dock.params.max_outer_iter.value = 1
    dock.start()
    assert dock.worker is not None
    assert any("not rectangles" in m for m in messages())
    wait_idle(qtbot, dock)


def test_pressing_run_twice_does_not_start_a_second_job(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.start()
    first = dock.worker
    dock.start()
    assert dock.worker is first
    dock.stop()
    wait_idle(qtbot, dock)


def test_deleting_the_image_during_a_run_stops_it_cleanly(dock: Any, qtbot: Any) -> None:
    image, _, _ = add_textures(dock.viewer)
    dock.params.max_outer_iter.value = 20
    dock.start()
    dock.viewer.layers.remove(image)
    wait_idle(qtbot, dock, timeout=10_000)
    assert "deleted during the run" in dock.status.value
    assert dock.run_button.text == "Run"


def test_changing_the_image_choice_mid_run_keeps_the_running_input(dock: Any, qtbot: Any) -> None:
    _image, _, _ = add_textures(dock.viewer)
    dock.params.max_outer_iter.value = 1
    dock.start()
    other = dock.viewer.add_image(np.ones((48, 48)), name="other")
    dock.image_layer.value = other
    wait_idle(qtbot, dock)
    assert any("keeps using the image it started with" in m for m in messages())
    assert dock.viewer.layers[MASK_NAME].data.any()


def test_new_box_layer_and_region_switch(dock: Any) -> None:
    dock.viewer.add_image(np.random.default_rng(0).random((40, 40)), name="img")
    layer = dock.create_box_layer()
    assert layer.name == "Self2Seg boxes" and layer.mode == "add_rectangle"
    dock.set_region("background")
    assert layer.feature_defaults["region"][0] == "background"
    layer.add_rectangles(np.array([[0, 0], [0, 10], [10, 10], [10, 0]]))
    assert list(layer.features["region"]) == ["background"]
    dock.set_region("foreground")
    layer.add_rectangles(np.array([[20, 20], [20, 30], [30, 30], [30, 20]]))
    assert list(layer.features["region"]) == ["background", "foreground"]


def test_stack_runs_on_the_shown_plane_only(dock: Any, qtbot: Any) -> None:
    from napari_self2seg.datasets import two_textures

    sample = two_textures(48)
    stack = np.stack([np.zeros_like(sample.image), sample.image, np.zeros_like(sample.image)])
    viewer = dock.viewer
    viewer.add_image(stack, name="stack")
    layer = dock.create_box_layer()
    viewer.dims.set_current_step(0, 1)
    for region, (y0, x0, y1, x1) in (("foreground", sample.fg_box), ("background", sample.bg_box)):
        dock.set_region(region)
        layer.add_rectangles(np.array([[1, y0, x0], [1, y0, x1], [1, y1, x1], [1, y1, x0]], dtype=float))
    dock.params.max_outer_iter.value = 1
    dock.start()
    wait_idle(qtbot, dock)
    assert not any("on other planes" in m for m in messages())  # all boxes are on the shown plane
    mask = viewer.layers[mask_name("stack")].data
    denoised = viewer.layers[denoised_name("stack")].data
    assert np.isfinite(denoised[1]).all()
    assert np.isnan(denoised[0]).all() and np.isnan(denoised[2]).all()  # unrun planes stay transparent
    assert mask.shape == stack.shape
    assert mask[1].any() and not mask[0].any() and not mask[2].any()


def test_closing_the_viewer_during_a_run_stops_the_worker(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.params.max_outer_iter.value = 20
    dock.start()
    worker = dock.worker
    finished = []
    worker.finished.connect(lambda: finished.append(True))
    dock.viewer.close()
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)


def test_restore_defaults_and_tooltips(dock: Any) -> None:
    dock.params.lam.value = 0.5
    assert not dock.params.lam_auto.value  # a typed λ switches the automatic choice off
    dock.params.restore_defaults()
    assert dock.params.lam_auto.value and dock.params.to_config().lam == "auto"
    assert dock.params.to_config().experts == ("auto", "network")
    dock.params.preset.value = "paper"
    assert not dock.params.lam_auto.value and dock.params.to_config().lam == pytest.approx(0.04)
    assert "total variation" in dock.params.lam.tooltip
    assert dock.params.device.choices[0] == "auto"


def test_boxes_on_another_plane_are_reported(dock: Any) -> None:
    viewer = dock.viewer
    viewer.add_image(np.random.default_rng(0).random((3, 40, 40)), name="stack")
    layer = dock.create_box_layer()
    viewer.dims.set_current_step(0, 2)
    dock.set_region("foreground")
    layer.add_rectangles(np.array([[0, 5, 5], [0, 5, 15], [0, 15, 15], [0, 15, 5]], dtype=float))
    dock.start()
    assert dock.worker is None
    assert "on other planes" in dock.status.value
