"""The collapse guard of the alternation and the automatic background model (``experts="auto"``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from napari_self2seg.core import DenoiserConfig, PrimalDualConfig, Self2SegConfig, segment
from napari_self2seg.core.solver import background_needs_network, collapsed
from napari_self2seg.datasets import blob_mask, inner_box, two_textures


def box_masks(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    fg, bg = torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.bool)
    fg[2:6, 2:6] = True
    bg[10:16, 10:16] = True
    return fg, bg


def test_collapse_is_one_region_or_a_region_losing_its_boxes() -> None:
    boxes = box_masks((16, 16))
    mask = torch.zeros((16, 16), dtype=torch.bool)
    assert collapsed(mask, boxes) == "the whole image background"
    assert collapsed(~mask, None) == "the whole image foreground"
    good = boxes[0].clone()
    assert collapsed(good, boxes) is None
    flood = torch.ones((16, 16), dtype=torch.bool)
    flood[15, 15] = False  # one background pixel left: still a flood
    assert "flooded" in str(collapsed(flood, boxes))
    assert collapsed(flood, None) is None  # without boxes only an exact single region counts
    vanished = torch.zeros((16, 16), dtype=torch.bool)
    vanished[2, 2] = vanished[0, 15] = True
    assert "vanished" in str(collapsed(vanished, boxes))
    half = good.clone()
    half[2:4, 2:6] = False  # exactly half of the foreground box kept: not collapsed
    assert collapsed(half, boxes) is None


def test_background_network_kept_only_where_it_beats_the_mean() -> None:
    region = torch.ones((8, 8), dtype=torch.bool)
    assert background_needs_network(torch.full((8, 8), 0.01), torch.full((8, 8), 0.02), region)
    assert not background_needs_network(torch.full((8, 8), 0.02), torch.full((8, 8), 0.02), region)


TINY = Self2SegConfig(
    lam="auto",
    residual="blind",
    experts="auto",
    max_outer_iter=2,
    denoiser=DenoiserConfig(width=8, n_blocks=2, patience=15, average_last=15, max_steps=300),
    solver=PrimalDualConfig(scale_steps_to_lam=True, max_iter=2000, gap_tol=1e-5),
)


def test_automatic_background_is_a_constant_on_a_flat_background() -> None:
    truth = blob_mask((64, 64), 0.3, kind="disk")
    image = np.where(truth, 0.7, 0.3) + np.random.default_rng(3).normal(0.0, 0.1, truth.shape)
    result = segment(image, TINY, fg_boxes=[inner_box(truth, 12)], bg_boxes=[inner_box(~truth, 16)], device="cpu")
    assert result.config.experts == 1
    assert np.ptp(result.denoised_bg) == pytest.approx(0.0, abs=1e-6)  # the constant background


def test_automatic_background_is_a_network_on_a_texture() -> None:
    sample = two_textures(48)
    result = segment(sample.image, TINY, fg_boxes=[sample.fg_box], bg_boxes=[sample.bg_box], device="cpu")
    assert result.config.experts == 2
    assert np.ptp(result.denoised_bg) > 0.1


def test_given_expert_counts_are_kept() -> None:
    sample = two_textures(32)
    for experts in (1, 2):
        config = dataclasses.replace(TINY, experts=experts, max_outer_iter=1)
        result = segment(sample.image, config, fg_boxes=[sample.fg_box], bg_boxes=[sample.bg_box], device="cpu")
        assert result.config.experts == experts
