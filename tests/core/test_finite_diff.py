from __future__ import annotations

import pytest
import torch

from napari_self2seg.core.finite_diff import GRAD_SQNORM_BOUND, div, div_into, grad, grad_into, total_variation


@pytest.mark.parametrize("shape", [(5, 7), (16, 16), (3, 9, 4)])
def test_div_is_negative_adjoint_of_grad(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(shape, generator=gen, dtype=torch.float64)
    p = torch.randn((*shape[:-2], 2, *shape[-2:]), generator=gen, dtype=torch.float64)
    lhs = (grad(u) * p).sum()
    rhs = -(u * div(p)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_div_boundary_rows_match_formula() -> None:
    p = torch.zeros(2, 4, 3, dtype=torch.float64)
    p[0] = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    d = div(p)
    # d[0] = p[0], d[i] = p[i] - p[i-1], d[N-1] = -p[N-2] along rows
    torch.testing.assert_close(d[0], p[0, 0])
    torch.testing.assert_close(d[1], p[0, 1] - p[0, 0])
    torch.testing.assert_close(d[3], -p[0, 2])


def test_grad_norm_is_below_eight() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 32, generator=gen, dtype=torch.float64)
    for _ in range(300):  # power iteration on -div(grad(.))
        x = -div(grad(x))
        x = x / torch.linalg.vector_norm(x)
    norm_sq = float(torch.linalg.vector_norm(grad(x)) ** 2)
    assert 7.5 < norm_sq <= GRAD_SQNORM_BOUND


def test_grad_is_zero_on_constants_and_neumann_at_border() -> None:
    g = grad(torch.full((6, 5), 3.0))
    assert torch.count_nonzero(g) == 0
    ramp = torch.arange(5.0).expand(6, 5)
    g = grad(ramp)
    assert torch.all(g[1, :, :-1] == 1) and torch.all(g[1, :, -1] == 0)


def test_total_variation_of_a_step_is_its_perimeter() -> None:
    u = torch.zeros(10, 10)
    u[2:6, 3:8] = 1.0
    # isotropic TV with forward differences: 2 × (4 + 5) edges, two corners count √2 instead of 2
    expected = 2 * (4 + 5) - 2 + 2**0.5
    assert float(total_variation(u)) == pytest.approx(expected)


def test_in_place_variants_overwrite_every_entry_of_a_dirty_buffer() -> None:
    gen = torch.Generator().manual_seed(4)
    u = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    p = torch.randn(2, 6, 5, generator=gen, dtype=torch.float64)
    field = torch.full((2, 6, 5), float("nan"), dtype=torch.float64)
    image = torch.full((6, 5), float("nan"), dtype=torch.float64)
    assert grad_into(u, field) is field and div_into(p, image) is image
    lhs = (field * p).sum()
    torch.testing.assert_close(lhs, -(u * image).sum(), rtol=1e-12, atol=1e-12)
    assert float(field[0, -1].abs().sum()) == 0.0 and float(field[1, :, -1].abs().sum()) == 0.0
