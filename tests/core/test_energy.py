from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_self2seg.core.energy import (
    LOCAL_MEAN_FLOOR,
    gaussian_blur,
    joint_energy,
    local_mean,
    local_weighted_mean,
    squared_residual,
    weighted_mean,
)


def test_constant_background_is_the_weighted_mean_and_its_minimiser() -> None:
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(2, 12, 12, generator=gen, dtype=torch.float64)
    w = torch.rand(12, 12, generator=gen, dtype=torch.float64)
    means = weighted_mean(f, w)
    assert means.shape == (2, 1, 1)
    grid = np.linspace(0, 1, 2001)
    for channel, c in zip(f, means.flatten().tolist(), strict=True):  # one constant per channel
        assert c == pytest.approx(float((w * channel).sum() / w.sum()))
        costs = [float((w * (channel - g) ** 2).sum()) for g in grid]
        assert abs(grid[int(np.argmin(costs))] - c) <= 1e-3


def test_weighted_mean_with_zero_weights_falls_back_to_the_mean() -> None:
    f = torch.arange(16.0).reshape(1, 4, 4)
    assert float(weighted_mean(f, torch.zeros(4, 4))) == pytest.approx(7.5)


def test_residual_filter_averages_before_squaring() -> None:
    f = torch.zeros(1, 9, 9, dtype=torch.float64)
    f[0, 4, 4] = 9.0
    plain = squared_residual(f, torch.tensor(0.0, dtype=torch.float64))
    filtered = squared_residual(f, torch.tensor(0.0, dtype=torch.float64), filter_size=3)
    assert float(plain[4, 4]) == 81.0
    assert torch.allclose(filtered[3:6, 3:6], torch.ones(3, 3, dtype=torch.float64))
    assert float(filtered.sum()) == pytest.approx(9.0)


def brute_local_mean(residuals: np.ndarray, window: int, mirrored: bool) -> np.ndarray:
    """The local mean by loops: over the mirrored image, or over the window's pixels inside the image."""
    _, h, w = residuals.shape
    half = window // 2
    out = np.zeros_like(residuals)
    for y in range(h):
        for x in range(w):
            if mirrored:  # reflect without repeating the edge pixel, as numpy's and torch's "reflect"
                rows = [abs(v) if v < h else 2 * (h - 1) - v for v in range(y - half, y + half + 1)]
                cols = [abs(v) if v < w else 2 * (w - 1) - v for v in range(x - half, x + half + 1)]
                out[:, y, x] = residuals[:, rows][:, :, cols].mean(axis=(1, 2))
            else:
                out[:, y, x] = residuals[:, max(y - half, 0) : y + half + 1, max(x - half, 0) : x + half + 1].mean(
                    axis=(1, 2)
                )
    return out


@pytest.mark.parametrize(("shape", "window", "mirrored"), [((9, 7), 5, True), ((9, 7), 3, True), ((2, 6), 5, False)])
def test_local_mean_is_the_mean_over_the_window(shape: tuple[int, int], window: int, mirrored: bool) -> None:
    residuals = np.random.default_rng(1).random((2, *shape)) ** 3
    averaged = local_mean(torch.from_numpy(residuals), window).numpy()
    np.testing.assert_allclose(averaged, brute_local_mean(residuals, window, mirrored), rtol=1e-12)
    assert averaged.mean() == pytest.approx(residuals.mean(), rel=0.2)  # a mean filter, no gain


def test_local_mean_of_window_one_is_the_residual_itself() -> None:
    residuals = torch.rand(3, 5, 5)
    assert local_mean(residuals, 1) is residuals


def test_local_mean_keeps_a_periodic_residual_the_filter_before_squaring_removes() -> None:
    # An expert that predicts a stripe texture as flat has residual ±a in alternate columns: its local energy
    # is a² everywhere, while the paper's mean filter before squaring averages the residual to about 0.
    f = torch.tensor([0.25, -0.25], dtype=torch.float64).repeat(8)[None, None, :].expand(1, 16, 16).contiguous()
    flat = torch.tensor(0.0, dtype=torch.float64)
    energy = local_mean(squared_residual(f, flat)[None], 5)[0]
    torch.testing.assert_close(energy, torch.full((16, 16), 0.0625, dtype=torch.float64))
    assert float(squared_residual(f, flat, filter_size=5)[2:-2, 2:-2].max()) <= 0.0625 / 25 + 1e-12


