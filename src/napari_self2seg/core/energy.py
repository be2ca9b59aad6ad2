"""The joint energy of Self2Seg (paper eqs. 5, 9, 10, 13) and its region terms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .finite_diff import total_variation


def squared_residual(image: torch.Tensor, denoised: torch.Tensor, filter_size: int = 1) -> torch.Tensor:
    """Region fidelity ``sum_c (K * (f_c - D(f)_c))^2`` (paper eq. 5 and §3.1, variant 3).

    Parameters
    ----------
    image : torch.Tensor
        The normalised noisy image ``f``, shape ``(C, H, W)``.
    denoised : torch.Tensor
        An expert's output ``D(f)``, broadcastable to ``image`` (a constant
        expert is ``(C, 1, 1)``).
    filter_size : int
        Odd size of the mean filter ``K`` applied to each channel's residual
        before squaring, with reflect padding; 1 applies no filter.

    Returns
    -------
    torch.Tensor
        Per-pixel residual summed over the channels, shape ``(H, W)``.
    """
    residual = local_mean((image - denoised).expand_as(image), filter_size)
    return (residual * residual).sum(dim=0)


def local_mean(residuals: torch.Tensor, window: int) -> torch.Tensor:
    """Average each region's residual over a ``window × window`` neighbourhood (local texture energy).

    Also the mean filter ``K`` of :func:`squared_residual` (there on each
    channel's signed residual, before squaring).

    A network expert's squared blind residual on a texture fluctuates from
    pixel to pixel with the texture's phase; its local mean is the expert's
    error on the texture around the pixel, the quantity that tells two
    textures apart (classical local-energy texture features). Unlike the
    paper's mean filter before squaring (:func:`squared_residual`,
    variant 3), which averages a periodic residual away, the mean of the
    squared residual keeps it. The energy (eq. 13) stays linear in ``u``, so
    the segmentation step is unchanged; only its data term is smoothed.
    Beyond the paper (docs/robustness.md).

    Parameters
    ----------
    residuals : torch.Tensor
        Region residuals ``r_k``, ``(K, H, W)`` (any leading size).
    window : int
        Odd side of the square window; 1 returns ``residuals`` unchanged.

    Returns
    -------
    torch.Tensor
        ``(K, H, W)``: the mean of each ``r_k`` over the window, the image
        mirrored at its borders (over the pixels inside the image where the
        image is smaller than half the window).
    """
    if window <= 1:
        return residuals
    pad = window // 2
    if min(residuals.shape[-2:]) > pad:
        padded = F.pad(residuals[None], (pad, pad, pad, pad), mode="reflect")
        return F.avg_pool2d(padded, window, stride=1)[0]
    return F.avg_pool2d(residuals[None], window, stride=1, padding=pad, count_include_pad=False)[0]


def weighted_mean(image: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Closed-form constant expert per channel: ``argmin_c sum w (f - c)^2 = sum w f / sum w``.

    This is the constant-region variant of paper §3.1 (Example 1.1).

    Parameters
    ----------
    image : torch.Tensor
        The normalised image ``f``, ``(C, H, W)``.
    weight : torch.Tensor
        Non-negative weights ``(H, W)``, e.g. the soft membership ``u_k``.

    Returns
    -------
    torch.Tensor
        ``(C, 1, 1)``. If all weights are zero, the plain mean of each channel.
    """
    total = weight.sum()
    weighted = (weight * image).sum(dim=(-2, -1), keepdim=True) / total.clamp_min(1e-12)
    return torch.where(total > 0, weighted, image.mean(dim=(-2, -1), keepdim=True))


def joint_energy(
    u: torch.Tensor,
    residuals: torch.Tensor,
    lam: float,
    mu: float = 0.0,
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discrete joint energy (paper eq. 13; eq. 9 for K = 2, plus the µ term of eq. 10).

    ``E(u) = lam/2 sum_k TV(u_k) + sum_k <u_k, r_k> + mu/4 ||u - u_R||^2``
    for ``u`` on the simplex at every pixel (not checked). With the halved
    weights a boundary between two regions costs λ per unit length, and for
    K = 2 (``u = (1 - v, v)``) this is the binary
    ``lam TV(v) + <v, r_1> + <1 - v, r_0> + mu/2 ||v - v_R||^2``.

    Parameters
    ----------
    u : torch.Tensor
        Relaxed class memberships, shape ``(K, H, W)``.
    residuals : torch.Tensor
        Per-pixel fidelities ``r_k`` from :func:`squared_residual`, ``(K, H, W)``.
    lam : float
        TV weight λ.
    mu : float
        Weight of the proximity term; ignored if ``reference`` is None.
    reference : torch.Tensor or None
        Reference memberships ``u_R`` of eq. 10, ``(K, H, W)``.

    Returns
    -------
    torch.Tensor
        0-d tensor.
    """
    energy = 0.5 * lam * total_variation(u).sum() + (u * residuals).sum()
    if mu > 0 and reference is not None:
        energy = energy + 0.25 * mu * ((u - reference) ** 2).sum()
    return energy
