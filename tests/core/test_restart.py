"""The restart after a collapse (``Self2SegConfig.restart_denoiser``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_self2seg.core import (
    DenoiserConfig,
    LiveParameters,
    Phase,
    PrimalDualConfig,
    Self2SegConfig,
    dice,
    iterate,
    preset,
    segment,
)
from napari_self2seg.core.config import config_from_dict
from napari_self2seg.datasets import blob_mask, texture, texture_pair

TINY = DenoiserConfig(width=4, n_blocks=1, patience=3, average_last=2, max_steps=30)


def noisy_square(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A 16² bright square on a 32² image with noise 0.05: its truth and the image."""
    truth = np.zeros((32, 32), dtype=bool)
    truth[8:24, 10:26] = True
    return truth, 0.2 + 0.6 * truth + np.random.default_rng(seed).normal(0, 0.05, truth.shape)


def box_mask(shape: tuple[int, ...], box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of one half-open box ``(y0, x0, y1, x1)``."""
    mask = np.zeros(shape, dtype=bool)
    y0, x0, y1, x1 = box
    mask[y0:y1, x0:x1] = True
    return mask


def test_the_fast_preset_restarts_with_experts_of_the_paper_size_and_the_paper_never_restarts() -> None:
    fast, paper = preset("fast"), preset("paper")
    assert paper.restart_denoiser is None
    assert fast.restart_denoiser is not None
    # the paper's width and depth, the fast experts' other settings (patches, warm start, early stopping)
    paper_size = dataclasses.replace(fast.denoiser, width=paper.denoiser.width, n_blocks=paper.denoiser.n_blocks)
    assert fast.restart_denoiser == paper_size
    for config in (fast, paper):
        assert config_from_dict(dataclasses.asdict(config)) == config
    with pytest.raises(ValueError, match="restart_denoiser must be a DenoiserConfig or None"):
        Self2SegConfig(restart_denoiser={"width": 64})  # type: ignore[arg-type]


def test_a_restart_with_larger_experts_rescues_a_texture_pair_that_floods() -> None:
    shape = (64, 64)
    truth = blob_mask(shape, 0.3, kind="disk")
    dots, grain = texture("dots", shape, period=10), texture("grain", shape, period=8)
    sample = texture_pair(dots, grain, truth, noise=0.1, box=24)
    fast = preset("fast")
    narrow = dataclasses.replace(fast.denoiser, width=4, n_blocks=1, patch_size=32)
    larger = dataclasses.replace(narrow, width=32, n_blocks=3)
    # the experts alone (no texture term, tested in test_texture_features.py): the restart is what is tested
    config = dataclasses.replace(fast, denoiser=narrow, restart_denoiser=larger, max_outer_iter=3, texture_features=0.0)
    boxes = {"fg_boxes": [sample.fg_box], "bg_boxes": [sample.bg_box], "device": "cpu"}
    without = segment(sample.image, dataclasses.replace(config, restart_denoiser=None), **boxes)  # type: ignore[arg-type]
    assert without.degenerate and not without.restarted  # one-block, 4-channel experts flood
    result = segment(sample.image, config, **boxes)  # type: ignore[arg-type]
    assert result.restarted and not result.degenerate
    assert dice(result.mask, truth) > 0.9 > dice(without.mask, truth)
    # the result records the experts that made it, and a rerun with its settings gives it back
    assert result.config.denoiser == larger and result.config.restart_denoiser is None
    assert result.stop_reason.startswith("restarted with 32-channel, 3-block experts because segmentation step")
    again = segment(sample.image, result.config, **boxes)  # type: ignore[arg-type]
    np.testing.assert_array_equal(again.labels, result.labels)


@pytest.mark.parametrize("restart", [True, False])
def test_a_restart_runs_once_keeps_a_live_lambda_and_the_last_valid_mask(restart: bool) -> None:
    truth, image = noisy_square(seed=0)
    config = Self2SegConfig(
        lam="auto",
        max_outer_iter=3,
        denoiser=TINY,
        restart_denoiser=dataclasses.replace(TINY, width=6) if restart else None,
        solver=PrimalDualConfig(max_iter=300),
    )
    fg_box = (10, 12, 20, 22)
    stream = iterate(image, config, fg_boxes=[fg_box], bg_boxes=[(0, 0, 6, 6)], device="cpu")
    assert next(stream).phase is Phase.INIT
    states = [stream.send(LiveParameters(lam=10.0)), *stream]  # so large that every segmentation is one region
    result = states[-1].result
    assert result is not None and result.degenerate and result.restarted is restart
    assert result.config.lam == 10.0 and not result.automatic_lam  # the restart kept the λ sent
    restarts = [s for s in states if "restarting with 6-channel, 1-block experts" in s.message]
    assert len(restarts) == (1 if restart else 0)
    expected = box_mask(truth.shape, fg_box)
    np.testing.assert_array_equal(result.mask, expected)  # both attempts collapsed at step 1: the boxes are kept
    np.testing.assert_array_equal(states[-1].mask, expected)
    assert result.config.denoiser.width == (6 if restart else 4)
    elapsed = [s.elapsed for s in states]
    assert elapsed == sorted(elapsed)  # one run: the restart's time continues the first attempt's


def test_a_collapse_keeps_the_valid_step_whose_experts_separated_it_best() -> None:
    # step 1 at the automatic λ; step 2 at a λ so small that the noise speckles the mask (valid, but the
    # experts separate its classes less); step 3 at a λ so large that one region is left
    truth = np.zeros((32, 32), dtype=bool)
    truth[8:24, 10:26] = True
    image = 0.2 + 0.6 * truth + np.random.default_rng(0).normal(0, 0.25, truth.shape)
    config = Self2SegConfig(
        lam="auto",
        max_outer_iter=3,
        stop_ratio=0.0,
        denoiser=TINY,
        restart_denoiser=None,
        solver=PrimalDualConfig(max_iter=300),
    )
    stream = iterate(image, config, fg_boxes=[(10, 12, 20, 22)], bg_boxes=[(0, 0, 6, 6)], device="cpu")
    state, reply, masks = next(stream), None, {}
    while state.result is None:
        state = stream.send(reply)
        reply = None
        if state.phase is Phase.SEGMENT and state.message == f"segmentation {state.outer_iteration} done":
            masks[state.outer_iteration] = state.mask.copy()
            reply = LiveParameters(lam=1e-4) if state.outer_iteration == 1 else None
        elif state.phase is Phase.TRAIN and state.outer_iteration == 2 and state.message.startswith("experts trained"):
            reply = LiveParameters(lam=10.0)  # after the energy of this training: the stopping rule sees no jump
    result = state.result
    assert sorted(masks) == [1, 2] and result.degenerate and result.outer_iterations == 3
    assert dice(masks[1], truth) > 0.9 and (masks[2] != masks[1]).sum() > 10  # step 2 speckled, still valid
    np.testing.assert_array_equal(result.mask, masks[1])  # the last valid step (2) was worse
    assert "so the segmentation of step 1 (the one its experts separated best) is kept" in result.stop_reason


def test_when_both_attempts_collapse_the_one_whose_experts_separated_their_kept_step_best_wins() -> None:
    # both attempts keep their step 1 and collapse at step 2; the first attempt's step 1 (a sensible λ) is
    # clean, the restart's (a λ so small that the noise speckles it) is not: the first attempt's mask wins
    truth = np.zeros((32, 32), dtype=bool)
    truth[8:24, 10:26] = True
    image = 0.2 + 0.6 * truth + np.random.default_rng(0).normal(0, 0.25, truth.shape)
    config = Self2SegConfig(
        lam=0.05,
        max_outer_iter=3,
        denoiser=TINY,
        restart_denoiser=dataclasses.replace(TINY, width=6),
        solver=PrimalDualConfig(max_iter=300),
    )
    stream = iterate(image, config, fg_boxes=[(10, 12, 20, 22)], bg_boxes=[(0, 0, 6, 6)], device="cpu")
    state, attempt, masks = next(stream), 0, {}
    reply: LiveParameters | None = None
    while state.result is None:
        state = stream.send(reply)
        reply = None
        if "restarting" in state.message:
            attempt, reply = 1, LiveParameters(lam=1e-4)
        elif state.phase is Phase.SEGMENT and state.message == f"segmentation {state.outer_iteration} done":
            masks[attempt, state.outer_iteration] = state.mask.copy()
            reply = LiveParameters(lam=10.0)  # one region at the next step
    result = state.result
    assert sorted(masks) == [(0, 1), (1, 1)] and result.restarted and result.degenerate
    assert dice(masks[0, 1], truth) > 0.9 and (masks[1, 1] != masks[0, 1]).sum() > 10
    np.testing.assert_array_equal(result.mask, masks[0, 1])
    assert "collapsed too" in result.stop_reason and result.config.denoiser.width == 4


def test_a_run_without_boxes_never_restarts_and_keeps_its_last_valid_mask() -> None:
    # Without boxes no guard checks the restart's result: a near-flood (99.5 % foreground on a DSB2018
    # crop) replaced a valid earlier mask. Such a run ends like one without a restart.
    truth, image = noisy_square(seed=0)
    config = Self2SegConfig(
        lam=10.0,  # every segmentation collapses
        init="threshold",
        threshold=0.5,
        max_outer_iter=3,
        denoiser=TINY,
        restart_denoiser=dataclasses.replace(TINY, width=6),
        solver=PrimalDualConfig(max_iter=300),
    )
    result = segment(image, config, device="cpu")
    plain = segment(image, dataclasses.replace(config, restart_denoiser=None), device="cpu")
    assert result.degenerate and not result.restarted and "restart" not in result.stop_reason
    np.testing.assert_array_equal(result.labels, plain.labels)
    assert dice(result.mask, truth) > 0.95  # the initial regions: the bright square thresholded


def test_a_lambda_sent_in_reply_to_the_restart_snapshot_is_used_by_the_restart() -> None:
    _, image = noisy_square(seed=1)
    config = Self2SegConfig(
        lam=10.0,  # every segmentation collapses
        max_outer_iter=2,
        denoiser=TINY,
        restart_denoiser=dataclasses.replace(TINY, width=6),
        solver=PrimalDualConfig(max_iter=300),
    )
    stream = iterate(image, config, fg_boxes=[(10, 12, 20, 22)], bg_boxes=[(0, 0, 6, 6)], device="cpu")
    state = next(stream)
    while "restarting" not in state.message:
        state = next(stream)
    states = [stream.send(LiveParameters(lam=20.0)), *stream]
    result = states[-1].result
    assert result is not None and result.restarted and result.config.lam == 20.0


@pytest.mark.parametrize("two_means", [True, False])
def test_constants_restart_from_the_boxes_means_only_after_starting_from_otsus_split(two_means: bool) -> None:
    truth, image = noisy_square(seed=0)
    config = Self2SegConfig(
        experts=("constant", "constant"),
        two_means=two_means,
        restart_denoiser=TINY,  # widening does nothing for constants: never used here
        solver=PrimalDualConfig(max_iter=300),
    )
    fg_box = (10, 12, 20, 22)
    stream = iterate(image, config, fg_boxes=[fg_box], bg_boxes=[(0, 0, 6, 6)], device="cpu")
    next(stream)
    states = [stream.send(LiveParameters(lam=10.0)), *stream]  # every segmentation collapses
    result = states[-1].result
    assert result is not None and result.degenerate and result.restarted is two_means
    restarts = [s.message for s in states if "restarting" in s.message]
    assert restarts == (
        ["segmentation step 1 made the whole image background (class 0): restarting with the boxes' means"]
        if two_means
        else []
    )
    expected = box_mask(truth.shape, fg_box)
    np.testing.assert_array_equal(result.mask, expected)  # the last valid mask: the boxes
