from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest

from napari_self2seg.core import DenoiserConfig, PrimalDualConfig
from napari_self2seg.datasets import two_textures
from napari_self2seg.sample_data import box_layer_data

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

pytestmark = pytest.mark.qt


@pytest.fixture(autouse=True)
def _no_stored_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELF2SEG_NOPERSIST", "1")


def _open_dock(make_napari_viewer: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, max_steps: int) -> Any:
    """Add the Self2Seg widget through the manifest; its experts are tiny and stop after ``max_steps``."""
    from napari_self2seg._widget.params import ParameterForm

    original = ParameterForm.to_config

    def tiny(self: ParameterForm) -> Any:
        cfg = original(self)
        denoiser = DenoiserConfig(
            width=8,
            n_blocks=2,
            patience=15,
            average_last=15,
            max_steps=max_steps,
            learning_rate=cfg.denoiser.learning_rate,
        )
        restart = None if cfg.restart_denoiser is None else dataclasses.replace(denoiser, width=12)
        return dataclasses.replace(
            cfg,
            denoiser=denoiser,
            restart_denoiser=restart,
            solver=PrimalDualConfig(max_iter=1500, gap_tol=1e-5),
        )

    monkeypatch.setattr(ParameterForm, "to_config", tiny)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-self2seg", "Self2Seg")
    widget.params.lam.value = 0.02
    widget.params.max_outer_iter.value = 2
    widget.params.device.value = "cpu"
    return widget


@pytest.fixture
def dock(make_napari_viewer: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The widget for tests of its plumbing: experts stop after 100 steps, too few for a reliable mask."""
    return _open_dock(make_napari_viewer, monkeypatch, max_steps=100)


@pytest.fixture
def accurate_dock(make_napari_viewer: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The widget for tests that check the mask's Dice on textures: experts train up to 200 steps."""
    return _open_dock(make_napari_viewer, monkeypatch, max_steps=200)


def add_textures(viewer: Any, size: int = 48) -> tuple[Any, Any, np.ndarray]:
    sample = two_textures(size)
    image = viewer.add_image(sample.image, name="textures")
    rects, kwargs, _ = box_layer_data({1: [sample.fg_box], 0: [sample.bg_box]})
    boxes = viewer.add_shapes(rects, **kwargs)
    return image, boxes, sample.truth
