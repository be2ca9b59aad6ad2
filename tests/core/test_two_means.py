"""The two-means alternation of constant experts (``Self2SegConfig.two_means``, core/tv_two_means.py)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from napari_self2seg.core import LiveParameters, Self2SegConfig, dice, iterate, preset, resegment, segment
from napari_self2seg.core.automatic_lam import noise_lam
from napari_self2seg.core.energy import local_weighted_mean, weighted_mean
from napari_self2seg.core.initialization import box_regions, threshold_regions
from napari_self2seg.core.instances import label_components
from napari_self2seg.core.solver import Scheme, prepare_run
from napari_self2seg.core.tv_two_means import noise_level, otsu_bands, tv_denoised
from napari_self2seg.datasets import SyntheticImage, inner_box, synthetic_nuclei

if TYPE_CHECKING:
    from napari_self2seg.core.config import ExpertKind

# what the fast preset's "auto" chooses on these nuclei, without training networks to choose
CONSTANTS: tuple[ExpertKind, ...] = ("constant", "constant")


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.3])
def test_noise_level_recovers_the_noise_of_a_smooth_image(sigma: float) -> None:
    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    ramp = 0.2 + 0.5 * xx - 0.3 * yy  # locally linear: the estimator's kernel cancels it exactly
    noise = np.random.default_rng(0).normal(0.0, sigma, ramp.shape)
    assert float(noise_level(torch.from_numpy(ramp[None]))[0]) < 1e-12
    estimate = float(noise_level(torch.from_numpy((ramp + noise)[None]))[0])
    assert estimate == pytest.approx(sigma, rel=0.03)


def rof_energy(v: np.ndarray, f: np.ndarray, weight: float) -> float:
    """``weight · TV(v) + ½ ||v - f||²`` with forward differences (isotropic TV)."""
    dy = np.diff(v, axis=0, append=v[-1:])
    dx = np.diff(v, axis=1, append=v[:, -1:])
    return float(weight * np.sqrt(dy**2 + dx**2).sum() + 0.5 * ((v - f) ** 2).sum())


def test_tv_denoised_lowers_the_rof_energy_and_removes_most_of_the_noise() -> None:
    truth = np.zeros((64, 64), dtype=bool)
    truth[16:48, 20:44] = True
    clean = np.where(truth, 0.7, 0.2)
    noisy = clean + np.random.default_rng(1).normal(0.0, 0.1, clean.shape)
    f = torch.from_numpy(np.stack([noisy, 1.0 - noisy])).float()  # two channels, each denoised alone
    smooth = tv_denoised(f)
    assert smooth.shape == f.shape and smooth.dtype == f.dtype
    sigma = noise_level(f).double().numpy()
    for c, reference in enumerate((clean, 1.0 - clean)):
        v, data = smooth[c].double().numpy(), f[c].double().numpy()
        energy = rof_energy(v, data, sigma[c])
        # scikit-image's default stopping leaves it short of the minimiser (which is below the clean image's)
        assert energy < 0.6 * rof_energy(data, data, sigma[c])
        assert np.abs(v - reference).mean() < 0.4 * np.abs(data - reference).mean()


def uneven_nuclei() -> tuple[SyntheticImage, tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Nuclei of uneven brightness with a box in the brightest and one in the dimmest large nucleus."""
    sample = synthetic_nuclei(128, brightness_spread=0.6, seed=1)
    objects = label_components(sample.truth, connectivity=1)
    large = [k for k in range(1, int(objects.max()) + 1) if (objects == k).sum() >= 150]
    brightness = {k: float(sample.clean[objects == k].mean()) for k in large}
    brightest, dimmest = max(large, key=brightness.__getitem__), min(large, key=brightness.__getitem__)
    return sample, inner_box(objects == brightest, 10), inner_box(objects == dimmest, 10)


def test_the_mask_does_not_depend_on_which_nucleus_the_box_marks() -> None:
    sample, bright_box, dim_box = uneven_nuclei()
    bg_box = sample.bg_box
    fast = dataclasses.replace(preset("fast"), experts=CONSTANTS)
    masks = {}
    for name, config in (("two-means", fast), ("paper update", dataclasses.replace(fast, two_means=False))):
        for where, box in (("bright", bright_box), ("dim", dim_box)):
            result = segment(sample.image, config, fg_boxes=[box], bg_boxes=[bg_box], device="cpu", seed=0)
            masks[name, where] = result.mask
    # the paper's update starts from the boxes' means and stays near them: a bright box loses dim nuclei
    assert dice(masks["paper update", "bright"], sample.truth) < dice(masks["paper update", "dim"], sample.truth) - 0.03
    # the two-means of the denoised image ends at the same mask from either box, and a good one
    assert dice(masks["two-means", "bright"], masks["two-means", "dim"]) > 0.98
    for where in ("bright", "dim"):
        assert dice(masks["two-means", where], sample.truth) > 0.95


