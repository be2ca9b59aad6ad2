from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from napari.utils.colormaps.standardize_color import transform_color
from napari.utils.notifications import notification_manager

from napari_self2seg._widget.boxes import CLASS_FEATURE
from napari_self2seg._widget.dock import NO_CHANNELS
from napari_self2seg._widget.layers import denoised_name, mask_name
from napari_self2seg.core import dice
from napari_self2seg.sample_data import box_layer_data, class_colour, colour_sample, three_textures_sample

from ..conftest import failing_stream
from .conftest import add_textures

pytestmark = pytest.mark.qt

MASK_NAME, DENOISED_NAME = mask_name("textures"), denoised_name("textures")


def wait_idle(qtbot: Any, widget: Any, timeout: int = 90_000) -> None:
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def messages() -> list[str]:
    return [str(n.message) for n in notification_manager.records]


def test_full_run_creates_and_updates_output_layers(accurate_dock: Any, qtbot: Any) -> None:
    dock = accurate_dock  # checks the mask's Dice
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


def test_automatic_lambda_is_shown_and_a_typed_lambda_overrides_it(accurate_dock: Any, qtbot: Any) -> None:
    dock = accurate_dock  # checks the mask's Dice
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
    assert run.config.experts == ("network", "network")  # equal-mean textures: the automatic kinds are networks
    assert "Every region is modelled by a denoiser (chosen from the boxes)" in dock.status.value
    assert not dock.undo_lam.enabled  # the box shows the run's λ, so the run's mask is shown
    assert dice(dock.viewer.layers[MASK_NAME].data, truth) >= 0.9
    assert dock.viewer.layers[MASK_NAME].metadata["self2seg"]["config"]["lam"] == pytest.approx(run.lam)
    typed = round(1.5 * run.lam, 4)
    dock.params.lam.value = typed  # typed: re-segments and switches the automatic choice off
    qtbot.waitUntil(lambda: dock.reseg_worker is None, timeout=30_000)
    assert not dock.params.lam_auto.value and dock.result.lam == pytest.approx(typed)
    dock.back_to_run_lambda()
    assert dock.result is run  # the run's own mask, exactly


def test_the_lambda_box_follows_an_automatic_lambda_derived_again_for_constants(dock: Any, qtbot: Any) -> None:
    import dataclasses

    from napari_self2seg.core import preset, segment
    from napari_self2seg.datasets import synthetic_nuclei

    sample = synthetic_nuclei(96, brightness_spread=0.6, seed=1)  # intensity only: two constants
    # two channels: the constants start at the boxes' means and move (one channel would keep Otsu's split)
    two_channels = np.stack([sample.image, sample.image])
    dock.image_layer.value = dock.viewer.add_image(two_channels, name="nuclei")
    dock.channels.value = "axis 0 holds channels"
    rects, kwargs, _ = box_layer_data({1: [sample.fg_box], 0: [sample.bg_box]})
    dock.viewer.add_shapes(rects, **kwargs)
    dock.params.lam_auto.value = True
    dock.params.max_outer_iter.value = 6
    dock.start()
    wait_idle(qtbot, dock)
    run = dock.run_result
    assert run.config.experts == ("constant", "constant") and run.automatic_lam, dock.status.value
    # the first step's λ (a one-step run of the same constants) is not the λ the run ended with
    constants = dataclasses.replace(preset("fast"), experts=("constant", "constant"), max_outer_iter=1)
    fg_boxes, bg_boxes = [sample.fg_box], [sample.bg_box]
    first = segment(two_channels, constants, channel_axis=0, fg_boxes=fg_boxes, bg_boxes=bg_boxes, device="cpu").lam
    assert abs(run.lam - first) > 1e-3 * first
    assert dock.params.lam.value == pytest.approx(run.lam, abs=5e-5)  # the box shows the run's last λ
    assert dock.params.lam_auto.value and not dock.undo_lam.enabled


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
        ("class_gap", "box of class 1"),
        ("no_boxes", "No box layer"),
        ("empty_boxes", "box of class 0 (background) and class 1 (foreground)"),
        ("only_foreground", "box of class 0 (background) in"),
        ("outside", "outside"),
    ],
)
def test_bad_inputs_give_a_clear_message_and_start_nothing(dock: Any, setup: str, match: str) -> None:
    viewer = dock.viewer
    if setup == "class_gap":
        _image, boxes, _ = add_textures(viewer)
        boxes.features[CLASS_FEATURE] = [0, 2]  # classes 0 and 2, none of class 1
    elif setup != "nothing":
        _image, boxes, _ = add_textures(viewer)
        if setup == "no_boxes":
            viewer.layers.remove(boxes)
        elif setup == "empty_boxes":
            boxes.data = []
        elif setup == "only_foreground":
            boxes.selected_data = {0}  # the background box (class 0)
            boxes.remove_selected()
        elif setup == "outside":
            boxes.add_rectangles(np.array([[100, 100], [100, 120], [120, 120], [120, 100]]))
            boxes.features.loc[len(boxes.data) - 1, CLASS_FEATURE] = 1
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


