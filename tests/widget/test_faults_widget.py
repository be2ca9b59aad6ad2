"""Widget faults and trust: λ round trips, one-region results, failures, deletions, closing, layer placement.

Drives a real napari viewer headlessly (run under xvfb-run). The API/CLI faults are in tests/test_faults.py.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_self2seg._widget.layers import denoised_name, mask_name
from napari_self2seg._widget.params import TOOLTIPS
from napari_self2seg.datasets import two_textures

from .conftest import add_textures

pytestmark = pytest.mark.qt

MASK, DENOISED = mask_name("textures"), denoised_name("textures")


@pytest.fixture(autouse=True)
def _fresh_notifications() -> None:
    """Count only this test's notifications (the manager keeps them across tests)."""
    notification_manager.records.clear()


def wait_idle(qtbot: Any, widget: Any, timeout: int = 90_000) -> None:
    qtbot.waitUntil(lambda: widget.worker is None and widget.reseg_worker is None, timeout=timeout)


def messages() -> list[str]:
    return [str(n.message) for n in notification_manager.records]


def finished_run(dock: Any, qtbot: Any) -> tuple[np.ndarray, np.ndarray]:
    """Run on the textures and return copies of the mask and denoised planes."""
    add_textures(dock.viewer)
    dock.start()
    wait_idle(qtbot, dock)
    assert dock.run_result is not None and not dock.run_result.degenerate
    return dock.viewer.layers[MASK].data.copy(), dock.viewer.layers[DENOISED].data.copy()


def set_lambda(dock: Any, qtbot: Any, lam: float) -> np.ndarray:
    dock.params.lam.value = lam
    wait_idle(qtbot, dock, timeout=30_000)
    return np.asarray(dock.viewer.layers[MASK].data.copy())


def test_live_lambda_is_an_exact_round_trip(dock: Any, qtbot: Any) -> None:
    run_mask, _ = finished_run(dock, qtbot)
    run_lam = dock.run_result.config.lam
    first = {lam: set_lambda(dock, qtbot, lam) for lam in (0.05, 0.1, 0.15)}
    assert not np.array_equal(first[0.05], first[0.15])
    for lam in (0.15, 0.05, 0.1, 0.05):  # any order: the same λ gives the same mask
        np.testing.assert_array_equal(set_lambda(dock, qtbot, lam), first[lam])
    np.testing.assert_array_equal(set_lambda(dock, qtbot, run_lam), run_mask)  # the run's own mask, exactly
    assert "Back to the run's mask" in dock.status.value
    assert dock.result is dock.run_result


def test_one_region_resolve_warns_keeps_the_mask_and_can_be_undone(dock: Any, qtbot: Any) -> None:
    run_mask, _ = finished_run(dock, qtbot)
    assert not dock.undo_lam.enabled
    shown = set_lambda(dock, qtbot, 3.0)  # floods or vanishes on this image
    np.testing.assert_array_equal(shown, run_mask)  # the one-region mask is not shown
    assert "makes the whole image" in dock.status.value
    qtbot.waitUntil(lambda: any("makes the whole image" in m for m in messages()), timeout=5_000)
    assert dock.undo_lam.enabled and "0.02" in dock.undo_lam.text
    dock.undo_lam.clicked.emit()
    wait_idle(qtbot, dock)
    assert dock.params.lam.value == pytest.approx(0.02)
    np.testing.assert_array_equal(dock.viewer.layers[MASK].data, run_mask)
    assert not dock.undo_lam.enabled
    assert "λ re-solves" not in dock.energy_plot.series  # a re-solve that is not shown is not plotted either
    set_lambda(dock, qtbot, 0.05)
    assert dock.energy_plot.series["λ re-solves"].notes == ["λ=0.05"]


def test_one_region_run_warns_keeps_earlier_results_and_progress_is_not_full(dock: Any, qtbot: Any) -> None:
    run_mask, run_denoised = finished_run(dock, qtbot)
    first = dock.run_result
    dock.params.lam.value = 5.0
    wait_idle(qtbot, dock)
    dock.start()
    wait_idle(qtbot, dock)
    assert dock.run_result is not None and dock.run_result.degenerate
    assert dock.run_result.restarted  # the fast preset's restart with larger experts collapsed too (λ = 5)
    assert dock.result is first  # what is shown is still the earlier run's result
    assert dock.progress.value < 100 and "one region" in dock.progress.native.format()
    assert "made the whole image one region (or gave one region the other's boxes)" in dock.status.value
    qtbot.waitUntil(lambda: any("one region" in m for m in messages()), timeout=5_000)
    np.testing.assert_array_equal(dock.viewer.layers[MASK].data, run_mask)
    np.testing.assert_array_equal(dock.viewer.layers[DENOISED].data, run_denoised)
    # the way out: a lower λ re-solves this run's stored state in milliseconds
    lowered = set_lambda(dock, qtbot, 0.02)
    assert lowered.any() and not lowered.all()


def _failing_after(kind: type[BaseException], when: str) -> Any:
    from napari_self2seg.core import iterate as real_iterate

    def failing(*args: Any, **kwargs: Any) -> Any:
        stream = real_iterate(*args, **kwargs)

        def gen() -> Any:
            for state in stream:
                yield state
                if (when == "denoised" and state.denoised is not None) or (when == "mask" and state.labels_step):
                    raise kind("weights") if kind is KeyError else kind("CUDA error: an illegal memory access")

        return gen()

    return failing