def test_a_run_from_otsus_split_starts_with_the_bands_means_of_the_image(caplog: pytest.LogCaptureFixture) -> None:
    sample, bright_box, _ = uneven_nuclei()
    # one segmentation step: the problem kept is the one solved with the first constants
    config = dataclasses.replace(preset("fast"), experts=CONSTANTS, max_outer_iter=1)
    boxes = {"fg_boxes": [bright_box], "bg_boxes": [sample.bg_box], "device": "cpu"}
    with caplog.at_level("INFO", logger="napari_self2seg.core.solver"):
        result = segment(sample.image, config, keep_problem=True, **boxes)  # type: ignore[arg-type]
    assert result.automatic_lam and result.problem is not None and not result.degenerate
    # λ from the noise rule for the constants (never the boxes' spread)
    chosen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("automatic λ")]
    assert chosen and all("times the noise level" in message for message in chosen)
    lo, hi = float(sample.image.min()), float(sample.image.max())
    f = torch.from_numpy(((sample.image - lo) / (hi - lo)).astype(np.float32))[None]  # as the run normalises
    regions = torch.from_numpy(box_regions({0: [sample.bg_box], 1: [bright_box]}, sample.image.shape))
    bands = otsu_bands(f, regions)
    assert bands is not None
    # Otsu's split of the image itself, not of its TV denoising, whichever nucleus the box marks
    np.testing.assert_array_equal(bands.numpy(), threshold_regions(f[0].numpy(), 2, "otsu", "image"))
    # the mask was solved with the bands' means of f in windows of the preset's size and λ from the global means
    for k, residual in enumerate(result.problem.residuals):
        local = local_weighted_mean(f, bands[k], config.local_means)
        np.testing.assert_allclose(residual, ((f - local) ** 2)[0].numpy(), atol=1e-5)
    means = torch.stack([weighted_mean(f, bands[k].float())[:, 0, 0] for k in range(2)])
    assert noise_lam(means, noise_level(f)) == pytest.approx(result.lam, rel=1e-5)
    # the experts were refitted after that step (λ followed them), but the result keeps the mask's λ
    assert "reached max_outer_iter = 1" in result.stop_reason and len(chosen) == 2
    np.testing.assert_array_equal(resegment(result, lam=result.lam).labels, result.labels)


def test_a_run_from_otsus_split_refits_until_the_energy_rule_and_resegment_gives_it_back() -> None:
    sample, bright_box, _ = uneven_nuclei()
    config = dataclasses.replace(preset("fast"), experts=CONSTANTS)
    boxes = {"fg_boxes": [bright_box], "bg_boxes": [sample.bg_box], "device": "cpu"}
    states = list(iterate(sample.image, config, keep_problem=True, **boxes))  # type: ignore[arg-type]
    result = states[-1].result
    assert result is not None and result.problem is not None and not result.degenerate
    assert result.outer_iterations >= 2 and "energy decrease" in result.stop_reason
    assert len(result.energies) == result.outer_iterations + 1
    np.testing.assert_array_equal(resegment(result, lam=result.lam).labels, result.labels)
    assert dice(result.mask, sample.truth) > 0.95


def test_a_run_from_the_boxes_means_moves_its_constants_and_lambda_until_the_mask_settles() -> None:
    sample, bright_box, _ = uneven_nuclei()
    two_channels = np.stack([sample.image, sample.image], axis=-1)  # no exact 2-D split: the boxes' means start it
    config = dataclasses.replace(preset("fast"), experts=CONSTANTS, local_means=0.0)  # one constant per class
    boxes = {"fg_boxes": [bright_box], "bg_boxes": [sample.bg_box], "device": "cpu", "channel_axis": -1}
    states = list(iterate(two_channels, config, **boxes))  # type: ignore[arg-type]
    result = states[-1].result
    assert result is not None and result.automatic_lam and result.outer_iterations >= 2
    assert "two-means of constants settled" in result.stop_reason or "max_outer_iter" in result.stop_reason
    seen = [state.lam for state in states if state.lam is not None]
    assert len(set(seen)) >= 2 and result.lam == seen[-1]  # λ moved with the constants
    # the last λ is the noise rule applied to the last constants; resegment at it gives the mask back
    kept = segment(two_channels, config, keep_problem=True, **boxes)  # type: ignore[arg-type]
    assert kept.problem is not None
    np.testing.assert_array_equal(kept.labels, result.labels)
    lo, hi = float(two_channels.min()), float(two_channels.max())
    constants = [(image[0, 0] - lo) / (hi - lo) for image in kept.problem.expert_images]
    f = torch.from_numpy(np.moveaxis((two_channels - lo) / (hi - lo), -1, 0).astype(np.float32))
    lam = noise_lam(torch.tensor(np.array(constants), dtype=torch.float64), noise_level(f))
    assert lam == pytest.approx(kept.lam, rel=1e-4)
    np.testing.assert_array_equal(resegment(kept, lam=kept.lam).labels, kept.labels)


