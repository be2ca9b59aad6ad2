"""Gabor-energy texture features and their region term: a vector-valued Chan–Vese term beside the experts.

A Noise2Fast expert tells two equal-mean textures apart only through how
well it predicts each one, and a narrow expert trained for seconds on a few
thousand pixels often cannot (docs/robustness.md: on the robustness suite's
hardest pairs the `fast` experts lose even a segmentation started from the
true regions). The classical texture descriptor does not have to be
learned: the local energy of the image in a bank of band-pass filters at
several frequencies and orientations (Jain & Farrokhnia 1991; Sandberg, Chan
& Vese 2002 segment textures with Chan–Vese on exactly these features). For
every pixel ``x`` and filter ``j`` the feature is

    z_j(x) = log(G_{s_j} * |g_j * f|² (x) + ε) / s_j,

``g_j`` a Gabor filter (a Gaussian bump of the spectrum around frequency
``ν_j``, orientation ``θ_j``), ``G_s`` a Gaussian window of
:data:`WINDOW_PERIODS` periods ``1/ν_j`` but at most :data:`MAX_WINDOW`
pixels, ``s_j`` the feature's pooled
spread inside the initial regions. Each class ``k`` has the mean feature
vector ``m_k`` of its region, and its term is the mean squared distance

    r_k^T(x) = mean_j (z_j(x) - m_{k,j})²,

the vector-valued Chan–Vese fidelity (Chan, Sandberg & Vese 2000). Like the
constants of eq. 9, ``m_k`` is the closed-form minimiser of the energy over
the class's model, so the alternation still descends one energy, and the
segmentation step stays linear in ``u``. Beyond the paper.

References
----------
A. K. Jain, F. Farrokhnia, "Unsupervised texture segmentation using Gabor
filters", Pattern Recognition 24(12), 1167–1186, 1991. T. F. Chan,
B. Y. Sandberg, L. A. Vese, "Active contours without edges for vector-valued
images", J. Visual Communication and Image Representation 11, 130–141, 2000.
B. Sandberg, T. Chan, L. Vese, "A level-set and Gabor-based active contour
algorithm for segmenting textured images", UCLA CAM report 02-39, 2002.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .energy import gaussian_blur

FREQUENCIES = (1 / 3, 1 / 4.5, 1 / 6.5, 1 / 9.5, 1 / 14)
"""Centre frequencies of the filter bank in cycles per pixel: periods 3–14 px, half an octave apart."""

ORIENTATIONS = 6
"""Filter orientations, evenly spaced over 180°."""

BANDWIDTH = 0.35
"""Standard deviation of each filter's spectral bump, as a share of its centre frequency."""

WINDOW_PERIODS = 0.75
"""Standard deviation of the window the energies are averaged over, in periods of the filter."""

MAX_WINDOW = 4.0
"""Largest standard deviation of that window, in pixels (the three coarsest filters' windows).

A window spreads each feature across an edge by about its width, and a
window that grows with the period (10.5 px at period 14) lets the coarse
filters' energy reach deep into the neighbouring region: on the robustness
suite's textures capping the windows at 4 px raised the worst run from 0.713
to 0.863 (grain 4 vs 14 at noise 0.3) and the mean from 0.946 to 0.955
(docs/robustness.md, nineteenth session).
"""

ENERGY_FLOOR = 1e-4
"""``ε``: keeps the logarithm finite where a filter sees no energy (a flat or empty region)."""


def gabor_energies(image: torch.Tensor) -> torch.Tensor:
    """Return the log local energies of every channel in the Gabor filter bank.

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, W)``, any range.

    Returns
    -------
    torch.Tensor
        ``(len(FREQUENCIES) · ORIENTATIONS, H, W)`` features ``log(G * sum_c |g * f_c|² + ε)``
        (frequency-major), in the dtype of ``image``: the energies of the
        channels are summed, so the features do not grow with the channels.
        Filtering uses FFTs of the image padded by reflection, so there is no
        wrap-around at the borders; the energy window is a Gaussian
        normalised inside the image.
    """
    height, width = image.shape[-2:]
    pad = min(math.ceil(1 / min(FREQUENCIES)), height - 1, width - 1)
    centred = image - image.mean(dim=(-2, -1), keepdim=True)
    padded = F.pad(centred.unsqueeze(0), (pad, pad, pad, pad), mode="reflect")[0]
    spectrum = torch.fft.fft2(padded.to(torch.float64 if image.dtype == torch.float64 else torch.float32))
    fy = torch.fft.fftfreq(padded.shape[-2], device=image.device, dtype=spectrum.real.dtype)[:, None]
    fx = torch.fft.fftfreq(padded.shape[-1], device=image.device, dtype=spectrum.real.dtype)[None, :]
    features = []
    for frequency in FREQUENCIES:
        spread, sigma = BANDWIDTH * frequency, min(WINDOW_PERIODS / frequency, MAX_WINDOW)
        norm = gaussian_blur(torch.ones((height, width), dtype=fx.dtype, device=image.device), sigma)
        for index in range(ORIENTATIONS):
            angle = math.pi * index / ORIENTATIONS
            bump = torch.exp(
                -((fx - frequency * math.cos(angle)) ** 2 + (fy - frequency * math.sin(angle)) ** 2) / (2 * spread**2)
            )
            response = torch.fft.ifft2(spectrum * bump)[..., pad : pad + height, pad : pad + width]
            energy = (response.real**2 + response.imag**2).sum(dim=0)
            features.append(torch.log(gaussian_blur(energy, sigma) / norm + ENERGY_FLOOR))
    return torch.stack(features).to(image.dtype)


def feature_scale(features: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Return each feature's spread inside the regions: the root of its variances averaged over the regions.

    Parameters
    ----------
    features : torch.Tensor
        ``(J, H, W)`` from :func:`gabor_energies`.
    regions : torch.Tensor
        ``(K, H, W)`` bool, each with at least two pixels.

    Returns
    -------
    torch.Tensor
        ``(J,)`` positive spreads ``s_j`` (a feature constant in every region gets a tiny one, not zero).
    """
    variances = torch.stack([features[:, region].var(dim=1, unbiased=False) for region in regions]).mean(dim=0)
    return variances.sqrt().clamp_min(1e-6)


def texture_residuals(features: torch.Tensor, scale: torch.Tensor, fit: torch.Tensor) -> torch.Tensor:
    """Return each class's texture term ``r_k^T(x) = mean_j ((z_j(x) - m_{k,j}) / s_j)²``.

    Parameters
    ----------
    features : torch.Tensor
        ``(J, H, W)`` from :func:`gabor_energies`.
    scale : torch.Tensor
        ``(J,)`` from :func:`feature_scale`.
    fit : torch.Tensor
        ``(K, H, W)`` bool: the pixels whose mean feature vector models each class.

    Returns
    -------
    torch.Tensor
        ``(K, H, W)``.

    Raises
    ------
    ValueError
        If a class has no pixel to fit its mean to.
    """
    normalised = features / scale[:, None, None]
    terms = []
    for k, region in enumerate(fit):
        if not bool(region.any()):
            raise ValueError(f"class {k} has no pixel to fit its texture features to")
        mean = normalised[:, region].mean(dim=1)
        terms.append(((normalised - mean[:, None, None]) ** 2).mean(dim=0))
    return torch.stack(terms)
