"""The joint energy of Self2Seg (paper eqs. 5, 9, 10) and its region terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .finite_diff import total_variation


def squared_residual(image: torch.Tensor, denoised: torch.Tensor, filter_size: int = 1) -> torch.Tensor:
    """Region fidelity ``(K * (f - D(f)))^2`` (paper eq. 5 and §3.1, variant 3).

    Parameters
    ----------
    image : torch.Tensor
        The normalised noisy image ``f``, shape ``(H, W)``.
    denoised : torch.Tensor
        An expert's output ``D(f)`` (same shape), or a 0-d tensor for a constant.
    filter_size : int
        Odd size of the mean filter ``K`` applied to the residual before
        squaring, with reflect padding; 1 applies no filter.

    Returns
    -------
    torch.Tensor
        Per-pixel residual, shape ``(H, W)``.
    """
    residual = image - denoised
    if filter_size > 1:
        pad = filter_size // 2
        padded = F.pad(residual[None, None], (pad, pad, pad, pad), mode="reflect")
        residual = F.avg_pool2d(padded, filter_size, stride=1)[0, 0]
    return residual * residual


def weighted_mean(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Closed-form constant expert: ``argmin_c sum w (f - c)^2 = sum w f / sum w``.

    This is the constant-background variant of paper §3.1 (Example 1.1).

    Parameters
    ----------
    image : torch.Tensor
        The normalised image ``f``.
    weight : torch.Tensor
        Non-negative weights, e.g. the soft background ``1 - u``.

    Returns
    -------
    torch.Tensor
        0-d tensor. If all weights are zero, the plain mean of ``f``.
    """
    total = weight.sum()
    return torch.where(total > 0, (weight * image).sum() / total.clamp_min(1e-12), image.mean())


def joint_energy(
    u: torch.Tensor,
    residual_fg: torch.Tensor,
    residual_bg: torch.Tensor,
    lam: float,
    mu: float = 0.0,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discrete joint energy (paper eq. 9, plus the µ term of eq. 10).

    ``E(u) = lam * TV(u) + sum u r_F + sum (1 - u) r_B + mu/2 ||u - u_R||^2``
    for ``0 <= u <= 1`` (the indicator ``i_A`` is not evaluated).

    Parameters
    ----------
    u : torch.Tensor
        Relaxed foreground indicator, shape ``(H, W)``.
    residual_fg, residual_bg : torch.Tensor
        Per-pixel fidelities ``r_F`` and ``r_B`` from :func:`squared_residual`.
    lam : float
        TV weight λ.
    mu : float
        Weight of the proximity term; ignored if ``reference`` is None.
    reference : torch.Tensor or None
        Reference mask ``u_R`` of eq. 10.

    Returns
    -------
    torch.Tensor
        0-d tensor.
    """
    energy = lam * total_variation(u) + (u * residual_fg).sum() + ((1.0 - u) * residual_bg).sum()
    if mu > 0 and reference is not None:
        energy = energy + 0.5 * mu * ((u - reference) ** 2).sum()
    return energy
