"""The joint energy of Self2Seg (paper eqs. 5, 9, 10, 13) and its region terms."""

from __future__ import annotations

import math

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


LOCAL_MEAN_FLOOR = 0.01
"""Share of a Gaussian window below which :func:`local_weighted_mean` leans on the global mean."""


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each ``(H, W)`` plane with a Gaussian of standard deviation ``sigma`` pixels, zeros outside.

    Separable, truncated at 4 σ (or at the image's extent), with no
    normalisation at the border: divide by the blur of ones for a
    normalised convolution. Each axis is a linear convolution computed with
    FFTs long enough not to wrap around, so the cost does not grow with σ.

    Parameters
    ----------
    image : torch.Tensor
        ``(..., H, W)``.
    sigma : float
        Standard deviation in pixels, > 0.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device.
    """
    blurred = image
    for axis in (-1, -2):
        extent = image.shape[axis]
        radius = min(math.ceil(4 * sigma), extent - 1)
        offsets = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = kernel / kernel.sum()
        length = extent + 2 * radius  # the whole linear convolution: no wrap-around
        spectrum = torch.fft.rfft(blurred, n=length, dim=axis) * torch.fft.rfft(kernel, n=length).unsqueeze(-1 - axis)
        full = torch.fft.irfft(spectrum, n=length, dim=axis)
        blurred = full.narrow(axis, radius, extent)
    return blurred


def local_weighted_mean(
    image: torch.Tensor, weight: torch.Tensor, sigma: float, floor: float = LOCAL_MEAN_FLOOR
) -> torch.Tensor:
    """Constant expert fitted locally: the weighted mean of ``image`` in a Gaussian window around each pixel.

    ``c(x) = (G * (w f) + ε G * 1 · c̄) / (G * w + ε G * 1)`` with ``G`` a
    Gaussian of standard deviation ``sigma`` (:func:`gaussian_blur`), ``c̄``
    the global weighted mean (:func:`weighted_mean`) and ``ε = floor``:
    where the class holds a share ``G * w / G * 1`` of the window well above
    ``ε``, ``c(x)`` is its mean there; where it holds almost none, ``c̄``.
    Fitting the region constants of Chan–Vese locally follows the local
    binary fitting of Li et al. (2007) and the local Chan–Vese model of
    Wang et al. (2010): the two means a pixel is compared with are those of
    its neighbourhood, so uneven illumination and dim objects among bright
    ones move the boundary between the classes with them. The energy
    (eq. 9) keeps ``r_k = (f - c_k(x))²``, linear in ``u``. Beyond the paper
    (docs/robustness.md).

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, W)``.
    weight : torch.Tensor
        Non-negative weights ``(H, W)``: a class's membership or band.
    sigma : float
        Standard deviation of the window in pixels, > 0.
    floor : float
        ``ε``, the window share at which local and global mean weigh alike.

    Returns
    -------
    torch.Tensor
        ``(C, H, W)``.

    References
    ----------
    C. Li, C.-Y. Kao, J. C. Gore, Z. Ding, "Implicit active contours driven
    by local binary fitting energy", CVPR 2007. X.-F. Wang, D.-S. Huang,
    H. Xu, "An efficient local Chan–Vese model for image segmentation",
    Pattern Recognition 43(3), 603–618, 2010.
    """
    weight = weight.to(image.dtype)
    window = gaussian_blur(torch.ones_like(weight), sigma)
    share = gaussian_blur(weight, sigma)
    weighted = gaussian_blur(weight * image, sigma)
    return (weighted + floor * window * weighted_mean(image, weight)) / (share + floor * window)


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