@pytest.mark.parametrize("when", ["denoised", "mask"])
def test_failed_run_keeps_both_previous_outputs(
    dock: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    run_mask, run_denoised = finished_run(dock, qtbot)
    run_result = dock.run_result
    monkeypatch.setattr("napari_self2seg._widget.dock.iterate", _failing_after(RuntimeError, when))
    dock.start()
    wait_idle(qtbot, dock)
    assert "illegal memory access" in dock.status.value and "previous mask and denoised image are kept" in (
        dock.status.value
    )
    assert "failed" in dock.progress.native.format()
    np.testing.assert_array_equal(dock.viewer.layers[MASK].data, run_mask)
    np.testing.assert_array_equal(dock.viewer.layers[DENOISED].data, run_denoised)
    assert dock.run_result is run_result  # the failed run replaced nothing: λ still tunes the earlier run
    assert dock.result is run_result


def test_unexpected_worker_error_names_its_type_and_logs_the_traceback(
    dock: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("napari_self2seg._widget.dock.iterate", _failing_after(KeyError, "denoised"))
    add_textures(dock.viewer)
    with caplog.at_level(logging.ERROR):
        dock.start()
        wait_idle(qtbot, dock)
    assert "unexpected KeyError: 'weights'" in dock.status.value and "bug" in dock.status.value
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)
    assert dock.run_button.text == "Run"


def test_deleting_the_box_layer_mid_run_stops_cleanly_and_survives(dock: Any, qtbot: Any) -> None:
    _, boxes, _ = add_textures(dock.viewer)
    dock.params.max_outer_iter.value = 20
    dock.start()
    qtbot.wait(300)
    dock.viewer.layers.remove(boxes)  # the notification comes after this event, not inside it
    wait_idle(qtbot, dock, timeout=15_000)
    qtbot.waitUntil(lambda: any("was deleted during the run" in m for m in messages()), timeout=5_000)
    assert "deleted during the run" in dock.status.value
    dock.viewer.add_points(np.zeros((1, 2)))  # the viewer still draws
    qtbot.wait(100)
    assert dock.run_button.text == "Run"


def test_closing_the_viewer_mid_run_is_not_reported_as_deleting_layers(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.params.max_outer_iter.value = 20
    dock.start()
    finished: list[bool] = []
    dock.worker.finished.connect(lambda: finished.append(True))
    qtbot.wait(200)
    dock.viewer.close()
    qtbot.waitUntil(lambda: bool(finished), timeout=10_000)
    qtbot.wait(200)  # let deferred notifications fire, if any
    assert not any("deleted during the run" in m for m in messages())


def test_threshold_init_says_the_boxes_are_not_used(dock: Any, qtbot: Any) -> None:
    add_textures(dock.viewer)
    dock.params.init.value = "threshold"
    dock.params.background_expert.value = "constant"
    dock.params.max_outer_iter.value = 1
    dock.start()
    qtbot.waitUntil(lambda: any("are not used" in m for m in messages()), timeout=5_000)
    wait_idle(qtbot, dock)


def test_outputs_are_named_after_their_image_and_keep_the_input_visible(dock: Any, qtbot: Any) -> None:
    viewer = dock.viewer
    run_mask, _ = finished_run(dock, qtbot)
    source, boxes = viewer.layers["textures"], viewer.layers["Self2Seg boxes"]
    mask, denoised = viewer.layers[MASK], viewer.layers[DENOISED]
    order = [viewer.layers.index(layer) for layer in (source, denoised, mask, boxes)]
    assert order == sorted(order)  # input < denoised < mask < boxes
    assert not denoised.visible and source.visible  # the input stays visible by default
    dock.show_denoised.value = True
    assert denoised.visible
    # a second image of the same shape gets its own outputs; the first one's stay
    other = viewer.add_image(two_textures(48, seed=3).image, name="other")
    viewer.layers.move(viewer.layers.index(boxes), len(viewer.layers) - 1)
    dock.image_layer.value = other
    dock.params.max_outer_iter.value = 1
    dock.start()
    wait_idle(qtbot, dock)
    assert mask_name("other") in viewer.layers and denoised_name("other") in viewer.layers
    np.testing.assert_array_equal(viewer.layers[MASK].data, run_mask)
    assert viewer.layers[denoised_name("other")].visible  # the toggle holds for new layers


def test_progress_shows_percentage_and_phase_and_plots_fill(dock: Any, qtbot: Any) -> None:
    formats: list[str] = []
    add_textures(dock.viewer)
    dock.start()
    assert dock.progress.native.format() == "%p% · starting" and dock.progress.value == 0
    dock.worker.yielded.connect(lambda _state: formats.append(dock.progress.native.format()))
    wait_idle(qtbot, dock)
    assert dock.progress.value == 100 and dock.progress.native.format() == "%p% · done"
    assert any("training the foreground denoiser" in f for f in formats)
    assert any("drawing the mask" in f for f in formats)
    assert len(dock.energy_plot.series["run"].points) == len(dock.run_result.energies)
    assert {"foreground", "background"} <= set(dock.loss_plot.series)
    assert dock.energy_plot.x_label and dock.energy_plot.y_label == "energy"


@pytest.mark.parametrize("name", sorted(TOOLTIPS))
def test_tooltips_speak_plain_language_first(name: str) -> None:
    text = TOOLTIPS[name]
    plain = text.split("Maths:")[0]
    for jargon in ("eq.", "Algorithm", "closed-form", "weighted mean", "user-given"):
        assert jargon not in plain, (name, jargon)
    assert "user-given" not in text
