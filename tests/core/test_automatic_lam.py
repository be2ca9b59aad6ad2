"""The image-derived default λ (core/automatic_lam.py) and how a run uses it."""

from __future__ import annotations

import dataclasses
from typing import Literal

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
    iterate,
    preset,
    resegment,
    segment,
)
from napari_self2seg.core.automatic_lam import LAM_FLOOR, automatic_lam, noise_lam, windowed_lam_factor
from napari_self2seg.datasets import blob_mask, inner_box

AUTO_TINY = Self2SegConfig(
    lam="auto",
    residual="blind",
    max_outer_iter=2,
    denoiser=DenoiserConfig(width=8, n_blocks=2, patience=15, average_last=15, max_steps=150),
    solver=PrimalDualConfig(scale_steps_to_lam=True, max_iter=2000, gap_tol=1e-5),
)


def regions(shape: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    fg = torch.zeros(shape, dtype=torch.bool)
    fg[: shape[0] // 2] = True
    return fg, ~fg


def binary_lam(data: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> float:
    """The rule for two classes whose data term ``r_1 - r_0`` is ``data``."""
    return automatic_lam(torch.stack((torch.zeros_like(data), data)), torch.stack((bg, fg)))


def test_rule_is_the_pooled_within_region_standard_deviation() -> None:
    fg, bg = regions((40, 40))
    rng = np.random.default_rng(0)
    data = torch.where(fg, -0.3, 0.5) + torch.from_numpy(rng.normal(0.0, 1.0, (40, 40)))
    data = torch.where(fg, data * 0.02, data * 0.04)  # spread 0.02 in one region, 0.04 in the other
    expected = np.sqrt((data[fg].var(correction=0) + data[bg].var(correction=0)).item() / 2)
    assert binary_lam(data, fg, bg) == pytest.approx(expected, rel=1e-9)
    # the region means (how strongly the experts disagree) do not enter, only the spread around them
    shifted = torch.where(fg, data - 1.0, data + 2.0)
    assert binary_lam(shifted, fg, bg) == pytest.approx(expected, rel=1e-6)


def test_windowed_residuals_scale_the_spread_by_half_the_window() -> None:
    fg, bg = regions((40, 40))
    data = torch.from_numpy(np.random.default_rng(2).normal(0.0, 0.05, (40, 40)))
    residuals, classes = torch.stack((torch.zeros_like(data), data)), torch.stack((bg, fg))
    plain = automatic_lam(residuals, classes)
    assert [windowed_lam_factor(w) for w in (1, 3, 5, 9)] == [1.0, 1.5, 2.5, 4.5]
    assert automatic_lam(residuals, classes, window=5) == pytest.approx(2.5 * plain, rel=1e-12)
    assert automatic_lam(residuals, classes, window=1) == plain


def test_robust_spread_is_the_median_absolute_deviation_and_ignores_outliers() -> None:
    fg, bg = regions((40, 40))
    rng = np.random.default_rng(1)
    data = torch.from_numpy(rng.normal(0.0, 0.02, (40, 40)))
    pairs = torch.stack((torch.zeros_like(data), data))
    masks = torch.stack((bg, fg))
    mad = [float((data[m] - data[m].median()).abs().median()) for m in (bg, fg)]
    expected = np.sqrt(np.mean([(1.4826 * v) ** 2 for v in mad]))
    assert automatic_lam(pairs, masks, robust=True) == pytest.approx(expected, rel=1e-9)
    assert automatic_lam(pairs, masks, robust=True) == pytest.approx(0.02, rel=0.1)  # normal data: the std
    spiked = data.clone()
    spiked[:4, :] += 1.0  # a tenth of the foreground region far off (a box over a boundary, say)
    spiked_pairs = torch.stack((torch.zeros_like(data), spiked))
    assert automatic_lam(spiked_pairs, masks) > 5 * 0.02  # the standard deviation follows the outliers
    assert automatic_lam(spiked_pairs, masks, robust=True) == pytest.approx(0.02, rel=0.25)


def test_rule_pools_every_pair_of_classes() -> None:
    rng = np.random.default_rng(5)
    residuals = torch.from_numpy(rng.normal(0.0, 1.0, (3, 30, 30)) * np.array([0.01, 0.03, 0.05])[:, None, None])
    labels = torch.from_numpy(np.repeat(np.arange(3), 300).reshape(30, 30))
    masks = torch.stack([labels == k for k in range(3)])
    variances = []
    for k, j in ((1, 0), (2, 0), (2, 1)):
        d = residuals[k] - residuals[j]
        variances += [d[masks[j]].var(correction=0), d[masks[k]].var(correction=0)]
    assert automatic_lam(residuals, masks) == pytest.approx(float(torch.stack(variances).mean().sqrt()), rel=1e-9)


def test_rule_has_a_floor_for_a_noise_free_data_term() -> None:
    fg, bg = regions((16, 16))
    assert binary_lam(torch.where(fg, -0.2, 0.2), fg, bg) == LAM_FLOOR


def test_rule_needs_two_pixels_per_region() -> None:
    fg = torch.zeros((8, 8), dtype=torch.bool)
    fg[0, 0] = True
    with pytest.raises(ValueError, match="initial region of class 1 has 1 pixel"):
        binary_lam(torch.zeros((8, 8)), fg, ~fg)


def noisy_disk(noise: float, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    truth = blob_mask((size, size), 0.3, kind="disk")
    clean = np.where(truth, 0.6, 0.4)
    return (clean + np.random.default_rng(1).normal(0.0, noise, truth.shape)).astype(np.float32), truth


def run_disk(noise: float, config: Self2SegConfig = AUTO_TINY) -> tuple[float, float, bool]:
    image, truth = noisy_disk(noise)
    result = segment(image, config, fg_boxes=[inner_box(truth, 12)], bg_boxes=[inner_box(~truth, 12)], device="cpu")
    return result.lam, dice(result.mask, truth), result.automatic_lam


@pytest.mark.parametrize("contrast", [0.05, 0.5])
def test_rule_grows_with_the_noise_of_the_data_term(contrast: float) -> None:
    fg, bg = regions((64, 64))
    noise = torch.from_numpy(np.random.default_rng(2).normal(0.0, 1.0, (64, 64)))
    lams = [binary_lam(torch.where(fg, -contrast, contrast) + level * noise, fg, bg) for level in (0.01, 0.03, 0.1)]
    assert lams == sorted(lams) and lams[-1] > 5 * lams[0]


def test_automatic_lam_is_small_without_noise_and_segments_noisy_images() -> None:
    runs = {noise: run_disk(noise) for noise in (0.0, 0.05, 0.1, 0.2)}
    assert all(automatic for _, _, automatic in runs.values())
    assert runs[0.0][0] < 0.01  # noise-free: little smoothing is needed
    for noise in (0.05, 0.1, 0.2):
        lam, score, _ = runs[noise]
        assert 0.01 < lam < 0.2, (noise, lam)  # the paper's λ for DSB2018: 0.01–0.07
        assert score > 0.9, (noise, score)


def test_run_reports_the_chosen_lam_in_snapshots_and_result() -> None:
    image, truth = noisy_disk(0.1)
    boxes = {1: [inner_box(truth, 12)], 0: [inner_box(~truth, 12)]}
    states = list(iterate(image, AUTO_TINY, boxes=boxes, keep_problem=True))
    assert states[0].phase is Phase.INIT and states[0].lam is None  # not chosen before the experts exist
    chosen = {s.lam for s in states if s.phase is Phase.SEGMENT}
    result = states[-1].result
    assert result is not None and result.automatic_lam
    assert chosen == {result.lam} and result.config.lam == result.lam
    # re-segmenting at the chosen λ is the run's own mask; another λ is no longer automatic
    assert resegment(result, lam=result.lam).automatic_lam
    assert not resegment(result, lam=2 * result.lam).automatic_lam


def test_a_live_lambda_sent_before_the_choice_wins() -> None:
    image, truth = noisy_disk(0.1)
    stream = iterate(image, AUTO_TINY, fg_boxes=[inner_box(truth, 12)], bg_boxes=[inner_box(~truth, 12)])
    next(stream)
    state = stream.send(LiveParameters(lam=0.0123))
    while state.result is None:
        state = next(stream)
    assert state.result.lam == 0.0123 and not state.result.automatic_lam


def test_presets_and_config_checks() -> None:
    assert preset("fast").lam == "auto" and preset("paper").lam == 0.04
    for bad in ("Auto", "0.04", "", -0.01, 0.0):
        with pytest.raises(ValueError, match=r"lam \(λ\) must be"):
            dataclasses.replace(AUTO_TINY, lam=bad)  # type: ignore[arg-type]


def test_automatic_lam_warns_with_a_fixed_threshold_init_only(caplog: pytest.LogCaptureFixture) -> None:
    """The rule is validated with boxes and Otsu thresholds (docs/results.md); the paper's 0.5 gets a warning."""
    image, _ = noisy_disk(0.1)
    cases: tuple[tuple[float | Literal["otsu"], bool], ...] = ((0.5, True), ("otsu", False))
    for threshold, warned in cases:
        config = dataclasses.replace(AUTO_TINY, init="threshold", threshold=threshold, max_outer_iter=1)
        caplog.clear()
        with caplog.at_level("WARNING", logger="napari_self2seg.core.solver"):
            result = segment(image, config, device="cpu")
        assert result.automatic_lam
        assert any("validated with box prompts" in r.getMessage() for r in caplog.records) == warned


def test_noise_lam_is_the_spread_that_white_noise_gives_the_data_term_of_constants() -> None:
    constants = torch.tensor([[0.1, 0.7], [0.5, 0.2], [0.9, 0.4]], dtype=torch.float64)  # K = 3, C = 2
    sigma = torch.tensor([0.05, 0.2], dtype=torch.float64)
    noise = torch.randn((2, 400_000), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = 0.5 + sigma[:, None] * noise
    residuals = ((f[None] - constants[:, :, None]) ** 2).sum(dim=1)  # (K, N): eq. 5 with D_k = c_k
    measured = [float((residuals[k] - residuals[j]).var()) for k in range(3) for j in range(k)]
    assert noise_lam(constants, sigma) == pytest.approx(np.sqrt(np.mean(measured)), rel=0.01)
    # two classes, one channel: 2 |c_F - c_B| σ, and nothing below the floor
    two = torch.tensor([[0.2], [0.6]], dtype=torch.float64)
    assert noise_lam(two, torch.tensor([0.1], dtype=torch.float64)) == pytest.approx(2 * 0.4 * 0.1)
    assert noise_lam(two, torch.zeros(1, dtype=torch.float64)) == LAM_FLOOR
