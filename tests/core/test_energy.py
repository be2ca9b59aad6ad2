from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_self2seg.core.energy import joint_energy, squared_residual, weighted_mean


def test_constant_background_is_the_weighted_mean_and_its_minimiser() -> None:
    gen = torch.Generator().manual_seed(0)
    f = torch.rand(12, 12, generator=gen, dtype=torch.float64)
    w = torch.rand(12, 12, generator=gen, dtype=torch.float64)
    c = float(weighted_mean(f, w))
    assert c == pytest.approx(float((w * f).sum() / w.sum()))
    grid = np.linspace(0, 1, 2001)
    costs = [float((w * (f - g) ** 2).sum()) for g in grid]
    assert abs(grid[int(np.argmin(costs))] - c) <= 1e-3


def test_weighted_mean_with_zero_weights_falls_back_to_the_mean() -> None:
    f = torch.arange(16.0).reshape(4, 4)
    assert float(weighted_mean(f, torch.zeros(4, 4))) == pytest.approx(7.5)


def test_residual_filter_averages_before_squaring() -> None:
    f = torch.zeros(9, 9, dtype=torch.float64)
    f[4, 4] = 9.0
    plain = squared_residual(f, torch.tensor(0.0, dtype=torch.float64))
    filtered = squared_residual(f, torch.tensor(0.0, dtype=torch.float64), filter_size=3)
    assert float(plain[4, 4]) == 81.0
    assert torch.allclose(filtered[3:6, 3:6], torch.ones(3, 3, dtype=torch.float64))
    assert float(filtered.sum()) == pytest.approx(9.0)


def test_joint_energy_terms() -> None:
    u = torch.zeros(6, 6, dtype=torch.float64)
    u[:, :3] = 1.0
    r_fg = torch.full((6, 6), 2.0, dtype=torch.float64)
    r_bg = torch.full((6, 6), 3.0, dtype=torch.float64)
    # TV of a straight vertical edge of length 6 is 6
    expected = 0.5 * 6 + 2.0 * 18 + 3.0 * 18
    assert float(joint_energy(u, r_fg, r_bg, lam=0.5)) == pytest.approx(expected)
    ref = torch.zeros_like(u)
    assert float(joint_energy(u, r_fg, r_bg, 0.5, mu=2.0, reference=ref)) == pytest.approx(expected + 18.0)
