from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_self2seg.core.energy import joint_energy, local_mean, squared_residual, weighted_mean


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