def test_new_box_layer_and_class_switch(dock: Any) -> None:
    dock.viewer.add_image(np.random.default_rng(0).random((40, 40)), name="img")
    layer = dock.create_box_layer()
    assert layer.name == "Self2Seg boxes" and layer.mode == "add_rectangle"
    dock.set_class(0)
    assert layer.feature_defaults[CLASS_FEATURE][0] == 0
    layer.add_rectangles(np.array([[0, 0], [0, 10], [10, 10], [10, 0]]))
    assert list(layer.features[CLASS_FEATURE]) == [0]
    dock.set_class(1)
    layer.add_rectangles(np.array([[20, 20], [20, 30], [30, 30], [30, 20]]))
    dock.add_box_class()  # class 2, offered and chosen
    assert dock.box_class.value == 2 and len(dock.box_class.choices) == 3
    layer.add_rectangles(np.array([[32, 32], [32, 38], [38, 38], [38, 32]]))
    assert list(layer.features[CLASS_FEATURE]) == [0, 1, 2]
    # the box edge takes the class colour, the same as the class in the output Labels layer
    np.testing.assert_allclose(layer.edge_color[2], transform_color(class_colour(2))[0])
    dock.set_class(12)
    assert "0 to 9" in dock.status.value and dock.box_class.value == 2


def test_stack_runs_on_the_shown_plane_only(dock: Any, qtbot: Any) -> None:
    from napari_self2seg.datasets import two_textures

    sample = two_textures(48)
    stack = np.stack([np.zeros_like(sample.image), sample.image, np.zeros_like(sample.image)])
    viewer = dock.viewer
    viewer.add_image(stack, name="stack")
    layer = dock.create_box_layer()
    viewer.dims.set_current_step(0, 1)
    for index, (y0, x0, y1, x1) in ((1, sample.fg_box), (0, sample.bg_box)):
        dock.set_class(index)
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
    assert dock.params.to_config().experts == ("auto", "auto")
    assert dock.params.texture_window.value == dock.params.to_config().texture_window == 5
    dock.params.texture_window.value = 4  # an even size typed in becomes the next odd one
    assert dock.params.to_config().texture_window == 5
    dock.params.preset.value = "paper"
    assert not dock.params.lam_auto.value and dock.params.to_config().lam == pytest.approx(0.04)
    assert dock.params.texture_window.value == dock.params.to_config().texture_window == 1
    assert dock.params.local_means.value == dock.params.to_config().local_means == 0
    assert dock.params.texture_features.value == dock.params.to_config().texture_features == 0
    dock.params.preset.value = "fast"
    assert dock.params.local_means.value == dock.params.to_config().local_means == 24
    assert dock.params.texture_features.value == dock.params.to_config().texture_features == 0.5
    assert "Gabor" in dock.params.texture_features.tooltip
    assert "total variation" in dock.params.lam.tooltip
    assert dock.params.device.choices[0] == "auto"


def test_boxes_on_another_plane_are_reported(dock: Any) -> None:
    viewer = dock.viewer
    viewer.add_image(np.random.default_rng(0).random((3, 40, 40)), name="stack")
    layer = dock.create_box_layer()
    viewer.dims.set_current_step(0, 2)
    dock.set_class(1)
    layer.add_rectangles(np.array([[0, 5, 5], [0, 5, 15], [0, 15, 15], [0, 15, 5]], dtype=float))
    dock.start()
    assert dock.worker is None
    assert "on other planes" in dock.status.value


