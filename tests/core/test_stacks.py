from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from napari_self2seg.core import (
    DenoiserConfig,
    LiveParameters,
    Phase,
    PrimalDualConfig,
    Self2SegConfig,
    dice,
    iterate_stack,
    segment,
    segment_stack,
)
from napari_self2seg.core.stacks import StackLayout

BOXES = {1: [(12, 12, 22, 22)], 0: [(0, 0, 6, 40)]}


def _config(lam: float = 0.02) -> Self2SegConfig:
    return Self2SegConfig(
        lam=lam,
        experts=("constant", "network"),
        max_outer_iter=3,
        denoiser=DenoiserConfig(width=4, n_blocks=1, patience=5, average_last=5, max_steps=60, warm_start=True),
        solver=PrimalDualConfig(max_iter=500),
    )


def _stack(planes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A disc drifting by one pixel per plane in noise, and its true masks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    truth = np.stack([(yy - 17) ** 2 + (xx - 16 - z) ** 2 < 9**2 for z in range(planes)])
    return 0.2 + 0.6 * truth + rng.normal(0, 0.1, truth.shape), truth


@pytest.mark.parametrize(
    ("shape", "channel_axis", "planes"),
    [
        ((4, 20, 24), None, (4,)),
        ((2, 3, 20, 24), None, (2, 3)),
        ((3, 2, 20, 24), 1, (3,)),
        ((2, 3, 20, 24, 2), -1, (2, 3)),
    ],
)
def test_layout_splits_and_restacks_planes(
    shape: tuple[int, ...], channel_axis: int | None, planes: tuple[int, ...]
) -> None:
    stack = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    layout = StackLayout.of(stack.shape, channel_axis)
    assert layout.plane_shape == planes and layout.yx == (20, 24)
    pieces = [layout.plane(stack, i) for i in range(layout.planes)]
    assert all(piece.shape[:2] == (20, 24) for piece in pieces)
    first = np.moveaxis(stack, channel_axis, -1) if channel_axis is not None else stack
    np.testing.assert_array_equal(pieces[0], first.reshape(-1, *first.shape[len(planes) :])[0])
    np.testing.assert_array_equal(layout.stack_images(pieces), stack)
    assert layout.stack_labels([piece[..., 0] if channel_axis is not None else piece for piece in pieces]).shape == (
        *planes,
        20,
        24,
    )


def test_stack_matches_independent_planes_and_warm_planes_settle() -> None:
    stack, truth = _stack()
    original = stack.copy()
    warm = segment_stack(stack, _config(), boxes=BOXES, device="cpu", instances=True)
    np.testing.assert_array_equal(stack, original)
    assert warm.labels.shape == stack.shape and warm.denoised.shape == stack.shape
    assert warm.objects is not None and warm.objects.shape == stack.shape and warm.objects.dtype == np.int32
    independent = [segment(plane, _config(), boxes=BOXES, device="cpu") for plane in stack]
    np.testing.assert_array_equal(warm.labels[0], independent[0].labels)  # the first plane is a plain run
    for z, result in enumerate(independent):
        assert dice(warm.mask[z], result.mask) >= 0.99
        assert dice(warm.mask[z], truth[z]) >= 0.95
    for plane in warm.planes[1:]:  # started near their solution: the disc moved, the next step kept it
        assert plane.outer_iterations == 2 and "settled" in plane.stop_reason
    cold = segment_stack(stack, _config(), boxes=BOXES, device="cpu", warm_start=False)
    for z, result in enumerate(independent):
        np.testing.assert_array_equal(cold.labels[z], result.labels)


def test_plane_boxes_replace_the_shared_ones_and_live_lam_carries_on() -> None:
    stack, _ = _stack(2)
    moved = {1: [(14, 14, 20, 20)], 0: [(34, 0, 40, 40)]}
    stream = iterate_stack(stack, _config(), boxes=BOXES, plane_boxes={1: moved}, device="cpu")
    first = next(stream)
    assert (first.plane, first.planes) == (0, 2)
    progress = stream.send(LiveParameters(lam=0.03))
    final = None
    for progress in stream:
        if progress.stack is not None:
            final = progress.stack
    assert progress.state.phase is Phase.DONE and final is not None
    assert [plane.lam for plane in final.planes] == [0.03, 0.03]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"plane_boxes": {5: BOXES}}, r"plane_boxes names plane 5, but the stack has planes 0 to 2"),
        (
            {"plane_boxes": {1: {1: [(12, 12, 22, 22)], 0: [(0, 0, 6, 40)], 2: [(30, 30, 38, 38)]}}},
            r"plane 1: its boxes give 3 classes but the first plane has 2",
        ),
        ({"boxes": {1: [(60, 60, 70, 70)], 0: [(0, 0, 6, 40)]}}, r"outside"),
        ({"channel_axis": 5}, r"channel_axis=5 is out of range"),
    ],
)
def test_bad_stack_inputs_are_refused_before_any_work(kwargs: dict[str, Any], match: str) -> None:
    stack, _ = _stack()
    arguments: dict[str, Any] = {"boxes": BOXES, **kwargs}
    with pytest.raises(ValueError, match=match):
        iterate_stack(stack, _config(), device="cpu", **arguments)


