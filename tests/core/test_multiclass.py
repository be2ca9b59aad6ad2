"""K regions and C channels: the simplex solver, its K = 2 regression, and 3-class / colour runs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from skimage import filters

from napari_self2seg.core import dice, preset, resegment, segment
from napari_self2seg.core.config import PrimalDualConfig
from napari_self2seg.core.energy import joint_energy, squared_residual
from napari_self2seg.core.primal_dual import PrimalDualState, duality_gap, solve
from napari_self2seg.core.simplex import project_simplex
from napari_self2seg.core.solver import labels_of
from napari_self2seg.datasets import (
    blob_mask,
    hue_pair,
    synthetic_nuclei,
    three_region_layout,
    three_textures,
    two_textures,
)
from napari_self2seg.sample_data import load_noisy_nuclei

from . import binary_reference

if TYPE_CHECKING:
    from collections.abc import Callable

threshold_multiotsu: Callable[..., np.ndarray] = filters.threshold_multiotsu
threshold_otsu: Callable[[np.ndarray], float] = filters.threshold_otsu
LEVELS = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)


def three_class_problem(noise: float, size: int = 32) -> tuple[np.ndarray, torch.Tensor]:
    """Chan–Vese residuals of a noisy 3-region image with the true levels 0.1, 0.5, 0.9."""
    labels = three_region_layout(size)
    gen = torch.Generator().manual_seed(0)
    f = LEVELS[torch.from_numpy(labels).long()] + noise * torch.randn(size, size, generator=gen, dtype=torch.float64)
    residuals = torch.stack([squared_residual(f[None], level) for level in LEVELS])
    return labels, residuals


def test_three_class_gap_reaches_tolerance_in_float64() -> None:
    _, residuals = three_class_problem(noise=0.2)
    state = PrimalDualState.from_memberships(torch.full_like(residuals, 1 / 3))
    progress = solve(state, residuals, 0.05, PrimalDualConfig(max_iter=30000, gap_tol=1e-10, check_every=100))
    assert progress.converged
    assert 0.0 <= float(duality_gap(state, residuals, 0.05)) / residuals[0].numel() <= 1e-10
    assert bool((state.u >= 0).all()) and torch.allclose(state.u.sum(dim=0), torch.ones_like(state.u[0]))
    assert float(torch.linalg.vector_norm(state.p, dim=1).max()) <= 0.025 * (1 + 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_three_class_segmentation_step_does_not_increase_the_energy(seed: int) -> None:
    _, residuals = three_class_problem(noise=0.3)
    start = project_simplex(torch.rand(residuals.shape, generator=torch.Generator().manual_seed(seed)).double())
    before = float(joint_energy(start, residuals, 0.05))
    state = PrimalDualState.from_memberships(start)
    solve(state, residuals, 0.05, PrimalDualConfig(max_iter=3000, gap_tol=1e-9, check_every=50))
    assert float(joint_energy(state.u, residuals, 0.05)) <= before


def test_exact_labels_on_a_tiny_noise_free_three_region_image() -> None:
    labels, residuals = three_class_problem(noise=0.0, size=20)
    state = PrimalDualState.from_memberships(torch.full_like(residuals, 1 / 3))
    solve(state, residuals, 0.01, PrimalDualConfig(max_iter=20000, gap_tol=1e-12, check_every=100))
    assert np.array_equal(labels_of(state.u).numpy(), labels)


def binary_test_images() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The images of the existing tests with their true foreground: (image, truth)."""
    textures = two_textures(48)
    nuclei = synthetic_nuclei(64, n=6, seed=2)
    disk = blob_mask((40, 40), 0.3)
    rng = np.random.default_rng(0)
    sample, labels = load_noisy_nuclei()
    return {
        "textures": (textures.image, textures.truth),
        "nuclei": (nuclei.image, nuclei.truth),
        "disk": (np.where(disk, 0.7, 0.3) + rng.normal(0.0, 0.2, disk.shape), disk),
        "bundled sample": (sample[:96, :96], labels[:96, :96] > 0),
    }