@pytest.mark.parametrize(("shape", "sigma"), [((20, 31), 1.5), ((12, 9), 4.0)])
def test_gaussian_blur_is_the_truncated_gaussian_sum_with_zeros_outside(shape: tuple[int, int], sigma: float) -> None:
    image = torch.from_numpy(np.random.default_rng(3).random((2, *shape)))
    blurred = gaussian_blur(image, sigma).numpy()
    height, width = shape

    def weights(extent: int) -> np.ndarray:  # 1-D kernel, truncated at 4 σ or the image's extent, summing to 1
        radius = min(int(np.ceil(4 * sigma)), extent - 1)
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
        normalised: np.ndarray = taps / taps.sum()
        return normalised

    wy, wx = weights(height), weights(width)
    ry, rx = len(wy) // 2, len(wx) // 2
    for c, y, x in ((0, 0, 0), (1, height // 2, width // 3), (0, height - 1, width - 2)):
        total = sum(
            wy[dy + ry] * wx[dx + rx] * float(image[c, y + dy, x + dx])
            for dy in range(-ry, ry + 1)
            for dx in range(-rx, rx + 1)
            if 0 <= y + dy < height and 0 <= x + dx < width
        )
        assert blurred[c, y, x] == pytest.approx(total, rel=1e-10)


def test_local_weighted_mean_is_each_neighbourhoods_mean_and_the_global_one_far_from_the_class() -> None:
    rng = np.random.default_rng(4)
    image = torch.from_numpy(rng.random((1, 64, 96)))
    weight = torch.zeros(64, 96, dtype=torch.float64)
    weight[:, :20] = 1.0
    image[0, :, :20] = 0.3  # the class is constant where it is: its local mean is that constant everywhere
    np.testing.assert_allclose(local_weighted_mean(image, weight, 5.0).numpy(), 0.3, rtol=1e-12)
    # affine in the image
    noisy = torch.from_numpy(rng.random((1, 64, 96)))
    weight = torch.from_numpy(rng.random((64, 96)))
    local = local_weighted_mean(noisy, weight, 3.0)
    np.testing.assert_allclose(local_weighted_mean(2 * noisy + 1, weight, 3.0).numpy(), 2 * local.numpy() + 1)
    # a window far wider than the image: the global weighted mean
    wide = local_weighted_mean(noisy, weight, 1e4)
    np.testing.assert_allclose(wide.numpy(), weighted_mean(noisy, weight).expand_as(noisy).numpy(), rtol=1e-6)
    # a class on the left with means 0.2 (top) and 0.6 (bottom): inside it each pixel sees its own half's mean,
    # nudged towards the global 0.4 by the floor ε; far right, where the class holds no share of the window, 0.4
    halves = torch.zeros(1, 64, 96, dtype=torch.float64)
    halves[0, :32, :] = 0.2
    halves[0, 32:, :] = 0.6
    left = torch.zeros(64, 96, dtype=torch.float64)
    left[:, :30] = 1.0
    sides = local_weighted_mean(halves, left, 3.0)[0].numpy()
    eps = LOCAL_MEAN_FLOOR
    assert sides[5, 10] == pytest.approx((0.2 + eps * 0.4) / (1 + eps))
    assert sides[58, 10] == pytest.approx((0.6 + eps * 0.4) / (1 + eps))
    assert sides[5, 90] == pytest.approx(0.4, abs=1e-6) and sides[58, 90] == pytest.approx(0.4, abs=1e-6)


def test_residuals_are_summed_over_channels() -> None:
    f = torch.tensor([[[1.0, 2.0]], [[3.0, 5.0]]], dtype=torch.float64).expand(2, 16, 2).contiguous()
    constant = torch.tensor([0.0, 1.0], dtype=torch.float64).view(2, 1, 1)
    assert torch.equal(squared_residual(f, constant)[0], torch.tensor([1.0 + 4.0, 4.0 + 16.0], dtype=torch.float64))


def test_joint_energy_terms() -> None:
    u = torch.zeros(6, 6, dtype=torch.float64)
    u[:, :3] = 1.0
    memberships = torch.stack((1 - u, u))
    residuals = torch.stack((torch.full((6, 6), 3.0), torch.full((6, 6), 2.0))).double()
    # a straight vertical boundary of length 6 between two regions costs λ × 6 (both u_k jump: λ/2 each)
    expected = 0.5 * 6 + 2.0 * 18 + 3.0 * 18
    assert float(joint_energy(memberships, residuals, lam=0.5)) == pytest.approx(expected)
    ref = torch.stack((torch.ones_like(u), torch.zeros_like(u)))
    # µ/4 Σ_k ||u_k - u_R,k||² = µ/2 ||u - u_R||² in the binary form: 2/2 × 18
    assert float(joint_energy(memberships, residuals, 0.5, mu=2.0, reference=ref)) == pytest.approx(expected + 18.0)


def test_three_regions_boundary_cost_is_lambda_per_unit_length() -> None:
    labels = torch.zeros(6, 6, dtype=torch.long)
    labels[:, 2:4] = 1
    labels[:, 4:] = 2
    memberships = torch.nn.functional.one_hot(labels, 3).permute(2, 0, 1).double()
    # two straight boundaries of length 6 between different regions
    assert float(joint_energy(memberships, torch.zeros_like(memberships), lam=1.0)) == pytest.approx(12.0)