def test_a_constant_plane_is_named() -> None:
    stack, _ = _stack()
    stack[2] = 1.0
    with pytest.raises(ValueError, match=r"plane 2: image is constant"):
        iterate_stack(stack, _config(), boxes=BOXES, device="cpu")


def test_warm_planes_of_constants_start_from_their_own_split_and_choose_their_own_lambda() -> None:
    """Planes of one nuclei field at two noise levels: a warm plane of constants owes the plane before nothing."""
    from napari_self2seg.core import preset
    from napari_self2seg.core.automatic_lam import noise_lam
    from napari_self2seg.core.energy import weighted_mean
    from napari_self2seg.core.initialization import box_regions
    from napari_self2seg.core.stacks import carried_lam
    from napari_self2seg.core.tv_two_means import noise_level, otsu_bands
    from napari_self2seg.datasets import synthetic_nuclei

    sample = synthetic_nuclei(128, seed=3)
    rng = np.random.default_rng(0)
    stack = np.stack([sample.clean + rng.normal(0.0, noise, sample.clean.shape) for noise in (0.08, 0.2)])
    config = dataclasses.replace(preset("fast"), experts=("constant", "constant"))
    boxes = {"fg_boxes": [sample.fg_box], "bg_boxes": [sample.bg_box], "device": "cpu"}
    warm = segment_stack(stack, config, warm_start=True, **boxes)  # type: ignore[arg-type]
    alone = [segment(plane, config, **boxes) for plane in stack]  # type: ignore[arg-type]
    assert all(plane.automatic_lam and not plane.degenerate for plane in warm.planes)
    # the noise rule gives the noisier plane its own λ (normalised units), and the warm plane the independent mask
    assert abs(np.log(warm.planes[1].lam / warm.planes[0].lam)) > np.log(1.2)
    for plane, single in zip(warm.planes, alone, strict=True):
        assert dice(plane.mask, single.mask) > 0.99 and dice(plane.mask, sample.truth) > 0.9
    # the warm plane settled after one step, solved with the means of Otsu's bands of its own image
    second = warm.planes[1]
    assert second.outer_iterations == 1 and "previous plane and settled" in second.stop_reason
    f = torch.from_numpy((stack[1] - stack[1].min()) / (stack[1].max() - stack[1].min()))[None]
    regions = torch.from_numpy(box_regions({0: [sample.bg_box], 1: [sample.fg_box]}, sample.image.shape))
    bands = otsu_bands(f, regions)
    assert bands is not None
    means = torch.stack([weighted_mean(f, bands[k].to(f.dtype))[:, 0, 0] for k in range(2)])
    assert second.lam == pytest.approx(noise_lam(means, noise_level(f)), rel=1e-4)
    # a λ given (or chosen once from networks' residuals) is carried over as before
    given = dataclasses.replace(config, lam=0.05)
    assert carried_lam(given, warm.planes[0], noise_rule=True) == warm.planes[0].lam
    assert carried_lam(config, warm.planes[0], noise_rule=True) == "auto"
    assert carried_lam(config, warm.planes[0], noise_rule=False) == warm.planes[0].lam