def test_a_lambda_sent_live_is_kept_and_the_paper_preset_keeps_its_update() -> None:
    sample, bright_box, _ = uneven_nuclei()
    config = dataclasses.replace(preset("fast"), experts=CONSTANTS)
    stream = iterate(sample.image, config, fg_boxes=[bright_box], bg_boxes=[sample.bg_box], device="cpu")
    next(stream)
    states = [stream.send(LiveParameters(lam=0.05)), *stream]
    result = states[-1].result
    assert result is not None and result.lam == 0.05 and not result.automatic_lam
    assert not preset("paper").two_means and preset("fast").two_means
    # a threshold start is the image's own: the paper's update and stopping rule
    threshold = dataclasses.replace(config, init="threshold")
    unboxed = segment(sample.image, threshold, device="cpu")
    assert "two-means" not in unboxed.stop_reason and "energy decrease" in unboxed.stop_reason


def nuclei_with_a_saturated_blob(noise: float) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[int, int, int, int]]]:
    """Dim nuclei (0.45) and one saturated blob (0.9) on a 0.1 background, and a box in each kind of pixel."""
    grey = np.full((96, 96), 0.1)
    for y, x in ((20, 20), (20, 70), (70, 20), (48, 48)):
        grey[y - 9 : y + 9, x - 9 : x + 9] = 0.45
    grey[62:84, 62:84] = 0.9
    noisy = grey + np.random.default_rng(2).normal(0.0, noise, grey.shape)
    boxes = {"dim": (15, 15, 25, 25), "blob": (66, 66, 80, 80), "background": (2, 35, 12, 60)}
    return noisy, grey > 0.2, boxes


def test_otsu_bands_are_the_global_split_and_gives_way_to_boxes_that_ask_for_another() -> None:
    grey, _, boxes = nuclei_with_a_saturated_blob(0.0)
    smooth = torch.from_numpy(grey[None])

    def regions(*names: str) -> torch.Tensor:
        masks = torch.zeros((len(names), *grey.shape), dtype=torch.bool)
        for k, name in enumerate(names):
            y0, x0, y1, x1 = boxes[name]
            masks[k, y0:y1, x0:x1] = True
        return masks

    objects = torch.from_numpy(grey > 0.2)  # Otsu splits background from both kinds of object
    start = otsu_bands(smooth, regions("background", "blob"))
    assert start is not None and start.shape == (2, *grey.shape) and start.dtype == torch.bool
    assert torch.equal(start[0], ~objects) and torch.equal(start[1], objects)
    # classes take their boxes' bands, in the order of the classes
    swapped = otsu_bands(smooth, regions("blob", "background"))
    assert swapped is not None and torch.equal(swapped, start.flip(0))
    # three classes: multi-Otsu's three bands, each matched to its box (a little noise: three grey levels
    # alone fall on histogram bin edges)
    slightly_noisy, _, _ = nuclei_with_a_saturated_blob(0.01)
    three = otsu_bands(torch.from_numpy(slightly_noisy[None]), regions("background", "dim", "blob"))
    assert three is not None
    np.testing.assert_allclose([grey[band.numpy()].mean() for band in three], [0.1, 0.45, 0.9], atol=0.002)
    # a dim box against a blob box asks for a split Otsu's two bands are not: the boxes' means start it
    assert otsu_bands(smooth, regions("dim", "blob")) is None
    assert otsu_bands(torch.cat([smooth, smooth]), regions("background", "blob")) is None  # no exact 2-D split
    assert otsu_bands(torch.full((1, 8, 8), 0.3, dtype=torch.float64), regions("background", "blob")[:, :8, :8]) is None


def test_a_box_on_a_saturated_blob_finds_the_dim_nuclei_too() -> None:
    noisy, truth, boxes = nuclei_with_a_saturated_blob(0.1)
    config = dataclasses.replace(preset("fast"), experts=CONSTANTS)
    masks = {
        where: segment(
            noisy, config, fg_boxes=[boxes[where]], bg_boxes=[boxes["background"]], device="cpu", seed=0
        ).mask
        for where in ("blob", "dim")
    }
    for mask in masks.values():
        assert dice(mask, truth) > 0.95
    # the paper's update from the blob box keeps the blob and loses the dim nuclei
    paper = segment(
        noisy,
        dataclasses.replace(config, two_means=False),
        fg_boxes=[boxes["blob"]],
        bg_boxes=[boxes["background"]],
        device="cpu",
    )
    assert dice(paper.mask, truth) < 0.8


