from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from skimage import filters

from napari_self2seg.core import (
    DenoiserConfig,
    LiveParameters,
    Phase,
    PrimalDualConfig,
    Self2SegConfig,
    dice,
    iterate,
    resegment,
    segment,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from napari_self2seg.core.config import ExpertKind
    from napari_self2seg.datasets import SyntheticImage

threshold_otsu: Callable[[np.ndarray], float] = filters.threshold_otsu


ONE_EXPERT: tuple[ExpertKind, ...] = ("constant", "network")


def run_textures(textures: SyntheticImage, config: Self2SegConfig, seed: int = 0):  # type: ignore[no-untyped-def]
    boxes = {1: [textures.fg_box], 0: [textures.bg_box]}
    return segment(textures.image, config, boxes=boxes, seed=seed, device="cpu", keep_problem=True)


def test_two_experts_separate_equal_mean_textures_where_otsu_fails(
    textures: SyntheticImage, tiny_config: Self2SegConfig
) -> None:
    otsu = textures.image > threshold_otsu(textures.image)
    otsu_dice = max(dice(otsu, textures.truth), dice(~otsu, textures.truth))
    result = run_textures(textures, tiny_config)
    assert otsu_dice < 0.6
    assert dice(result.mask, textures.truth) >= 0.9
    assert result.mask.dtype == bool and result.mask.shape == textures.image.shape
    assert result.relaxed.dtype == np.float32 and 0 <= result.relaxed.min() <= result.relaxed.max() <= 1
    assert result.relaxed.shape == (2, *textures.image.shape)
    np.testing.assert_allclose(result.relaxed.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(result.mask, result.relaxed[1] >= 0.5)  # Theorem 4's threshold at 1/2
    assert result.labels.dtype == np.uint8 and set(np.unique(result.labels)) == {0, 1}
    assert result.denoised.shape == textures.image.shape
    assert set(result.timings.as_dict()) == {"init", "expert_0", "expert_1", "segment", "instances"}
    assert result.timings.total == pytest.approx(sum(result.timings.as_dict().values()))
    assert len(result.energies) == result.outer_iterations + 1


def test_same_seed_gives_the_same_result(textures: SyntheticImage, tiny_config: Self2SegConfig) -> None:
    cfg = dataclasses.replace(tiny_config, max_outer_iter=1)
    first, second = run_textures(textures, cfg, seed=3), run_textures(textures, cfg, seed=3)
    np.testing.assert_array_equal(first.mask, second.mask)
    np.testing.assert_array_equal(first.denoised, second.denoised)
    assert first.energies == second.energies


def test_denoised_output_is_in_the_input_intensity_scale(textures: SyntheticImage, tiny_config: Self2SegConfig) -> None:
    cfg = dataclasses.replace(tiny_config, max_outer_iter=1)
    scaled = textures.image.astype(np.float64) * 1000 + 500  # float64: the same image after normalisation
    small = run_textures(textures, cfg)
    large = segment(scaled, cfg, boxes={1: [textures.fg_box], 0: [textures.bg_box]}, device="cpu")
    np.testing.assert_array_equal(small.mask, large.mask)
    lo, hi = float(textures.image.min()), float(textures.image.max())
    expected = (small.denoised - lo) / (hi - lo) * (1000 * (hi - lo)) + 1000 * lo + 500
    np.testing.assert_allclose(large.denoised, expected, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
def test_any_real_dtype_is_accepted(textures: SyntheticImage, tiny_config: Self2SegConfig, dtype: type) -> None:
    cfg = dataclasses.replace(tiny_config, max_outer_iter=1, experts=ONE_EXPERT)
    image = np.clip(textures.image * 200, 0, 255).astype(dtype)
    result = segment(image, cfg, fg_boxes=[textures.fg_box], bg_boxes=[textures.bg_box], device="cpu")
    assert result.mask.any()


def test_snapshots_come_in_phase_order_and_end_with_the_result(
    textures: SyntheticImage, tiny_config: Self2SegConfig
) -> None:
    cfg = dataclasses.replace(tiny_config, max_outer_iter=2, stop_ratio=0.0)
    states = list(iterate(textures.image, cfg, fg_boxes=[textures.fg_box], bg_boxes=[textures.bg_box], device="cpu"))
    phases = [s.phase for s in states]
    assert phases[0] is Phase.INIT and phases[-1] is Phase.DONE
    assert phases.count(Phase.DONE) == 1
    segment_done = [s for s in states if s.phase is Phase.SEGMENT and s.message.startswith("segmentation")]
    assert [s.outer_iteration for s in segment_done] == [1, 2]
    assert all(not s.mask.flags.writeable for s in states)
    final = states[-1].result
    assert final is not None and final.outer_iterations == 2
    np.testing.assert_array_equal(final.mask, states[-1].mask)


def test_live_lambda_takes_effect_at_the_next_segmentation(
    textures: SyntheticImage, tiny_config: Self2SegConfig
) -> None:
    cfg = dataclasses.replace(tiny_config, max_outer_iter=1)
    boxes = {1: [textures.fg_box], 0: [textures.bg_box]}
    stream = iterate(textures.image, cfg, boxes=boxes, device="cpu", keep_problem=True)
    first = next(stream)
    assert first.phase is Phase.INIT
    states = [stream.send(LiveParameters(lam=50.0)), *stream]
    state = states[-1]
    assert state.result is not None
    result = state.result
    assert result.config.lam == 50.0
    # a huge λ makes the whole image background: the run ends with the last two-region mask
    # (here the initial regions: the foreground box), says so, and flags the result
    assert result.degenerate
    assert "whole image background" in result.stop_reason and "initial regions are kept" in result.stop_reason
    y0, x0, y1, x1 = textures.fg_box
    expected = np.zeros_like(result.mask)
    expected[y0:y1, x0:x1] = True
    np.testing.assert_array_equal(result.mask, expected)
    assert result.mask.any() and not result.mask.all()
    assert [s.message for s in states if s.phase is Phase.SEGMENT][-1] == "segmentation 1 collapsed"
    # the kept state is a valid start for a re-solve with a smaller λ
    lower = resegment(result, lam=0.02)
    assert not lower.degenerate and dice(lower.mask, textures.truth) > 0.8


def test_stopping_the_generator_early_is_clean(textures: SyntheticImage, tiny_config: Self2SegConfig) -> None:
    stream = iterate(textures.image, tiny_config, fg_boxes=[textures.fg_box], bg_boxes=[textures.bg_box], device="cpu")
    next(stream)
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)


def test_resegment_changes_the_mask_without_training(textures: SyntheticImage, tiny_config: Self2SegConfig) -> None:
    result = run_textures(textures, tiny_config)
    same = resegment(result, lam=result.config.lam)
    # the result stores the residuals its mask was solved with: the same λ gives the same mask
    np.testing.assert_array_equal(same.mask, result.mask)
    assert not same.degenerate
    smoother = resegment(result, lam=1.0)
    assert smoother.mask.sum() < result.mask.sum()
    assert smoother.config.lam == 1.0
    assert smoother.timings.total == smoother.timings.segment
    assert smoother.problem is not None and result.problem is not None
    assert smoother.problem.expert_images is result.problem.expert_images  # experts untouched
    with pytest.raises(ValueError, match="lam"):
        resegment(result, lam=0.0)


def test_resegment_scales_its_steps_to_the_new_lambda_and_finds_the_same_minimiser(
    textures: SyntheticImage, tiny_config: Self2SegConfig
) -> None:
    result = run_textures(textures, tiny_config)
    tight = dataclasses.replace(result.config.solver, gap_tol=1e-7, max_iter=50000)
    scaled = resegment(result, lam=0.2, solver=dataclasses.replace(tight, scale_steps_to_lam=True))
    fixed = resegment(result, lam=0.2, solver=tight)
    assert resegment(result, lam=0.2).config.solver.scale_steps_to_lam
    assert not fixed.config.solver.scale_steps_to_lam
    assert scaled.energies[0] == pytest.approx(fixed.energies[0], rel=1e-5)
    assert dice(scaled.mask, fixed.mask) > 0.99


@pytest.mark.parametrize("init", ["threshold", "denoise-threshold", "mask"])
def test_other_initialisations_run(init: str, tiny_config: Self2SegConfig) -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((32, 32), dtype=bool)
    truth[8:24, 10:26] = True
    image = 0.2 + 0.6 * truth + rng.normal(0, 0.05, truth.shape)
    cfg = dataclasses.replace(tiny_config, init=init, experts=ONE_EXPERT, max_outer_iter=2)  # type: ignore[arg-type]
    result = segment(image, cfg, init_mask=truth if init == "mask" else None, device="cpu")
    assert dice(result.mask, truth) > 0.95


def test_mu_term_runs_the_accelerated_solver(textures: SyntheticImage, tiny_config: Self2SegConfig) -> None:
    cfg = dataclasses.replace(tiny_config, mu=0.05, max_outer_iter=2)
    result = run_textures(textures, cfg)
    assert dice(result.mask, textures.truth) >= 0.9


def test_residual_filter_variant_runs(textures: SyntheticImage, tiny_config: Self2SegConfig) -> None:
    cfg = dataclasses.replace(tiny_config, residual_filter=3, experts=ONE_EXPERT, max_outer_iter=1)
    result = run_textures(textures, cfg)
    assert result.config.residual_filter == 3 and result.mask.shape == textures.image.shape


@pytest.mark.parametrize(
    ("fg_texture", "bg_texture"),
    [(("checkerboard", 12, 0), ("stripes", 9, 45)), (("checkerboard", 8, 0), ("checkerboard", 16, 0))],
)
def test_blind_residuals_stop_a_flood_prone_texture_pair_from_collapsing(
    fg_texture: tuple[str, int, int], bg_texture: tuple[str, int, int]
) -> None:
    from napari_self2seg.datasets import blob_mask, texture, texture_pair

    shape = (64, 64)
    truth = blob_mask(shape, 0.3, kind="disk")
    fg = texture(fg_texture[0], shape, period=fg_texture[1], angle=fg_texture[2])
    bg = texture(bg_texture[0], shape, period=bg_texture[1], angle=bg_texture[2])
    sample = texture_pair(fg, bg, truth, noise=0.1, box=24)
    base = Self2SegConfig(
        lam=0.04,
        max_outer_iter=3,
        denoiser=DenoiserConfig(width=8, n_blocks=2, patience=15, average_last=15, max_steps=150),
        solver=PrimalDualConfig(max_iter=2000, gap_tol=1e-5),
    )
    boxes = {"fg_boxes": [sample.fg_box], "bg_boxes": [sample.bg_box], "device": "cpu"}
    full = segment(sample.image, dataclasses.replace(base, residual="full"), **boxes)  # type: ignore[arg-type]
    blind = segment(sample.image, dataclasses.replace(base, residual="blind"), **boxes)  # type: ignore[arg-type]
    # with full-image outputs one tiny expert undercuts the other everywhere: the mask floods or vanishes
    assert full.degenerate or not 0.05 < full.mask.mean() < 0.95
    assert not blind.degenerate and dice(blind.mask, truth) > 0.85


def test_texture_window_averages_the_residuals_between_networks_only(textures: SyntheticImage) -> None:
    from napari_self2seg.core.automatic_lam import automatic_lam
    from napari_self2seg.core.energy import local_mean
    from napari_self2seg.core.initialization import box_regions

    boxes = {1: [textures.fg_box], 0: [textures.bg_box]}
    base = Self2SegConfig(
        lam="auto",
        residual="blind",
        max_outer_iter=1,
        denoiser=DenoiserConfig(width=8, n_blocks=2, patience=10, average_last=10, max_steps=60),
    )

    def run(kinds: tuple[ExpertKind, ...], window: int):  # type: ignore[no-untyped-def]
        config = dataclasses.replace(base, experts=kinds, texture_window=window)
        return segment(textures.image, config, boxes=boxes, seed=0, device="cpu", keep_problem=True)

    plain, windowed = run(("network",), 1), run(("network",), 5)
    assert plain.problem is not None and windowed.problem is not None
    # the experts' first training does not depend on the window: the data term is their residuals' local mean
    expected = local_mean(torch.from_numpy(np.array(plain.problem.residuals)), 5).numpy()
    np.testing.assert_allclose(windowed.problem.residuals, expected, rtol=1e-5, atol=1e-7)
    regions = torch.from_numpy(box_regions(boxes, textures.image.shape))
    assert windowed.config.lam == pytest.approx(
        automatic_lam(torch.from_numpy(np.array(windowed.problem.residuals)), regions, window=5), rel=1e-5
    )
    assert windowed.box_separation == pytest.approx(plain.box_separation, rel=1e-6)  # the warning's scale is kept
    # a run with a constant expert keeps per-pixel residuals, whatever the window
    constant_plain, constant_windowed = run(("constant", "network"), 1), run(("constant", "network"), 5)
    assert constant_plain.problem is not None and constant_windowed.problem is not None
    np.testing.assert_array_equal(constant_windowed.problem.residuals, constant_plain.problem.residuals)
    np.testing.assert_array_equal(constant_windowed.labels, constant_plain.labels)
    assert constant_windowed.config.lam == constant_plain.config.lam
