"""Chambolle–Pock solver of the convex segmentation step on the simplex (paper eqs. 9, 10, 13).

For fixed experts the segmentation step of K regions solves

    min_{u in S}  lam/2 sum_k TV(u_k) + sum_k <r_k, u_k> + mu/4 ||u - u_R||^2,

``S`` the probability simplex at every pixel (:mod:`.simplex`), ``r_k`` the
region residual of expert k. The relaxation is Zach et al. (2008): one dual
field per class, each in the ball ``|p_{k,i}| <= lam/2``. A boundary between two
regions makes two of the ``u_k`` jump by 1, so it costs ``lam`` per unit length,
as in the binary energy: for K = 2 (``u_0 = 1 - u``, ``u_1 = u``) the objective
is ``lam TV(u) + <r_1 - r_0, u> + mu/2 ||u - u_R||^2`` plus a constant, the
binary problem of eqs. 9 and 10, and with the steps of :func:`simplex_steps`
the iterates are exactly those of the binary Chambolle–Pock iteration.
Lellmann et al.'s joint norm (2009) is tighter for K >= 3 but couples the
classes in one projection per pixel; the per-class form keeps every operation
a batched one (docs/method.md).

Key of the kernel names: ``u`` primal ``(K, H, W)``, ``u_bar`` extrapolated
primal, ``p`` dual ``(K, 2, H, W)``, ``tau``/``sigma`` step sizes, ``theta``
extrapolation weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .finite_diff import div, div_into, grad_into, total_variation
from .simplex import project_simplex

if TYPE_CHECKING:
    from collections.abc import Iterator

    from .config import PrimalDualConfig


@dataclass
class PrimalDualState:
    """Primal and dual variables, carried between segmentation steps (warm start).

    Attributes
    ----------
    u : torch.Tensor
        Relaxed class memberships on the simplex, shape ``(K, H, W)``.
    p : torch.Tensor
        Dual variable, shape ``(K, 2, H, W)``.
    """

    u: torch.Tensor
    p: torch.Tensor

    @classmethod
    def from_memberships(cls, u0: torch.Tensor) -> PrimalDualState:
        """Start from memberships ``u0`` ``(K, H, W)`` and a zero dual variable."""
        return cls(u=u0.clone(), p=u0.new_zeros((u0.shape[0], 2, *u0.shape[1:])))


@dataclass(frozen=True)
class PrimalDualProgress:
    """Where the solver stands after a block of iterations.

    Attributes
    ----------
    iteration : int
        Iterations done in this call.
    gap : float
        Primal–dual gap divided by the number of pixels.
    relative_change : float
        ``||u - u_prev|| / max(||u||, 1)`` over the last iteration.
    converged : bool
        Whether a stopping tolerance was met.
    """

    iteration: int
    gap: float
    relative_change: float
    converged: bool


def simplex_steps(tau: float, sigma: float) -> tuple[float, float]:
    """Per-class steps ``(2 tau, sigma / 2)`` for the binary-form steps ``(tau, sigma)``.

    ``PrimalDualConfig`` states its steps for the binary form (one ``u``, dual
    radius λ). Projecting onto ``u_0 + u_1 = 1`` halves the primal step that
    reaches ``u_1`` and the dual radius is λ/2, so these steps reproduce the
    binary iterates for K = 2; ``tau sigma`` is unchanged, and so is the
    convergence condition ``tau sigma ||grad||^2 <= 1``.
    """
    return 2.0 * tau, 0.5 * sigma


def primal_objective(
    u: torch.Tensor, residuals: torch.Tensor, lam: float, mu: float = 0.0, reference: torch.Tensor | None = None
) -> torch.Tensor:
    """Primal objective ``lam/2 sum_k TV(u_k) + <r, u> + mu/4 ||u - u_R||^2`` (eqs. 10, 13)."""
    value = 0.5 * lam * total_variation(u).sum() + (residuals * u).sum()
    if mu > 0 and reference is not None:
        value = value + 0.25 * mu * ((u - reference) ** 2).sum()
    return value


def dual_objective(
    p: torch.Tensor, residuals: torch.Tensor, mu: float = 0.0, reference: torch.Tensor | None = None
) -> torch.Tensor:
    """Dual objective ``sum_pixels min_{u in S} <c, u> + mu/4 ||u - u_R||^2``, ``c = r - div p``, for feasible ``p``.

    Without µ the inner minimum puts all weight on the smallest ``c_k``; with µ
    it is attained at ``proj_S(u_R - 2c/mu)``.
    """
    c = residuals - div(p)
    if mu > 0 and reference is not None:
        u_star = project_simplex(reference - (2.0 / mu) * c)
        return (c * u_star + 0.25 * mu * (u_star - reference) ** 2).sum()
    return c.min(dim=0).values.sum()


def duality_gap(
    state: PrimalDualState,
    residuals: torch.Tensor,
    lam: float,
    mu: float = 0.0,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Primal–dual gap ``P(u) - D(p) >= 0``; zero exactly at a saddle point."""
    return primal_objective(state.u, residuals, lam, mu, reference) - dual_objective(state.p, residuals, mu, reference)


