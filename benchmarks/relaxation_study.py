"""The two relaxations of the multi-class TV on the simplex, measured side by side (issue 11).

Eq. 13 puts the memberships ``u`` on the probability simplex; the total variation of ``u`` can be
relaxed in two standard ways:

``zach``      Zach et al. 2008: ``λ/2 Σ_k TV(u_k)``, one dual field per class, ``|p_k(x)| ≤ λ/2``
              (the package's solver, core/primal_dual.py).
``lellmann``  Lellmann et al. 2009: ``λ/√2 Σ_x ||∇u(x)||_F``, one joint dual constraint per pixel,
              ``||p(x)||_F ≤ λ/√2`` (a Chambolle–Pock loop written here, with the same steps).

Both charge λ per unit length of a boundary between two regions. For every case both are solved in
float64 from the uniform start to a gap of 1e-7 per pixel; the table gives the iterations, the
time per iteration (float32, 256², 3 classes), how far the relaxed solution is from integral
(pixels whose largest membership is below 0.99), what argmax rounding adds to the energy of eq. 13
(measured with each relaxation's own TV), and the per-class Dice of the rounded labels.

Usage::

    python benchmarks/relaxation_study.py
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from napari_self2seg.core import dice, segment
from napari_self2seg.core.config import PrimalDualConfig
from napari_self2seg.core.energy import squared_residual
from napari_self2seg.core.finite_diff import div, grad, total_variation
from napari_self2seg.core.primal_dual import PrimalDualState, simplex_steps, solve
from napari_self2seg.core.simplex import project_simplex
from napari_self2seg.core.solver import labels_of
from napari_self2seg.datasets import three_textures

GAP_TOL = 1e-7
MAX_ITER = 20000


def frobenius_tv(u: torch.Tensor) -> torch.Tensor:
    """``Σ_x ||∇u(x)||_F`` over the classes and both directions."""
    return torch.sqrt((grad(u) ** 2).sum(dim=(0, 1))).sum()


def energy(u: torch.Tensor, residuals: torch.Tensor, lam: float, relaxation: str) -> float:
    """Eq. 13 with the relaxation's TV."""
    tv = 0.5 * lam * total_variation(u).sum() if relaxation == "zach" else lam / math.sqrt(2) * frobenius_tv(u)
    return float(tv + (u * residuals).sum())


def lellmann(residuals: torch.Tensor, lam: float, max_iter: int = MAX_ITER) -> tuple[torch.Tensor, int]:
    """Chambolle–Pock with the joint Frobenius dual constraint; returns (u, iterations)."""
    k = residuals.shape[0]
    tau, sigma = simplex_steps(*PrimalDualConfig().step_sizes(lam))
    radius = lam / math.sqrt(2)
    u = torch.full_like(residuals, 1.0 / k)
    u_bar = u.clone()
    p = torch.zeros((k, 2, *residuals.shape[1:]), dtype=residuals.dtype)
    n = residuals[0].numel()
    for iteration in range(1, max_iter + 1):
        p += sigma * grad(u_bar)
        p /= (torch.sqrt((p**2).sum(dim=(0, 1))) / radius).clamp(min=1.0)
        u_next = project_simplex(u + tau * div(p) - tau * residuals)
        u_bar = 2 * u_next - u
        u = u_next
        if iteration % 50 == 0:
            primal = energy(u, residuals, lam, "lellmann")
            dual = float((residuals - div(p)).min(dim=0).values.sum())
            if (primal - dual) / n <= GAP_TOL:
                return u, iteration
    return u, max_iter


def zach(residuals: torch.Tensor, lam: float) -> tuple[torch.Tensor, int]:
    """Solve with the package's solver; return (u, iterations)."""
    state = PrimalDualState.from_memberships(torch.full_like(residuals, 1.0 / residuals.shape[0]))
    report = solve(state, residuals, lam, PrimalDualConfig(max_iter=MAX_ITER, gap_tol=GAP_TOL, check_every=50))
    return state.u, report.iteration


def sectors(size: int, k: int) -> np.ndarray:
    """``k`` equal pie sectors around the centre: ``k``-region junction."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    labels: np.ndarray = (((np.arctan2(yy, xx) + np.pi) / (2 * np.pi) * k).astype(int) % k).astype(np.uint8)
    return labels


def chan_vese_case(labels: np.ndarray, noise: float) -> torch.Tensor:
    """Residuals of known, evenly spaced levels on a noisy piecewise-constant image."""
    k = int(labels.max()) + 1
    levels = torch.linspace(0.1, 0.9, k, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    f = levels[torch.from_numpy(labels).long()] + noise * torch.randn(labels.shape, generator=gen, dtype=torch.float64)
    return torch.stack([squared_residual(f[None], level) for level in levels])


def cases() -> dict[str, tuple[torch.Tensor, np.ndarray, float]]:
    """Name → (residuals, true labels, λ)."""
    found = {}
    for k in (3, 4):
        labels = sectors(64, k)
        found[f"{k} sectors (junction), noise 0.3"] = (chan_vese_case(labels, 0.3), labels, 0.05)
        found[f"{k} sectors, large λ"] = (chan_vese_case(labels, 0.3), labels, 0.3)
    textures = three_textures(96)
    run = segment(textures.image, boxes=textures.boxes, device="cpu", keep_problem=True, seed=0)
    assert run.problem is not None
    residuals = torch.from_numpy(np.array(run.problem.residuals)).double()
    found["3 textures (a run's expert residuals)"] = (residuals, textures.labels, run.lam)
    return found


def per_iteration_ms(method: str) -> float:
    """Mean time of one iteration at 256², 3 classes, float32 (stopping tests excluded)."""
    residuals = torch.rand(3, 256, 256, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    if method == "zach":
        state = PrimalDualState.from_memberships(torch.full_like(residuals, 1 / 3))
        solve(state, residuals, 0.05, PrimalDualConfig(max_iter=500, gap_tol=0.0, check_every=500))
    else:
        lellmann(residuals, 0.05, max_iter=500)  # checks at every 50th iteration: a slight overcount
    return (time.perf_counter() - t0) / 500 * 1000


def main() -> None:
    """Print the comparison table."""
    print("| case | relaxation | iterations | pixels not integral | energy added by rounding | Dice per class |")
    print("|---|---|---|---|---|---|")
    for name, (residuals, truth, lam) in cases().items():
        for method, solver in (("zach", zach), ("lellmann", lellmann)):
            u, iterations = solver(residuals, lam)
            labels = labels_of(u)
            rounded = torch.nn.functional.one_hot(labels.long(), u.shape[0]).permute(2, 0, 1).to(u.dtype)
            relaxed_e, rounded_e = energy(u, residuals, lam, method), energy(rounded, residuals, lam, method)
            fractional = float((u.max(dim=0).values < 0.99).double().mean())
            scores = [dice(labels.numpy() == c, truth == c) for c in range(u.shape[0])]
            print(
                f"| {name}, λ={lam:.3g} | {method} | {iterations} | {100 * fractional:.2f} % | "
                f"{100 * (rounded_e - relaxed_e) / abs(relaxed_e):.3f} % | {' / '.join(f'{s:.3f}' for s in scores)} |",
                flush=True,
            )
    times = {m: per_iteration_ms(m) for m in ("zach", "lellmann")}
    print(f"\none iteration, 256², K = 3, float32: zach {times['zach']:.2f} ms, lellmann {times['lellmann']:.2f} ms")


if __name__ == "__main__":
    main()
