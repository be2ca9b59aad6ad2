"""The collapse guard of the alternation and the automatic expert kind (``"auto"``)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from napari_self2seg.core import DenoiserConfig, PrimalDualConfig, Self2SegConfig, segment
from napari_self2seg.core.expert_choice import NETWORK_ADVANTAGE, choose_expert_kinds, separation
from napari_self2seg.core.solver import collapsed
from napari_self2seg.datasets import blob_mask, inner_box, two_textures


def box_masks(shape: tuple[int, int]) -> torch.Tensor:
    fg, bg = torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.bool)
    fg[2:6, 2:6] = True
    bg[10:16, 10:16] = True
    return torch.stack((bg, fg))


def test_collapse_is_one_region_or_a_region_losing_its_boxes() -> None:
    boxes = box_masks((16, 16))
    mask = torch.zeros((16, 16), dtype=torch.uint8)
    assert collapsed(mask, 2, boxes) == "the whole image background (class 0)"
    assert collapsed(1 - mask, 2, None) == "the whole image foreground (class 1)"
    good = boxes[1].to(torch.uint8)
    assert collapsed(good, 2, boxes) is None
    flood = torch.ones((16, 16), dtype=torch.uint8)
    flood[15, 15] = 0  # one background pixel left: still a flood
    assert "flooded" in str(collapsed(flood, 2, boxes))
    assert collapsed(flood, 2, None) is None  # without boxes only an exact single region counts
    vanished = torch.zeros((16, 16), dtype=torch.uint8)
    vanished[2, 2] = vanished[0, 15] = 1
    assert "vanished" in str(collapsed(vanished, 2, boxes))
    half = good.clone()
    half[2:4, 2:6] = 0  # exactly half of the foreground box kept: not collapsed
    assert collapsed(half, 2, boxes) is None


def test_collapse_with_three_classes_names_the_class() -> None:
    labels = torch.zeros((16, 16), dtype=torch.uint8)
    labels[:, 8:] = 1
    assert collapsed(labels, 3, None) == "class 2 vanish"  # present in the run, no pixel left
    labels[12:, 12:] = 2
    boxes = torch.zeros((3, 16, 16), dtype=torch.bool)
    boxes[0, :4, :4] = boxes[1, :4, 8:12] = True
    boxes[2, 8:12, 8:12] = True  # class 2's box labelled 1: flooded by the others
    assert collapsed(labels, 3, None) is None
    assert collapsed(labels, 3, boxes) == "most of the class 2 boxes other classes (it was flooded)"


def test_separation_is_the_gap_in_pooled_standard_deviations() -> None:
    inside = torch.zeros((2, 4), dtype=torch.bool)
    inside[0] = True
    data = torch.tensor([[-3.0, -1.0, -3.0, -1.0], [2.0, 4.0, 2.0, 4.0]])  # means -2 and 3, both std 1
    assert separation(data, inside, ~inside) == pytest.approx(5.0)
    assert separation(-data, inside, ~inside) == pytest.approx(-5.0)  # the wrong sign: the other class fits better
    flat = torch.tensor([[0.0] * 4, [1.0] * 4])
    assert separation(flat, inside, ~inside) == math.inf
    assert separation(torch.zeros((2, 4)), inside, ~inside) == 0.0


def residuals_with_gap(gap: float) -> torch.Tensor:
    """Residuals (K=2, 2, 4), background row 0, foreground row 1: d = r_1 - r_0 = ±gap/2 with spread 0.5."""
    wobble = torch.tensor([-0.5, 0.5, -0.5, 0.5])
    r = torch.zeros((2, 2, 4))
    r[1, 0] = gap / 2 + wobble
    r[1, 1] = -gap / 2 + wobble
    return r


def test_constants_unless_networks_separate_the_regions_much_better() -> None:
    regions = torch.zeros((2, 2, 4), dtype=torch.bool)
    regions[0, 0] = regions[1, 1] = True
    constant = residuals_with_gap(5.0)
    assert separation(constant[1] - constant[0], regions[1], regions[0]) == pytest.approx(10.0)
    for factor, expected in ((1.0, "constant"), (1.4, "constant"), (1.6, "network"), (3.0, "network")):
        network = residuals_with_gap(5.0 * factor)  # s = 10 × factor
        kinds = choose_expert_kinds(("auto", "auto"), network, constant, regions)
        assert kinds == (expected, expected), factor
    assert pytest.approx(1.5) == NETWORK_ADVANTAGE
    # a given kind stays; only the automatic class is chosen
    assert choose_expert_kinds(("network", "auto"), constant, constant, regions) == ("network", "constant")
    assert choose_expert_kinds(("constant", "network"), constant, constant, regions) == ("constant", "network")
    # constants that do not separate at all (equal means): the networks, even when weak
    assert choose_expert_kinds(("auto",) * 2, residuals_with_gap(0.2), torch.zeros((2, 2, 4)), regions) == (
        "network",
        "network",
    )


def network_residuals(background_gap: float, foreground_gap: float) -> torch.Tensor:
    """Network residuals (K=2, 2, 4) whose mixes with zero constants have s = 2 × each gap, independent wobbles.

    Background network: 0 on the background row, ``background_gap`` on the foreground row; foreground
    network: ``foreground_gap`` on the background row, 0 on the foreground row. Networks everywhere
    then have s = (sum of the gaps) / sqrt(0.5).
    """
    r = torch.zeros((2, 2, 4))
    r[0, 0] = torch.tensor([-0.5, 0.5, -0.5, 0.5])
    r[0, 1] = background_gap + torch.tensor([-0.5, 0.5, -0.5, 0.5])
    r[1, 0] = foreground_gap + torch.tensor([-0.5, -0.5, 0.5, 0.5])
    r[1, 1] = torch.tensor([-0.5, -0.5, 0.5, 0.5])
    return r


def test_networks_everywhere_unless_a_mix_separates_much_better() -> None:
    regions = torch.zeros((2, 2, 4), dtype=torch.bool)
    regions[0, 0] = regions[1, 1] = True
    constant = torch.zeros((2, 2, 4))  # equal means: the constants separate nothing
    mixed_wins_slightly = network_residuals(2.0, 0.1)  # network + constant s = 4, networks everywhere s = 2.97
    assert separation(-mixed_wins_slightly[0], regions[1], regions[0]) == pytest.approx(4.0)
    nn = separation(mixed_wins_slightly[1] - mixed_wins_slightly[0], regions[1], regions[0])
    assert nn == pytest.approx(2.1 / math.sqrt(0.5))
    assert choose_expert_kinds(("auto", "auto"), mixed_wins_slightly, constant, regions) == ("network", "network")
    # the foreground network fits the background better than its own region: the mix separates 1.9x better
    mixed_wins_clearly = network_residuals(4.0, -1.0)
    assert choose_expert_kinds(("auto", "auto"), mixed_wins_clearly, constant, regions) == ("network", "constant")
    # a kind given by hand is kept: only the automatic class becomes a network
    assert choose_expert_kinds(("auto", "constant"), mixed_wins_slightly, constant, regions) == (
        "network",
        "constant",
    )


TINY = Self2SegConfig(
    lam="auto",
    residual="blind",
    experts=("auto",),
    max_outer_iter=2,
    denoiser=DenoiserConfig(width=8, n_blocks=2, patience=15, average_last=15, max_steps=300),
    solver=PrimalDualConfig(scale_steps_to_lam=True, max_iter=2000, gap_tol=1e-5),
)


def test_automatic_experts_are_constants_on_an_intensity_pair_and_their_regions_still_denoised() -> None:
    truth = blob_mask((64, 64), 0.3, kind="disk")
    image = np.where(truth, 0.7, 0.3) + np.random.default_rng(3).normal(0.0, 0.1, truth.shape)
    boxes = {1: [inner_box(truth, 12)], 0: [inner_box(~truth, 16)]}
    flat = segment(image, TINY, boxes=boxes, device="cpu", keep_problem=True)
    assert flat.config.experts == ("constant", "constant")
    assert flat.problem is not None
    assert np.ptp(flat.problem.expert_images[0]) == pytest.approx(0.0, abs=1e-6)  # the constant background
    assert np.ptp(flat.denoised[~flat.mask]) == pytest.approx(0.0, abs=1e-6)
    denoising = dataclasses.replace(TINY, denoise_constant_regions=True)
    denoised = segment(image, denoising, boxes=boxes, device="cpu")
    np.testing.assert_array_equal(denoised.labels, flat.labels)  # the segmentation is the constants'
    clean = np.where(truth, 0.7, 0.3)
    for region in (denoised.mask, ~denoised.mask):
        assert np.ptp(denoised.denoised[region]) > 1e-4  # a network's output, not the constant
    # and a denoising: closer to the clean image than the noisy one
    assert np.mean((denoised.denoised - clean) ** 2) < 0.5 * np.mean((image - clean) ** 2)


def test_automatic_background_is_a_network_on_a_texture() -> None:
    sample = two_textures(48)
    result = segment(
        sample.image, TINY, fg_boxes=[sample.fg_box], bg_boxes=[sample.bg_box], device="cpu", keep_problem=True
    )
    assert result.config.experts == ("network", "network")
    assert result.problem is not None
    assert np.ptp(result.problem.expert_images[0]) > 0.1


def test_given_expert_counts_are_kept() -> None:
    sample = two_textures(32)
    for experts in (("constant", "network"), ("network", "network"), ("network", "constant")):
        config = dataclasses.replace(TINY, experts=experts, max_outer_iter=1)
        result = segment(sample.image, config, fg_boxes=[sample.fg_box], bg_boxes=[sample.bg_box], device="cpu")
        assert result.config.experts == experts
