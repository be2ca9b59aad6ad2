"""The regions network experts train on after the first step (``Self2SegConfig.training_margin``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

import napari_self2seg.core.solver as solver_module
from napari_self2seg.core import Phase, Self2SegConfig, iterate, preset
from napari_self2seg.core.denoiser.training import train_expert
from napari_self2seg.core.initialization import label_regions
from napari_self2seg.core.region_interior import MIN_INTERIOR_FRACTION, region_interior
from napari_self2seg.datasets import two_textures


def brute_force_interior(region: np.ndarray, margin: int) -> np.ndarray:
    """Pixels whose every pixel within Chebyshev distance ``margin`` (inside the image) is in the region."""
    h, w = region.shape
    out = np.zeros_like(region)
    for y in range(h):
        for x in range(w):
            window = region[max(y - margin, 0) : y + margin + 1, max(x - margin, 0) : x + margin + 1]
            out[y, x] = bool(window.all())
    return out


@pytest.mark.parametrize("margin", [1, 2, 3])
def test_interior_is_the_square_erosion_with_the_border_no_boundary(margin: int) -> None:
    rng = np.random.default_rng(margin)
    labels = ndi.zoom(rng.integers(0, 3, (6, 6)), 4, order=0)  # three classes in 4-px blocks, 24²
    regions = label_regions(labels, 3)
    interior = region_interior(torch.from_numpy(regions), margin).numpy()
    for k in range(3):
        expected = brute_force_interior(regions[k], margin)
        if expected.sum() < MIN_INTERIOR_FRACTION * regions[k].sum():
            expected = regions[k]
        np.testing.assert_array_equal(interior[k], expected)
    assert (interior <= regions).all()


def test_a_region_too_thin_for_the_margin_trains_whole_and_zero_changes_nothing() -> None:
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[:, 8:11] = 1  # a 3-px band: its interior at margin 2 is empty
    regions = torch.from_numpy(label_regions(labels, 2))
    interior = region_interior(regions, 2)
    assert torch.equal(interior[1], regions[1])
    assert interior[0].sum() == 20 * (8 - 2) + 20 * (9 - 2)  # the background loses 2 px beside the band
    assert region_interior(regions, 0) is regions
    with pytest.raises(ValueError, match="margin must be >= 0"):
        region_interior(regions, -1)


def test_presets_and_check() -> None:
    assert preset("paper").training_margin == 0 and preset("fast").training_margin == 0  # opt-in
    with pytest.raises(ValueError, match="training_margin must be >= 0 pixels"):
        Self2SegConfig(training_margin=-1)


def test_experts_train_on_the_boxes_first_then_on_the_interior_of_the_last_mask(
    monkeypatch: pytest.MonkeyPatch, tiny_config: Self2SegConfig
) -> None:
    margin = 2
    sample = two_textures(48)
    trained_on: list[np.ndarray] = []

    def recording(net: Any, image: torch.Tensor, region: torch.Tensor, *args: Any) -> Any:
        trained_on.append(region.cpu().numpy().copy())
        return train_expert(net, image, region, *args)

    monkeypatch.setattr(solver_module, "train_expert", recording)
    config = dataclasses.replace(
        tiny_config, training_margin=margin, max_outer_iter=1, stop_ratio=0.0, experts=("network",)
    )
    run = iterate(sample.image, config, fg_boxes=[sample.fg_box], bg_boxes=[sample.bg_box], device="cpu")
    states = list(run)
    result = states[-1].result
    assert result is not None and not result.degenerate
    step_one = next(s.labels for s in states if s.phase is Phase.SEGMENT and s.message.endswith("done"))
    assert len(trained_on) == 4  # background and foreground, before and after the segmentation step
    y0, x0, y1, x1 = sample.fg_box
    assert trained_on[1].sum() == (y1 - y0) * (x1 - x0)  # the first training: the boxes as drawn
    expected = region_interior(torch.from_numpy(label_regions(step_one, 2)), margin).numpy()
    np.testing.assert_array_equal(np.stack(trained_on[2:]), expected)
    assert expected.sum() < label_regions(step_one, 2).sum()  # the rims were left out