@pytest.mark.parametrize("name", list(binary_test_images()))
@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_two_classes_reproduce_the_binary_solver(name: str, mu: float) -> None:
    """K = 2 on the simplex is the binary problem: same iterates, same mask, same gap (docs/method.md)."""
    image, truth = binary_test_images()[name]
    f = torch.from_numpy((image - image.min()) / np.ptp(image)).double()
    r_fg = squared_residual(f[None], f[torch.from_numpy(truth)].mean())
    r_bg = squared_residual(f[None], f[torch.from_numpy(~truth)].mean())
    config = PrimalDualConfig(scale_steps_to_lam=True, max_iter=1500, gap_tol=1e-9, check_every=25)
    start = torch.full_like(f, 0.5)
    reference = (f > 0.5).double()
    binary = binary_reference.PrimalDualState.from_mask(start)
    binary_report = binary_reference.solve(binary, r_fg - r_bg, 0.03, config, mu=mu, reference=reference)
    classes = PrimalDualState.from_memberships(torch.stack((1 - start, start)))
    report = solve(
        classes, torch.stack((r_bg, r_fg)), 0.03, config, mu=mu, reference=torch.stack((1 - reference, reference))
    )
    assert report.iteration == binary_report.iteration
    assert report.gap == pytest.approx(binary_report.gap, rel=1e-6, abs=1e-12)
    torch.testing.assert_close(classes.u[1], binary.u, atol=1e-9, rtol=0)
    assert torch.equal(labels_of(classes.u) == 1, binary.u >= 0.5)


def test_three_equal_mean_textures_are_told_apart() -> None:
    sample = three_textures()
    levels = threshold_multiotsu(sample.image, classes=3)
    by_intensity = np.digitize(sample.image, levels)
    chance = [max(dice(by_intensity == j, sample.labels == k) for j in range(3)) for k in range(3)]
    assert max(chance) < 0.6  # intensity alone cannot do it
    result = segment(sample.image, boxes=sample.boxes, device="cpu")
    scores = [dice(result.labels == k, sample.labels == k) for k in range(3)]
    assert min(scores) >= 0.9, scores
    assert result.relaxed.shape == (3, *sample.labels.shape) and result.labels.dtype == np.uint8
    assert len(result.config.experts) == 3 and result.timings.experts and len(result.timings.experts) == 3


def test_colours_of_equal_brightness_are_told_apart() -> None:
    sample = hue_pair()
    grey = sample.image.mean(axis=-1)
    by_grey = grey > threshold_otsu(grey)
    truth = sample.labels == 1
    assert max(dice(by_grey, truth), dice(~by_grey, truth)) < 0.6  # grey Otsu is near chance
    kept = sample.image.copy()
    result = segment(sample.image, boxes=sample.boxes, channel_axis=-1, device="cpu", keep_problem=True)
    assert dice(result.mask, truth) >= 0.9
    assert np.array_equal(sample.image, kept)
    assert result.denoised.shape == sample.image.shape and len(result.image_range) == 3
    assert result.problem is not None and result.problem.expert_images.shape == (2, *sample.image.shape)
    again = resegment(result, lam=result.lam)
    assert np.array_equal(again.labels, result.labels)
    np.testing.assert_array_equal(again.denoised, result.denoised)


def test_channels_first_gives_the_same_run_as_channels_last() -> None:
    sample = hue_pair(48)
    fast = preset("fast")  # its experts stop early: the layouts must agree, not the masks be good
    config = dataclasses.replace(fast, denoiser=dataclasses.replace(fast.denoiser, max_steps=60))
    last = segment(sample.image, config, boxes=sample.boxes, channel_axis=-1, device="cpu")
    first = segment(np.moveaxis(sample.image, -1, 0), config, boxes=sample.boxes, channel_axis=0, device="cpu")
    assert np.array_equal(first.labels, last.labels)
    np.testing.assert_allclose(np.moveaxis(first.denoised, 0, -1), last.denoised, rtol=1e-5, atol=1e-6)