def test_local_means_keep_dim_nuclei_that_one_mean_per_class_loses_beside_bright_ones() -> None:
    """Bright nuclei (0.9) on the left, dim ones of graded brightness (0.35–0.56) on the right, background 0.1."""
    grey = np.full((128, 128), 0.1)
    truth = np.zeros(grey.shape, dtype=bool)
    for i, y in enumerate((16, 48, 80, 112)):
        for x, value in ((16, 0.9), (44, 0.9), (84, 0.35 + 0.06 * i), (112, 0.38 + 0.06 * i)):
            grey[y - 7 : y + 7, x - 7 : x + 7] = value
            truth[y - 7 : y + 7, x - 7 : x + 7] = True
    noisy = grey + np.random.default_rng(0).normal(0.0, 0.1, grey.shape)
    boxes = {"fg_boxes": [(10, 10, 22, 22)], "bg_boxes": [(0, 60, 128, 70)], "device": "cpu"}
    fast = dataclasses.replace(preset("fast"), experts=CONSTANTS)
    local = segment(noisy, fast, **boxes)  # type: ignore[arg-type]
    single = segment(noisy, dataclasses.replace(fast, local_means=0.0), **boxes)  # type: ignore[arg-type]
    assert local.config.local_means == 24 and single.config.local_means == 0
    dim, bright = np.s_[:, 64:], np.s_[:, :64]
    # one threshold for the whole image sits between the bright nuclei and the background: the dimmer nuclei
    # fall below it; beside dim nuclei the local foreground mean, and the threshold with it, is lower
    assert dice(single.mask[dim], truth[dim]) < 0.65 < 0.75 < dice(local.mask[dim], truth[dim])
    assert dice(local.mask[bright], truth[bright]) > 0.97
    assert dice(local.mask, truth) > dice(single.mask, truth) + 0.04
    # a run without boxes (threshold start, the paper's update) fits its constants locally too
    threshold = dataclasses.replace(fast, init="threshold")
    unboxed = {"device": "cpu", "seed": 0}
    local = segment(noisy, threshold, **unboxed)  # type: ignore[arg-type]
    single = segment(noisy, dataclasses.replace(threshold, local_means=0.0), **unboxed)  # type: ignore[arg-type]
    assert dice(single.mask[dim], truth[dim]) < 0.55 < 0.62 < dice(local.mask[dim], truth[dim])
    assert dice(local.mask, truth) > dice(single.mask, truth) + 0.03


def test_a_constant_beside_a_network_keeps_one_mean(tiny_config: Self2SegConfig) -> None:
    sample, bright_box, _ = uneven_nuclei()
    config = dataclasses.replace(tiny_config, experts=("constant", "network"), local_means=24.0, max_outer_iter=1)
    boxes = {"fg_boxes": [bright_box], "bg_boxes": [sample.bg_box], "device": "cpu", "keep_problem": True}
    result = segment(sample.image, config, **boxes)  # type: ignore[arg-type]
    assert result.problem is not None
    background = result.problem.expert_images[0]
    assert float(background.max() - background.min()) == 0.0  # one mean for the whole image


def test_which_runs_of_constants_start_from_otsus_split_and_which_fit_the_tv_denoised_image() -> None:
    sample, bright_box, _ = uneven_nuclei()
    config = dataclasses.replace(preset("fast"), experts=CONSTANTS)
    boxes = {"fg_boxes": [bright_box], "bg_boxes": [sample.bg_box], "device": "cpu"}
    grey = prepare_run(sample.image, config, **boxes)  # type: ignore[arg-type]
    start = grey.otsu_start(CONSTANTS)
    assert start is not None and not grey.tv_two_means(CONSTANTS)
    f = grey.f[0].numpy()
    np.testing.assert_array_equal(start.numpy(), threshold_regions(f, 2, "otsu", "image"))
    # the restart after a collapse from the split: the boxes' means, the paper's update (not the two-means)
    restart = Scheme(grey.inputs, config, 0, torch.device("cpu"), from_otsu=False)
    assert restart.otsu_start(CONSTANTS) is None and restart.two_means(CONSTANTS)
    assert not restart.tv_two_means(CONSTANTS)
    # several channels have no exact split: the two-means of ROF(f, σ̂) from the boxes' means
    colour = prepare_run(np.stack([sample.image] * 2, axis=-1), config, channel_axis=-1, **boxes)  # type: ignore[arg-type]
    assert colour.otsu_start(CONSTANTS) is None and colour.tv_two_means(CONSTANTS)
    # networks never do either, nor a run without boxes
    assert grey.otsu_start(("network", "network")) is None and not grey.tv_two_means(("network", "constant"))
    unboxed = prepare_run(sample.image, dataclasses.replace(config, init="threshold"), device="cpu")
    assert unboxed.otsu_start(CONSTANTS) is None and not unboxed.tv_two_means(CONSTANTS)
