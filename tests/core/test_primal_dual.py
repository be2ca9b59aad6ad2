from __future__ import annotations

import dataclasses

import pytest
import torch

from napari_self2seg.core.config import PrimalDualConfig
from napari_self2seg.core.energy import joint_energy, squared_residual
from napari_self2seg.core.primal_dual import (
    PrimalDualState,
    chambolle_pock,
    dual_objective,
    duality_gap,
    primal_objective,
    solve,
)
from napari_self2seg.core.simplex import project_simplex


def two_phase_problem(noise: float = 0.3, size: int = 24) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chan–Vese residuals of a noisy square with the true constants 1 and 0."""
    gen = torch.Generator().manual_seed(0)
    truth = torch.zeros(size, size, dtype=torch.float64)
    truth[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    f = truth + noise * torch.randn(size, size, generator=gen, dtype=torch.float64)
    return (
        truth,
        squared_residual(f[None], torch.tensor(1.0, dtype=torch.float64)),
        squared_residual(f[None], torch.tensor(0.0, dtype=torch.float64)),
    )


def memberships(u: torch.Tensor) -> torch.Tensor:
    """Two-class memberships ``(1 - u, u)`` of a foreground indicator."""
    return torch.stack((1.0 - u, u))


def run(
    residuals: torch.Tensor,
    lam: float,
    mu: float = 0.0,
    reference: torch.Tensor | None = None,
    start: torch.Tensor | None = None,
) -> tuple[PrimalDualState, float]:
    k = residuals.shape[0]
    u0 = start if start is not None else torch.full_like(residuals, 1.0 / k)
    state = PrimalDualState.from_memberships(u0)
    config = PrimalDualConfig(max_iter=20000, gap_tol=1e-11, check_every=100)
    progress = solve(state, residuals, lam, config, mu=mu, reference=reference)
    return state, progress.gap


def test_gap_reaches_tolerance_in_float64() -> None:
    _, r_fg, r_bg = two_phase_problem()
    residuals = torch.stack((r_bg, r_fg))
    state, gap = run(residuals, lam=0.5)
    assert 0.0 <= gap <= 1e-11 * 1.0001 or abs(gap) < 1e-12
    assert float(duality_gap(state, residuals, 0.5)) / r_fg.numel() <= 1e-11
    assert torch.all(state.u >= 0) and torch.allclose(state.u.sum(dim=0), torch.ones_like(r_fg))
    # dual feasibility |p_k,i| <= lam / 2
    assert float(torch.linalg.vector_norm(state.p, dim=1).max()) <= 0.25 + 1e-12


def test_weak_duality_holds_for_any_feasible_pair() -> None:
    _, r_fg, r_bg = two_phase_problem()
    residuals = torch.stack((r_bg, r_fg, 0.5 * (r_bg + r_fg)))
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        u = project_simplex(torch.rand(residuals.shape, generator=gen, dtype=torch.float64))
        p = torch.randn((3, 2, *r_fg.shape), generator=gen, dtype=torch.float64)
        p = p / torch.clamp(torch.linalg.vector_norm(p, dim=1, keepdim=True) / 0.25, min=1.0)
        for mu, reference in ((0.0, None), (2.0, project_simplex(torch.rand(u.shape, generator=gen, dtype=u.dtype)))):
            primal = float(primal_objective(u, residuals, 0.5, mu, reference))
            assert primal >= float(dual_objective(p, residuals, mu, reference)) - 1e-12


def test_solution_is_optimal_against_perturbations() -> None:
    _, r_fg, r_bg = two_phase_problem()
    residuals = torch.stack((r_bg, r_fg))
    state, _ = run(residuals, lam=0.5)
    best = float(primal_objective(state.u, residuals, 0.5))
    gen = torch.Generator().manual_seed(4)
    for scale in (1e-1, 1e-2, 1e-3):
        v = project_simplex(state.u + scale * torch.randn(residuals.shape, generator=gen, dtype=torch.float64))
        assert float(primal_objective(v, residuals, 0.5)) >= best - 1e-9


@pytest.mark.parametrize("start", ["zeros", "ones", "random"])
def test_segmentation_step_does_not_increase_the_energy(start: str) -> None:
    _, r_fg, r_bg = two_phase_problem()
    gen = torch.Generator().manual_seed(5)
    u0 = {
        "zeros": torch.zeros_like(r_fg),
        "ones": torch.ones_like(r_fg),
        "random": torch.rand(r_fg.shape, generator=gen, dtype=torch.float64),
    }[start]
    residuals = torch.stack((r_bg, r_fg))
    before = float(joint_energy(memberships(u0), residuals, 0.5))
    state, _ = run(residuals, lam=0.5, start=memberships(u0))
    assert float(joint_energy(state.u, residuals, 0.5)) <= before


def test_thresholds_give_near_equal_binary_energy() -> None:
    """Theorem 4: thresholding the convex minimiser at a.e. τ gives a binary minimiser."""
    _, r_fg, r_bg = two_phase_problem(noise=0.6)
    residuals = torch.stack((r_bg, r_fg))
    state, _ = run(residuals, lam=0.5)
    relaxed = float(joint_energy(state.u, residuals, 0.5))
    for tau in (0.1, 0.3, 0.5, 0.7, 0.9):
        binary = float(joint_energy(memberships((state.u[1] >= tau).double()), residuals, 0.5))
        # isotropic discrete TV satisfies the coarea formula only approximately (measured: < 1 %)
        assert binary == pytest.approx(relaxed, rel=1e-2)
        assert binary >= relaxed - 1e-9


def test_exact_mask_on_tiny_noise_free_image() -> None:
    truth = torch.zeros(10, 10, dtype=torch.float64)
    truth[2:7, 3:8] = 1.0
    f = 0.2 + 0.6 * truth
    r_fg = squared_residual(f[None], torch.tensor(0.8, dtype=torch.float64))
    r_bg = squared_residual(f[None], torch.tensor(0.2, dtype=torch.float64))
    state, _ = run(torch.stack((r_bg, r_fg)), lam=0.01)
    assert torch.equal(state.u[1] >= 0.5, truth.bool())


def test_large_lambda_removes_small_objects() -> None:
    _truth, r_fg, r_bg = two_phase_problem(noise=0.0)
    state, _ = run(torch.stack((r_bg, r_fg)), lam=100.0)
    assert not bool((state.u[1] >= 0.5).any())


def test_accelerated_scheme_with_mu_converges_and_pulls_to_reference() -> None:
    _, r_fg, r_bg = two_phase_problem()
    residuals = torch.stack((r_bg, r_fg))
    reference = memberships(torch.zeros_like(r_fg))
    free, _ = run(residuals, lam=0.5)
    pulled, gap = run(residuals, lam=0.5, mu=2.0, reference=reference)
    assert gap <= 1e-10
    assert float(duality_gap(pulled, residuals, 0.5, 2.0, reference)) / r_fg.numel() <= 1e-10
    assert float(pulled.u[1].sum()) < float(free.u[1].sum())


def test_iterations_yield_progress_and_respect_the_cap() -> None:
    _, r_fg, r_bg = two_phase_problem(noise=0.6, size=64)  # far from solved after 250 iterations
    state = PrimalDualState.from_memberships(memberships(torch.full_like(r_fg, 0.5)))
    config = PrimalDualConfig(max_iter=250, gap_tol=0.0, check_every=100)
    reports = list(chambolle_pock(state, torch.stack((r_bg, r_fg)), 0.05, config))
    assert [r.iteration for r in reports] == [100, 200, 250]
    assert not reports[-1].converged


def test_mu_without_reference_is_rejected() -> None:
    _, r_fg, r_bg = two_phase_problem()
    state = PrimalDualState.from_memberships(memberships(torch.full_like(r_fg, 0.5)))
    with pytest.raises(ValueError, match="reference"):
        next(chambolle_pock(state, torch.stack((r_bg, r_fg)), 0.5, PrimalDualConfig(), mu=1.0))


def test_step_sizes_must_satisfy_the_convergence_condition() -> None:
    with pytest.raises(ValueError, match=r"tau \* sigma \* 8"):
        PrimalDualConfig(tau=0.5, sigma=0.5)


@pytest.mark.parametrize("lam", [0.02, 0.5])
def test_lam_scaled_steps_are_admissible_and_reach_the_same_minimiser(lam: float) -> None:
    fixed = PrimalDualConfig(max_iter=40000, gap_tol=1e-11, check_every=50)
    scaled = dataclasses.replace(fixed, scale_steps_to_lam=True)
    tau, sigma = scaled.step_sizes(lam)
    assert tau * sigma * 8 == pytest.approx(1.0) and tau == pytest.approx(1 / (8**0.5 * lam))
    assert fixed.step_sizes(lam) == (fixed.tau, fixed.sigma)
    _, r_fg, r_bg = two_phase_problem()
    residuals = torch.stack((r_bg, r_fg))
    runs = []
    for config in (fixed, scaled):
        state = PrimalDualState.from_memberships(memberships(torch.full_like(r_fg, 0.5)))
        progress = solve(state, residuals, lam, config)
        assert progress.converged
        runs.append((state, progress.iteration))
    assert torch.equal(runs[0][0].u[1] >= 0.5, runs[1][0].u[1] >= 0.5)
    energies = [float(primal_objective(state.u, residuals, lam)) for state, _ in runs]
    assert energies[0] == pytest.approx(energies[1], rel=1e-8, abs=1e-9)


def test_reported_state_is_a_snapshot_and_the_start_is_not_modified() -> None:
    _, r_fg, r_bg = two_phase_problem()
    start = memberships(torch.full_like(r_fg, 0.5))
    state = PrimalDualState(u=start, p=torch.zeros((2, 2, *r_fg.shape), dtype=start.dtype))
    reports = chambolle_pock(
        state, torch.stack((r_bg, r_fg)), 0.5, PrimalDualConfig(max_iter=200, gap_tol=0.0, check_every=50)
    )
    next(reports)
    seen_u, seen_p = state.u, state.p
    kept_u, kept_p = seen_u.clone(), seen_p.clone()
    for _ in reports:
        pass
    assert torch.equal(seen_u, kept_u) and torch.equal(seen_p, kept_p)
    assert not torch.equal(state.u, kept_u)
    assert bool((start == 0.5).all())