def chambolle_pock(
    state: PrimalDualState,
    residuals: torch.Tensor,
    lam: float,
    config: PrimalDualConfig,
    *,
    mu: float = 0.0,
    reference: torch.Tensor | None = None,
) -> Iterator[PrimalDualProgress]:
    """Run Chambolle–Pock on the segmentation problem, updating ``state``.

    With ``mu > 0`` the objective is (µ/2)-strongly convex and the accelerated
    variant is used (paper Algorithm 4): after each iteration
    ``theta = 1/sqrt(1 + mu tau)``, ``tau <- theta tau``, ``sigma <- sigma/theta``.
    Step sizes start from ``config.step_sizes(lam)`` (binary form, see
    :func:`simplex_steps`) at every call; only ``u`` and ``p`` are
    warm-started. The iteration works in place on preallocated buffers (at
    256² the cost is per operation, not per pixel, which is also why the K
    classes are batched in every operation); ``state`` gets fresh copies at
    every report.

    Parameters
    ----------
    state : PrimalDualState
        Start point; holds the solution when the generator is exhausted.
    residuals : torch.Tensor
        Region residuals ``r_k`` of the experts, shape ``(K, H, W)``.
    lam : float
        TV weight λ (> 0): the cost of a unit length of boundary between two regions.
    config : PrimalDualConfig
        Step sizes, tolerances, iteration cap and check interval.
    mu : float
        Weight of the proximity term to ``reference`` (eq. 10).
    reference : torch.Tensor or None
        Reference memberships ``u_R`` ``(K, H, W)``; required when ``mu > 0``.

    Yields
    ------
    PrimalDualProgress
        Every ``config.check_every`` iterations and once at the end (the last
        one has ``converged`` set if a tolerance was met).
    """
    if mu > 0 and reference is None:
        raise ValueError("mu > 0 needs a reference segmentation")
    ref = reference if mu > 0 else None
    tau, sigma = simplex_steps(*config.step_sizes(lam))
    radius = 0.5 * lam
    n_pixels = residuals[0].numel()
    u, p = state.u.clone(), state.p.clone()
    u_bar = u.clone()
    field, scale, divergence = torch.empty_like(p), torch.empty_like(u), torch.empty_like(u)
    for iteration in range(1, config.max_iter + 1):
        # dual step: p_k <- proj_{|p_k,i| <= lam/2}(p_k + sigma grad u_bar_k)
        p.add_(grad_into(u_bar, field), alpha=sigma)
        torch.mul(p[:, 0], p[:, 0], out=scale).addcmul_(p[:, 1], p[:, 1]).sqrt_()  # faster than hypot here
        p.div_(scale.div_(radius).clamp_(min=1.0).unsqueeze(1))
        # primal step: u_next <- proj_S(u + tau div p - tau r), with the µ prox (Alg. 4)
        u_next = torch.add(u, div_into(p, divergence), alpha=tau)
        u_next.add_(residuals, alpha=-tau)
        if ref is not None:
            half_mu = 0.5 * mu
            u_next.add_(ref, alpha=tau * half_mu).div_(1.0 + tau * half_mu)
            theta = 1.0 / (1.0 + mu * tau) ** 0.5
            tau, sigma = theta * tau, sigma / theta
        else:
            theta = 1.0
        u_next = project_simplex(u_next)
        # extrapolation: u_bar <- u_next + theta (u_next - u)
        torch.mul(u_next, 1.0 + theta, out=u_bar).add_(u, alpha=-theta)
        last = iteration == config.max_iter
        if iteration % config.check_every == 0 or last:
            change = float(torch.linalg.vector_norm(u_next - u)) / max(float(torch.linalg.vector_norm(u_next)), 1.0)
            state.u, state.p = u_next.clone(), p.clone()
            gap = float(duality_gap(state, residuals, lam, mu, reference)) / n_pixels
            converged = gap <= config.gap_tol or change < config.change_tol
            yield PrimalDualProgress(iteration, gap, change, converged)
            if converged:
                return
        u = u_next


def solve(
    state: PrimalDualState,
    residuals: torch.Tensor,
    lam: float,
    config: PrimalDualConfig,
    *,
    mu: float = 0.0,
    reference: torch.Tensor | None = None,
) -> PrimalDualProgress:
    """Run :func:`chambolle_pock` to the end and return its last progress report."""
    reports = chambolle_pock(state, residuals, lam, config, mu=mu, reference=reference)
    last = PrimalDualProgress(0, float("inf"), float("inf"), False)
    for report in reports:
        last = report
    return last
