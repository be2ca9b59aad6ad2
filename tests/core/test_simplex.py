"""Projection onto the probability simplex (core/simplex.py) against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from napari_self2seg.core.simplex import project_simplex


def brute_force_projection(v: np.ndarray) -> np.ndarray:
    """Euclidean projection by enumerating supports: on each face the projection has a closed form."""
    best, best_dist = None, np.inf
    k = len(v)
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            idx = list(support)
            u = np.zeros(k)
            u[idx] = v[idx] - (v[idx].sum() - 1.0) / size  # projection onto the affine hull of the face
            if (u >= -1e-12).all():
                dist = float(((u - v) ** 2).sum())
                if dist < best_dist:
                    best, best_dist = u, dist
    assert best is not None
    return best


@pytest.mark.parametrize("k", [2, 3, 4, 6])
def test_projection_matches_brute_force(k: int) -> None:
    rng = np.random.default_rng(k)
    values = rng.normal(0.0, 1.5, (k, 40))
    projected = project_simplex(torch.from_numpy(values)).numpy()
    for column in range(values.shape[1]):
        np.testing.assert_allclose(projected[:, column], brute_force_projection(values[:, column]), atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_projection_is_on_the_simplex_and_idempotent(k: int) -> None:
    values = torch.randn(k, 7, 9, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3
    projected = project_simplex(values)
    assert bool((projected >= 0).all())
    torch.testing.assert_close(projected.sum(dim=0), torch.ones(7, 9, dtype=torch.float64))
    torch.testing.assert_close(project_simplex(projected), projected)
    if k == 1:
        torch.testing.assert_close(projected, torch.ones_like(projected))


def test_ties_and_points_already_on_the_simplex() -> None:
    ties = torch.tensor([[0.5, 2.0], [0.5, 2.0], [0.5, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(project_simplex(ties), torch.full((3, 2), 1 / 3, dtype=torch.float64))
    vertex = torch.tensor([[0.0], [1.0], [0.0]], dtype=torch.float64)
    assert torch.equal(project_simplex(vertex), vertex)


def test_projection_along_another_axis_and_the_input_is_kept() -> None:
    values = torch.randn(5, 3, generator=torch.Generator().manual_seed(2))
    kept = values.clone()
    torch.testing.assert_close(project_simplex(values, dim=1), project_simplex(values.T, dim=0).T)
    assert torch.equal(values, kept)


@pytest.mark.parametrize("k", [3, 8, 9, 12])
def test_both_sorts_give_the_exact_projection(k: int) -> None:
    """Up to 8 classes a sorting network orders the values, above that torch.sort: both must be exact."""
    values = torch.randn(k, 5, 6, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    values[1] = values[0]  # ties
    projected = project_simplex(values).numpy()
    for y, x in [(0, 0), (4, 5), (2, 3), (1, 1)]:
        np.testing.assert_allclose(projected[:, y, x], brute_force_projection(values[:, y, x].numpy()), atol=1e-12)