def test_a_three_class_job_writes_class_indices(dock: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from napari_self2seg.core import preset
    from napari_self2seg.datasets import three_textures

    # the package's own defaults (the fixture's tiny denoisers are too weak for three textures)
    default = dataclasses.replace(preset("fast"), max_outer_iter=2)
    monkeypatch.setattr(type(dock.params), "to_config", lambda _self: default)

    (image, image_kwargs, _), (rects, box_kwargs, _) = three_textures_sample()
    dock.viewer.add_image(image, **image_kwargs)
    boxes = dock.viewer.add_shapes(rects, **box_kwargs)
    dock.boxes_layer.value = boxes
    assert len(dock.box_class.choices) == 3  # the layer's classes are offered
    dock.params.lam_auto.value = True
    dock.start()
    assert dock.worker is not None, dock.status.value
    wait_idle(qtbot, dock, timeout=120_000)
    labels = dock.viewer.layers[mask_name(image_kwargs["name"])]
    assert labels.data.dtype == np.uint8 and set(np.unique(labels.data)) == {0, 1, 2}, dock.status.value
    truth = three_textures(128).labels
    assert min(dice(labels.data == k, truth == k) for k in range(3)) > 0.8
    # the Labels layer shows each class in its boxes' colour
    np.testing.assert_allclose(labels.colormap.map(2)[:3], transform_color(class_colour(2))[0][:3], atol=1e-6)
    assert "Classes: 0:" in dock.status.value
    assert dock.run_result is not None and dock.run_result.classes == 3


def test_an_rgb_job_segments_by_colour(dock: Any, qtbot: Any) -> None:
    (image, image_kwargs, _), (rects, box_kwargs, _) = colour_sample()
    layer = dock.viewer.add_image(image, **image_kwargs)
    assert layer.rgb
    boxes = dock.viewer.add_shapes(rects, **box_kwargs)
    dock.boxes_layer.value = boxes
    dock.image_layer.value = layer
    dock.start()
    assert dock.worker is not None, dock.status.value
    wait_idle(qtbot, dock, timeout=120_000)
    labels = dock.viewer.layers[mask_name(image_kwargs["name"])].data
    denoised = dock.viewer.layers[denoised_name(image_kwargs["name"])]
    assert labels.shape == image.shape[:2] and denoised.rgb and denoised.data.shape == image.shape
    from napari_self2seg.datasets import hue_pair

    assert dice(labels == 1, hue_pair(128).labels == 1) > 0.9
    np.testing.assert_array_equal(layer.data, image)  # the input layer is untouched


def test_a_short_first_axis_can_be_read_as_channels(dock: Any, qtbot: Any) -> None:
    from napari_self2seg.datasets import hue_pair

    sample = hue_pair(48)
    layer = dock.viewer.add_image(np.moveaxis(sample.image, -1, 0), name="dyes")
    dock.image_layer.value = layer
    assert not dock.channels.native.isHidden()  # 3 planes or 3 channels? the user says
    dock.channels.value = "axis 0 holds channels"
    rects, kwargs, _ = box_layer_data(sample.boxes)
    dock.boxes_layer.value = dock.viewer.add_shapes(rects, **kwargs)
    dock.params.max_outer_iter.value = 1
    dock.start()
    assert dock.worker is not None, dock.status.value
    wait_idle(qtbot, dock, timeout=60_000)
    labels = dock.viewer.layers[mask_name("dyes")].data
    assert labels.shape == (48, 48) and dice(labels == 1, sample.labels == 1) > 0.9
    assert dock.viewer.layers[denoised_name("dyes")].data.shape == (3, 48, 48)
    dock.image_layer.value = dock.viewer.add_image(np.zeros((40, 32, 32)), name="a long stack")
    assert dock.channels.native.isHidden() and dock.channels.value == NO_CHANNELS  # 40 planes: not channels


def test_constant_classes_give_those_classes_a_constant_expert(dock: Any) -> None:
    (image, image_kwargs, _), (rects, box_kwargs, _) = three_textures_sample()
    dock.viewer.add_image(image, **image_kwargs)
    dock.boxes_layer.value = dock.viewer.add_shapes(rects, **box_kwargs)
    dock.params.constant_classes.value = "0, 2"
    assert dock._inputs().config.experts == ("constant", "auto", "constant")
    dock.params.constant_classes.value = ""
    assert dock._inputs().config.experts == ("auto", "auto")  # the form's own choice
    for bad, match in (("two", "class numbers such as '0 2'"), ("3", "classes 0 to 2")):
        dock.params.constant_classes.value = bad
        dock.start()
        assert dock.worker is None and match in dock.status.value


def test_a_mask_from_boxes_the_experts_cannot_tell_apart_comes_with_a_warning(dock: Any, qtbot: Any) -> None:
    noise = np.random.default_rng(11).normal(0.5, 0.1, (40, 40)).astype(np.float32)
    dock.viewer.add_image(noise, name="noise")
    rects, kwargs, _ = box_layer_data({1: [(4, 4, 18, 18)], 0: [(22, 22, 36, 36)]})
    dock.viewer.add_shapes(rects, **kwargs)
    dock.start()
    wait_idle(qtbot, dock)
    run = dock.run_result
    assert run.reliability_warning is not None and abs(run.box_separation) < 4
    assert "the experts barely tell the boxes apart" in dock.status.value
    # the notification is deferred to the event loop (DockWidget._notify): wait for it
    qtbot.waitUntil(lambda: any("the experts barely tell the boxes apart" in m for m in messages()), timeout=5_000)
