"""The Gabor-energy texture term (core/texture_features.py) and how a run of networks uses it."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from napari_self2seg.core import DenoiserConfig, PrimalDualConfig, Self2SegConfig, dice, segment
from napari_self2seg.core._validation import normalise
from napari_self2seg.core.automatic_lam import data_term_spread
from napari_self2seg.core.texture_features import (
    ENERGY_FLOOR,
    FREQUENCIES,
    MAX_WINDOW,
    ORIENTATIONS,
    feature_scale,
    gabor_energies,
    texture_residuals,
)
from napari_self2seg.datasets import blob_mask, texture, texture_pair


def feature_index(frequency: int, orientation: int) -> int:
    return frequency * ORIENTATIONS + orientation


def test_a_plane_wave_excites_the_filter_of_its_frequency_and_orientation() -> None:
    shape = (96, 96)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    for f_index, o_index in [(1, 0), (2, 2), (3, 4)]:
        frequency, angle = FREQUENCIES[f_index], math.pi * o_index / ORIENTATIONS
        wave = np.cos(2 * np.pi * frequency * (xx * math.cos(angle) + yy * math.sin(angle)))
        energies = gabor_energies(torch.from_numpy(wave[None]))
        assert energies.shape == (len(FREQUENCIES) * ORIENTATIONS, *shape)
        centre = energies[:, 32:64, 32:64].mean(dim=(1, 2))
        assert int(centre.argmax()) == feature_index(f_index, o_index)
        # the same frequency across the wave's direction sees nothing of it
        across = feature_index(f_index, (o_index + ORIENTATIONS // 2) % ORIENTATIONS)
        assert float(centre[across]) < float(centre.max()) - 5


def test_the_coarse_filters_energy_stays_within_a_few_pixels_of_its_region(monkeypatch: pytest.MonkeyPatch) -> None:
    # period-14 stripes on the left half, flat on the right: how far does the coarsest feature leak?
    xx = np.mgrid[0:64, 0:128][1].astype(np.float64)
    half = np.cos(2 * np.pi * FREQUENCIES[-1] * xx) * (xx < 64)

    def leak(depth: int) -> float:
        feature = gabor_energies(torch.from_numpy(half[None]))[feature_index(len(FREQUENCIES) - 1, 0), 32]
        return float(feature[64 + depth] - feature[20:44].mean())  # log energy, relative to inside the stripes

    # capped at MAX_WINDOW (4 px), 12 px past the edge the energy is below e^-4 of the stripes' own
    assert MAX_WINDOW == 4.0 and leak(12) < -4.0
    # a window of 0.75 periods (10.5 px) carries a tenth of it that far
    monkeypatch.setattr("napari_self2seg.core.texture_features.MAX_WINDOW", math.inf)
    assert leak(12) > -3.0


def test_a_flat_image_has_the_floor_energy_everywhere() -> None:
    flat = torch.full((1, 40, 50), 0.7, dtype=torch.float64)
    energies = gabor_energies(flat)
    assert energies.shape == (len(FREQUENCIES) * ORIENTATIONS, 40, 50) and energies.dtype == torch.float64
    torch.testing.assert_close(energies, torch.full_like(energies, math.log(ENERGY_FLOOR)), atol=1e-6, rtol=0)


def test_the_channels_energies_are_summed() -> None:
    grain = torch.from_numpy(texture("grain", (48, 48), period=6, seed=4))
    one = gabor_energies(grain[None])
    two = gabor_energies(torch.stack([grain, -grain]))  # each channel has the same energy
    torch.testing.assert_close(torch.exp(two) - ENERGY_FLOOR, 2 * (torch.exp(one) - ENERGY_FLOOR), rtol=1e-6, atol=1e-9)


def test_feature_scale_and_texture_residuals_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(4, 6, 7)) * np.array([1.0, 2.0, 0.5, 3.0])[:, None, None]
    regions = np.zeros((2, 6, 7), dtype=bool)
    regions[0, :2], regions[1, 4:, 2:] = True, True
    scale = feature_scale(torch.from_numpy(features), torch.from_numpy(regions)).numpy()
    expected_scale = np.sqrt(np.mean([[features[j][r].var() for r in regions] for j in range(4)], axis=1))
    np.testing.assert_allclose(scale, expected_scale, rtol=1e-12)

    fit = np.zeros_like(regions)
    fit[0, :3], fit[1, 3:] = True, True
    residuals = texture_residuals(torch.from_numpy(features), torch.from_numpy(scale), torch.from_numpy(fit)).numpy()
    for k in range(2):
        mean = np.array([features[j][fit[k]].mean() for j in range(4)])
        for y in range(6):
            for x in range(7):
                expected = np.mean(((features[:, y, x] - mean) / scale) ** 2)
                assert residuals[k, y, x] == pytest.approx(expected, rel=1e-12)
    # the class mean is the minimiser of the class's summed term (the closed-form expert step)
    normalised = features / scale[:, None, None]
    for k in range(2):
        total = residuals[k][fit[k]].sum()
        shifted = normalised[:, fit[k]] + 0.05
        assert total < np.mean((normalised[:, fit[k]] - shifted.mean(axis=1, keepdims=True)) ** 2, axis=0).sum()


def test_texture_residuals_name_an_empty_class() -> None:
    features = torch.zeros((3, 4, 4))
    fit = torch.zeros((2, 4, 4), dtype=torch.bool)
    fit[0] = True
    with pytest.raises(ValueError, match="class 1 has no pixel"):
        texture_residuals(features, torch.ones(3), fit)


def test_the_features_tell_apart_textures_of_equal_mean_and_variance() -> None:
    shape = (96, 96)
    truth = blob_mask(shape, 0.4, kind="disk", seed=1)
    sample = texture_pair(
        texture("grain", shape, period=4, seed=1), texture("grain", shape, period=14, seed=2), truth, noise=0.2, seed=0
    )
    energies = gabor_energies(torch.from_numpy(sample.image[None].astype(np.float64)))
    boxes = torch.zeros((2, *shape), dtype=torch.bool)
    for k, (r0, c0, r1, c1) in enumerate([sample.bg_box, sample.fg_box]):
        boxes[k, r0:r1, c0:c1] = True
    terms = texture_residuals(energies, feature_scale(energies, boxes), boxes)
    labels = (terms[1] < terms[0]).numpy()  # the pixelwise decision, no TV
    assert dice(labels, truth) > 0.85


TINY_NETWORKS = Self2SegConfig(
    lam="auto",
    residual="blind",
    texture_window=5,
    max_outer_iter=2,
    denoiser=DenoiserConfig(width=8, n_blocks=2, patience=10, average_last=10, max_steps=100, patch_size=32),
    solver=PrimalDualConfig(scale_steps_to_lam=True, max_iter=1000, gap_tol=1e-5),
)


def test_a_run_of_networks_adds_the_texture_term_weighted_to_the_experts_spread() -> None:
    shape = (64, 64)
    truth = blob_mask(shape, 0.35, kind="disk", seed=0)
    sample = texture_pair(
        texture("checkerboard", shape, period=12), texture("stripes", shape, period=9, angle=45), truth, noise=0.1
    )
    boxes = {1: [sample.fg_box], 0: [sample.bg_box]}
    one_step = dataclasses.replace(TINY_NETWORKS, max_outer_iter=1)
    plain = segment(sample.image, one_step, boxes=boxes, seed=0, device="cpu", keep_problem=True)
    weight_one = dataclasses.replace(one_step, texture_features=1.0)
    combined = segment(sample.image, weight_one, boxes=boxes, seed=0, device="cpu", keep_problem=True)
    assert plain.problem is not None and combined.problem is not None
    # one training on the boxes, the same seed: the same experts, so the residuals differ by w · r^T
    box_regions = torch.zeros((2, *shape), dtype=torch.bool)
    for k, (r0, c0, r1, c1) in enumerate([sample.bg_box, sample.fg_box]):
        box_regions[k, r0:r1, c0:c1] = True
    normalised, _ = normalise(sample.image[None].astype(np.float32))
    features = gabor_energies(torch.from_numpy(normalised))
    term = texture_residuals(features, feature_scale(features, box_regions), box_regions)
    experts = torch.from_numpy(np.array(plain.problem.residuals))
    weight = data_term_spread(experts, box_regions) / data_term_spread(term, box_regions)
    solved = torch.from_numpy(np.array(combined.problem.residuals))
    torch.testing.assert_close(solved, experts + weight * term, atol=1e-4, rtol=1e-4)
    # λ is the combined data term's spread in the boxes (factor 1, not the texture window's 2.5)
    assert combined.lam == pytest.approx(data_term_spread(experts + weight * term, box_regions), rel=1e-4)
    assert plain.lam == pytest.approx(2.5 * data_term_spread(experts, box_regions), rel=1e-4)
    # and with the term the same tiny experts separate the textures
    several = dataclasses.replace(TINY_NETWORKS, texture_features=1.0)
    assert dice(segment(sample.image, several, boxes=boxes, seed=0, device="cpu").mask, truth) > 0.9


def test_texture_features_validation_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"texture_features must be >= 0 \(0 = the experts' residuals alone\)"):
        Self2SegConfig(texture_features=-0.5)
    with pytest.raises(ValueError, match="texture_features must be a number"):
        Self2SegConfig(texture_features="1")  # type: ignore[arg-type]
